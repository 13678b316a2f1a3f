//! Idempotency keys: a client's name for one logical create.

use super::NameError;

/// A client's key for one logical create: 1 to 200 printable ASCII
/// characters (a UUID is a good choice).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    /// `None` for an empty field: the call is not made idempotent.
    pub fn parse(raw: &str) -> Result<Option<Self>, NameError> {
        if raw.is_empty() {
            return Ok(None);
        }
        if raw.len() > 200 || !raw.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(NameError::Shape("1 to 200 printable ASCII characters"));
        }
        Ok(Some(Self(raw.to_owned())))
    }
}

impl IdempotencyKey {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}
