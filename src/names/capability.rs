//! Capability keys and service permissions: dot-separated lower-case names.

use std::fmt;

use super::{NameError, is_dotted_lowercase};

const DOTTED: &str = "dot-separated segments of a-z, 0-9 and '_', each starting with a letter";

/// A required dotted name of at most `max_len` bytes.
fn dotted(raw: &str, max_len: usize) -> Result<String, NameError> {
    if raw.is_empty() {
        return Err(NameError::Empty);
    }
    if raw.len() > max_len {
        return Err(NameError::TooLong(max_len));
    }
    if is_dotted_lowercase(raw) {
        Ok(raw.to_owned())
    } else {
        Err(NameError::Shape(DOTTED))
    }
}

/// A capability key such as `payment.ledger.download`: dot-separated
/// segments of lower-case letters, digits and '_', each starting with a
/// letter. Only well-formed keys reach the database.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct CapabilityKey(String);

impl CapabilityKey {
    pub const MAX_LEN: usize = 200;

    pub fn parse(raw: &str) -> Result<Self, NameError> {
        dotted(raw, Self::MAX_LEN).map(Self)
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

/// A permission a service account can hold, e.g. `authz.check`:
/// dot-separated segments of lower-case letters, digits and '_'.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Permission(String);

impl Permission {
    pub const MAX_LEN: usize = 100;

    pub fn parse(raw: &str) -> Result<Self, NameError> {
        dotted(raw, Self::MAX_LEN).map(Self)
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
    fn capability_keys_are_dot_separated_lower_case_segments() {
        assert!(CapabilityKey::parse("payment.ledger.download").is_ok());
        assert_eq!(CapabilityKey::parse(""), Err(NameError::Empty));
        assert_eq!(
            CapabilityKey::parse("Payment.x"),
            Err(NameError::Shape(DOTTED))
        );
        assert_eq!(CapabilityKey::parse("a..b"), Err(NameError::Shape(DOTTED)));
        assert_eq!(CapabilityKey::parse("a.b "), Err(NameError::Shape(DOTTED)));
        assert_eq!(
            CapabilityKey::parse(&"a".repeat(201)),
            Err(NameError::TooLong(CapabilityKey::MAX_LEN))
        );
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
