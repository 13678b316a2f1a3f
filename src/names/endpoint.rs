//! An endpoint of the catalogue: its HTTP method, its route pattern, and
//! where a request names the org node it applies to.

use super::NameError;

/// An HTTP method, or `ANY` (a route for every method that has none of its
/// own).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum HttpMethod {
    Get,
    Head,
    Post,
    Put,
    Patch,
    Delete,
    Options,
    Any,
}

impl HttpMethod {
    pub const ALL: [Self; 8] = [
        Self::Get,
        Self::Head,
        Self::Post,
        Self::Put,
        Self::Patch,
        Self::Delete,
        Self::Options,
        Self::Any,
    ];

    /// Case-insensitive: `get` is `GET`.
    pub fn parse(raw: &str) -> Result<Self, NameError> {
        Self::ALL
            .into_iter()
            .find(|m| m.as_str().eq_ignore_ascii_case(raw))
            .ok_or(NameError::Shape(
                "one of GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS, ANY",
            ))
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Get => "GET",
            Self::Head => "HEAD",
            Self::Post => "POST",
            Self::Put => "PUT",
            Self::Patch => "PATCH",
            Self::Delete => "DELETE",
            Self::Options => "OPTIONS",
            Self::Any => "ANY",
        }
    }
}

/// A route pattern as the `matchit` router reads it: `/ledgers/{node}/entries`,
/// `/files/{*path}`. Static segments win over parameters, parameters over a
/// catch-all; two patterns that could match the same paths with equal
/// priority (`/a/{x}` and `/a/{y}`) conflict.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RoutePattern(String);

impl RoutePattern {
    pub const MAX_LEN: usize = 500;

    pub fn parse(raw: &str) -> Result<Self, NameError> {
        if raw.is_empty() {
            return Err(NameError::Empty);
        }
        if raw.len() > Self::MAX_LEN {
            return Err(NameError::TooLong(Self::MAX_LEN));
        }
        if !raw.starts_with('/') || raw.contains(['?', '#']) || raw.chars().any(char::is_whitespace)
        {
            return Err(NameError::Shape(
                "a path starting with /, without query or spaces, e.g. /ledgers/{node_id}",
            ));
        }
        let mut router = matchit::Router::new();
        router.insert(raw, ()).map_err(|_| {
            NameError::Rule(
                "is not a valid route pattern (see matchit's syntax: /a/{param}/{*rest})",
            )
        })?;
        Ok(Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether `{name}` (or `{*name}`) is one of its parameters.
    pub fn has_parameter(&self, name: &str) -> bool {
        self.0.contains(&format!("{{{name}}}")) || self.0.contains(&format!("{{*{name}}}"))
    }
}

/// Where a request names the org node an endpoint applies to.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", content = "name", rename_all = "lowercase")]
pub enum NodeSource {
    /// A parameter of the route pattern.
    Path(String),
    /// A request header (names compared case-insensitively).
    Header(String),
    /// A field the caller extracted from the request (its body, say).
    Field(String),
}

impl NodeSource {
    pub const MAX_NAME_LEN: usize = 100;

    /// `kind` is `path`, `header` or `field`; a path parameter must be one
    /// of `route`'s.
    pub fn parse(kind: &str, name: &str, route: &RoutePattern) -> Result<Self, NameError> {
        if name.is_empty() {
            return Err(NameError::Empty);
        }
        if name.len() > Self::MAX_NAME_LEN {
            return Err(NameError::TooLong(Self::MAX_NAME_LEN));
        }
        match kind {
            "path" if route.has_parameter(name) => Ok(Self::Path(name.to_owned())),
            "path" => Err(NameError::Rule("must be a parameter of the route pattern")),
            "header"
                if name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') =>
            {
                Ok(Self::Header(name.to_ascii_lowercase()))
            }
            "header" => Err(NameError::Shape("a header name: letters, digits, - and _")),
            "field" => Ok(Self::Field(name.to_owned())),
            _ => Err(NameError::Shape("one of path, header, field")),
        }
    }

    pub fn kind(&self) -> &'static str {
        match self {
            Self::Path(_) => "path",
            Self::Header(_) => "header",
            Self::Field(_) => "field",
        }
    }

    pub fn name(&self) -> &str {
        match self {
            Self::Path(name) | Self::Header(name) | Self::Field(name) => name,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn route_patterns_follow_the_router_s_syntax() {
        assert!(RoutePattern::parse("/ledgers/{node}/entries").is_ok());
        assert!(RoutePattern::parse("/files/{*path}").is_ok());
        for bad in ["", "ledgers", "/a b", "/a?b=1", "/a/{", "/a/{*rest}/b"] {
            assert!(RoutePattern::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_path_node_source_must_be_a_parameter_of_the_route() {
        let route = RoutePattern::parse("/ledgers/{node}").unwrap();
        assert!(NodeSource::parse("path", "node", &route).is_ok());
        assert!(NodeSource::parse("path", "other", &route).is_err());
        assert_eq!(
            NodeSource::parse("header", "X-Org-Node", &route).unwrap(),
            NodeSource::Header("x-org-node".into())
        );
        assert!(NodeSource::parse("cookie", "n", &route).is_err());
    }

    #[test]
    fn methods_are_read_case_insensitively() {
        assert_eq!(HttpMethod::parse("get").unwrap(), HttpMethod::Get);
        assert!(HttpMethod::parse("FETCH").is_err());
    }
}
