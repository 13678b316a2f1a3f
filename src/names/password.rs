//! A new password: bounded before any hashing, whoever sets it (the API,
//! the CLI, an invitation, a reset).

use std::fmt;

use secrecy::{ExposeSecret, SecretString};

use super::NameError;

/// Longer passwords are refused before any hashing (a multi-megabyte
/// "password" would otherwise be a cheap way to burn CPU).
pub const MAX_PASSWORD_BYTES: usize = 1024;
/// Shorter new passwords are refused.
pub const MIN_PASSWORD_CHARS: usize = 12;

/// A password someone chose: 12 characters at least, 1,024 bytes at most.
/// Its `Debug` shows nothing of it.
#[derive(Clone)]
pub struct NewPassword(SecretString);

impl NewPassword {
    pub fn parse(raw: &str) -> Result<Self, NameError> {
        if raw.is_empty() {
            return Err(NameError::Empty);
        }
        if raw.len() > MAX_PASSWORD_BYTES {
            return Err(NameError::TooManyBytes(MAX_PASSWORD_BYTES));
        }
        if raw.chars().count() < MIN_PASSWORD_CHARS {
            return Err(NameError::TooShort(MIN_PASSWORD_CHARS));
        }
        Ok(Self(SecretString::from(raw.to_owned())))
    }

    pub fn secret(&self) -> &SecretString {
        &self.0
    }
}

impl fmt::Debug for NewPassword {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("NewPassword(***)")
    }
}

impl From<NewPassword> for SecretString {
    fn from(password: NewPassword) -> Self {
        SecretString::from(password.0.expose_secret().to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_password_is_bounded_both_ways() {
        assert!(NewPassword::parse("correct horse battery staple").is_ok());
        assert_eq!(NewPassword::parse("").unwrap_err(), NameError::Empty);
        assert_eq!(
            NewPassword::parse("short").unwrap_err(),
            NameError::TooShort(MIN_PASSWORD_CHARS)
        );
        assert_eq!(
            NewPassword::parse(&"x".repeat(1025)).unwrap_err(),
            NameError::TooManyBytes(MAX_PASSWORD_BYTES)
        );
        assert_eq!(
            format!("{:?}", NewPassword::parse("correct horse battery").unwrap()),
            "NewPassword(***)"
        );
    }
}
