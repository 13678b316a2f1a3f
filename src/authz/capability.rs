use std::fmt;

/// A capability key such as `payment.ledger.download`: dot-separated
/// segments of lower-case letters, digits and '_', each starting with a
/// letter. Only well-formed keys reach the database.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct CapabilityKey(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CapabilityKeyError {
    #[error("is required")]
    Empty,
    #[error("is longer than {} characters", CapabilityKey::MAX_LEN)]
    TooLong,
    #[error("must be dot-separated segments of a-z, 0-9 and '_', each starting with a letter")]
    Shape,
}

impl CapabilityKey {
    pub const MAX_LEN: usize = 200;

    pub fn parse(raw: &str) -> Result<Self, CapabilityKeyError> {
        if raw.is_empty() {
            return Err(CapabilityKeyError::Empty);
        }
        if raw.len() > Self::MAX_LEN {
            return Err(CapabilityKeyError::TooLong);
        }
        if crate::names::is_dotted_lowercase(raw) {
            Ok(Self(raw.to_owned()))
        } else {
            Err(CapabilityKeyError::Shape)
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for CapabilityKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capability_keys_are_dot_separated_lower_case_segments() {
        assert!(CapabilityKey::parse("payment.ledger.download").is_ok());
        assert_eq!(CapabilityKey::parse(""), Err(CapabilityKeyError::Empty));
        assert_eq!(
            CapabilityKey::parse("Payment.x"),
            Err(CapabilityKeyError::Shape)
        );
        assert_eq!(CapabilityKey::parse("a..b"), Err(CapabilityKeyError::Shape));
        assert_eq!(CapabilityKey::parse("a.b "), Err(CapabilityKeyError::Shape));
        assert_eq!(
            CapabilityKey::parse(&"a".repeat(201)),
            Err(CapabilityKeyError::TooLong)
        );
    }
}
