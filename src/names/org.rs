//! Names of the org tree and the tenant: node types, labels, role keys,
//! tenant slugs.

use super::NameError;

/// An org node's type: lowercase letters, digits and `_`, starting with a
/// letter, at most 63 characters (`company`, `site`, `cost_center`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeType(String);

impl NodeType {
    pub fn parse(raw: &str) -> Result<Self, NameError> {
        let mut chars = raw.chars();
        let valid = chars.next().is_some_and(|c| c.is_ascii_lowercase())
            && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
            && raw.len() <= 63;
        if valid {
            Ok(Self(raw.to_owned()))
        } else {
            Err(NameError::Shape(
                "lowercase letters, digits and _, starting with a letter, at most 63",
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A display label: 1 to 200 characters, no control characters, no
/// surrounding whitespace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Label(String);

impl Label {
    pub fn parse(raw: &str) -> Result<Self, NameError> {
        if raw.trim().is_empty() {
            return Err(NameError::Empty);
        }
        if raw.trim() != raw {
            return Err(NameError::Rule("must not start or end with whitespace"));
        }
        if raw.chars().count() > 200 {
            return Err(NameError::Rule("must be at most 200 characters"));
        }
        if raw.chars().any(char::is_control) {
            return Err(NameError::Rule("must not contain control characters"));
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A role's key within its tenant: lowercase letters, digits, `_`, `.` and
/// `-`, starting with a letter, at most 63 characters (`treasurer`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RoleKey(String);

impl RoleKey {
    pub fn parse(raw: &str) -> Result<Self, NameError> {
        let mut chars = raw.chars();
        let valid = chars.next().is_some_and(|c| c.is_ascii_lowercase())
            && chars.all(|c| {
                c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '_' | '.' | '-')
            })
            && raw.len() <= 63;
        if valid {
            Ok(Self(raw.to_owned()))
        } else {
            Err(NameError::Shape(
                "lowercase letters, digits, _ . and -, starting with a letter, at most 63",
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A tenant's short name in URLs and logs: lowercase letters, digits and
/// `-`, at most 63 characters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TenantSlug(String);

impl TenantSlug {
    pub fn parse(raw: &str) -> Result<Self, NameError> {
        let mut chars = raw.chars();
        let valid = chars
            .next()
            .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
            && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            && raw.len() <= 63;
        if valid {
            Ok(Self(raw.to_owned()))
        } else {
            Err(NameError::Shape(
                "lowercase letters, digits and -, at most 63",
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_types_are_lowercase_identifiers() {
        assert!(NodeType::parse("cost_center2").is_ok());
        for bad in ["", "Site", "2site", "site-a", "site a", &"a".repeat(64)] {
            assert!(NodeType::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn role_keys_are_lowercase_identifiers_with_dots_and_dashes() {
        assert!(RoleKey::parse("treasury.viewer-2").is_ok());
        for bad in ["", "Treasurer", "-x", "a b", &"a".repeat(64)] {
            assert!(RoleKey::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn labels_are_trimmed_printable_and_bounded() {
        assert!(Label::parse("Paris Treasury").is_ok());
        assert!(Label::parse(&"é".repeat(200)).is_ok());
        for bad in ["", "  ", " Paris", "Paris\n", "a\u{0}b", &"a".repeat(201)] {
            assert!(Label::parse(bad).is_err(), "{bad:?}");
        }
    }
}
