//! Validated names: a service key and a permission. Built only by parsing,
//! so code that holds one never re-checks it.

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("is required")]
    Empty,
    #[error("is longer than {0} characters")]
    TooLong(usize),
    #[error("must be {0}")]
    Shape(&'static str),
}

/// The public name of a service account, e.g. `billing-gateway`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ServiceKey(String);

impl ServiceKey {
    pub const MAX_LEN: usize = 63;

    pub fn parse(raw: &str) -> Result<Self, NameError> {
        if raw.is_empty() {
            return Err(NameError::Empty);
        }
        if raw.len() > Self::MAX_LEN {
            return Err(NameError::TooLong(Self::MAX_LEN));
        }
        let mut chars = raw.chars();
        let first_ok = chars.next().is_some_and(|c| c.is_ascii_lowercase());
        let rest_ok =
            chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "_.-".contains(c));
        if first_ok && rest_ok {
            Ok(Self(raw.to_owned()))
        } else {
            Err(NameError::Shape(
                "a lower-case letter followed by a-z, 0-9, '_', '.' or '-'",
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ServiceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A permission a service account can hold, e.g. `authz.check`:
/// dot-separated segments of lower-case letters, digits and '_'.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Permission(String);

impl Permission {
    pub const MAX_LEN: usize = 100;

    pub fn parse(raw: &str) -> Result<Self, NameError> {
        if raw.is_empty() {
            return Err(NameError::Empty);
        }
        if raw.len() > Self::MAX_LEN {
            return Err(NameError::TooLong(Self::MAX_LEN));
        }
        if crate::names::is_dotted_lowercase(raw) {
            Ok(Self(raw.to_owned()))
        } else {
            Err(NameError::Shape(
                "dot-separated segments of a-z, 0-9 and '_', each starting with a letter",
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Permission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_keys_are_lower_case_names() {
        assert!(ServiceKey::parse("demo-gateway").is_ok());
        assert!(ServiceKey::parse("billing.v2_api").is_ok());
        assert_eq!(ServiceKey::parse(""), Err(NameError::Empty));
        assert!(ServiceKey::parse("Demo").is_err());
        assert!(ServiceKey::parse("9lives").is_err());
        assert!(ServiceKey::parse("a b").is_err());
        assert!(ServiceKey::parse(&"a".repeat(64)).is_err());
    }

    #[test]
    fn permissions_are_dot_separated_lower_case_segments() {
        assert!(Permission::parse("authz.check").is_ok());
        assert!(Permission::parse("tokens").is_ok());
        assert!(Permission::parse("authz..check").is_err());
        assert!(Permission::parse("authz.Check").is_err());
        assert!(Permission::parse(".authz").is_err());
        assert!(Permission::parse("authz.1check").is_err());
    }
}
