//! Login names: an email (compared case-insensitively, stored lower-case)
//! or an E.164 phone number. Built only by parsing.

use std::fmt;

use super::LoginError;

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Email(String);

impl Email {
    pub fn parse(raw: &str) -> Result<Self, LoginError> {
        let trimmed = raw.trim();
        if trimmed.is_empty() {
            return Err(LoginError::Empty);
        }
        if trimmed.len() > 320 || !email_address::EmailAddress::is_valid(trimmed) {
            return Err(LoginError::Email);
        }
        Ok(Self(trimmed.to_lowercase()))
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Phone(String);

impl Phone {
    /// `+` then 2 to 15 digits, the first not 0 (ITU-T E.164).
    pub fn parse(raw: &str) -> Result<Self, LoginError> {
        let trimmed = raw.trim();
        if trimmed.is_empty() {
            return Err(LoginError::Empty);
        }
        let digits = trimmed.strip_prefix('+').ok_or(LoginError::Phone)?;
        let valid = (2..=15).contains(&digits.len())
            && digits.bytes().all(|b| b.is_ascii_digit())
            && !digits.starts_with('0');
        if valid {
            Ok(Self(trimmed.to_owned()))
        } else {
            Err(LoginError::Phone)
        }
    }
}

/// How a user names themselves at login, and where codes are sent.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Login {
    Email(Email),
    Phone(Phone),
}

impl Login {
    /// An email if it has an '@', else a phone number.
    pub fn parse_destination(raw: &str) -> Result<Self, LoginError> {
        if raw.contains('@') {
            Email::parse(raw).map(Self::Email)
        } else {
            Phone::parse(raw).map(Self::Phone)
        }
    }

    /// Exactly one of an email and a phone (empty counts as absent), as for
    /// an invitation; an error names the field at fault.
    pub fn one_of(email: &str, phone: &str) -> Result<Self, (&'static str, String)> {
        match (email.is_empty(), phone.is_empty()) {
            (false, true) => Email::parse(email)
                .map(Self::Email)
                .map_err(|e| ("email", e.to_string())),
            (true, false) => Phone::parse(phone)
                .map(Self::Phone)
                .map_err(|e| ("phone", e.to_string())),
            (true, true) => Err(("email", "or phone is required".into())),
            (false, false) => Err(("phone", "give an email or a phone, not both".into())),
        }
    }

    /// The `user_identities.kind` it matches.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Email(_) => "email",
            Self::Phone(_) => "phone",
        }
    }

    /// The email, if this is one (for `users.email_addr`).
    pub fn email(&self) -> Option<&str> {
        match self {
            Self::Email(Email(value)) => Some(value),
            Self::Phone(_) => None,
        }
    }

    /// The phone number, if this is one (for `users.phone_e164`).
    pub fn phone(&self) -> Option<&str> {
        match self {
            Self::Phone(Phone(value)) => Some(value),
            Self::Email(_) => None,
        }
    }

    pub fn value(&self) -> &str {
        match self {
            Self::Email(Email(value)) | Self::Phone(Phone(value)) => value,
        }
    }
}

impl fmt::Display for Login {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.value())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_compare_case_insensitively() {
        assert_eq!(
            Email::parse(" Alice@Demo.Example "),
            Email::parse("alice@demo.example")
        );
        assert_eq!(Email::parse("no-at-sign"), Err(LoginError::Email));
        assert_eq!(Email::parse(""), Err(LoginError::Empty));
    }

    #[test]
    fn phones_are_e164() {
        assert!(Phone::parse("+33612345678").is_ok());
        assert_eq!(Phone::parse("0612345678"), Err(LoginError::Phone));
        assert_eq!(Phone::parse("+0612"), Err(LoginError::Phone));
        assert_eq!(Phone::parse("+336 12"), Err(LoginError::Phone));
        assert_eq!(Phone::parse("+1234567890123456"), Err(LoginError::Phone));
    }

    #[test]
    fn a_destination_is_an_email_or_a_phone() {
        assert_eq!(
            Login::parse_destination("a@b.example").unwrap().kind(),
            "email"
        );
        assert_eq!(
            Login::parse_destination("+33612345678").unwrap().kind(),
            "phone"
        );
    }
}
