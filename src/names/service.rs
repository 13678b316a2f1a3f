//! A service account's key.

use std::fmt;

use super::NameError;

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
}
