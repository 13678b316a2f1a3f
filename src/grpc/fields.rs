//! Request fields every service parses the same way: ids, tokens,
//! passwords, codes, destinations. Each refusal names its field. And ids
//! as every service writes them back.

use secrecy::SecretString;
use tonic::Status;
use uuid::Uuid;

use super::request::invalid;
use crate::authn::{Login, MAX_PASSWORD_BYTES};
use crate::names::NewPassword;
use crate::secrets::SECRET_LEN;

pub fn parse_uuid(field: &str, value: &str) -> Result<Uuid, Status> {
    if value.is_empty() {
        return Err(invalid(field, "is required"));
    }
    Uuid::try_parse(value).map_err(|_| invalid(field, "must be a UUID"))
}

/// An id as the API writes it (lowercase, hyphenated), encoded directly:
/// `to_string` goes through `fmt`, a measurable share of a listing page's
/// CPU at five ids per node.
pub fn id_text(id: Uuid) -> String {
    id.hyphenated()
        .encode_lower(&mut Uuid::encode_buffer())
        .to_owned()
}

/// A required id of one kind (`TenantId`, `OrgNodeId`, `UserId`).
pub fn parse_id<T>(field: &str, value: &str) -> Result<T, Status>
where
    T: std::str::FromStr<Err = crate::names::NameError>,
{
    value.parse().map_err(|e| invalid(field, e))
}

/// A required token field, refused before any parsing when oversized.
pub fn token_field<'a>(field: &str, token: &'a str) -> Result<&'a str, Status> {
    use crate::tokens::MAX_TOKEN_LEN;
    if token.is_empty() {
        return Err(invalid(field, "is required"));
    }
    if token.len() > MAX_TOKEN_LEN {
        return Err(invalid(
            field,
            format!("is longer than {MAX_TOKEN_LEN} characters"),
        ));
    }
    Ok(token)
}

/// An OpenID Connect ID token: required, refused before any parsing when
/// oversized.
pub fn id_token_field(field: &str, token: &str) -> Result<SecretString, Status> {
    use crate::authn::federation::MAX_ID_TOKEN_LEN;
    if token.is_empty() {
        return Err(invalid(field, "is required"));
    }
    if token.len() > MAX_ID_TOKEN_LEN {
        return Err(invalid(
            field,
            format!("is longer than {MAX_ID_TOKEN_LEN} characters"),
        ));
    }
    Ok(SecretString::from(token.to_owned()))
}

/// A refresh token: required, and no longer than any secret we issue
/// (refused before anything looks it up).
pub fn refresh_token_field(field: &str, token: &str) -> Result<(), Status> {
    if token.is_empty() {
        return Err(invalid(field, "is required"));
    }
    if token.len() > SECRET_LEN {
        return Err(invalid(
            field,
            format!("is longer than {SECRET_LEN} characters"),
        ));
    }
    Ok(())
}

/// A password presented to log in: required, and bounded before any
/// hashing.
pub fn password_field(field: &str, password: &str) -> Result<SecretString, Status> {
    if password.is_empty() {
        return Err(invalid(field, "is required"));
    }
    if password.len() > MAX_PASSWORD_BYTES {
        return Err(invalid(
            field,
            format!("is longer than {MAX_PASSWORD_BYTES} bytes"),
        ));
    }
    Ok(SecretString::from(password.to_owned()))
}

/// A password being set: the domain's bounds, named by the field.
pub fn new_password_field(field: &str, password: &str) -> Result<NewPassword, Status> {
    NewPassword::parse(password).map_err(|e| invalid(field, e))
}

pub fn code_field(field: &str, code: &str) -> Result<SecretString, Status> {
    if code.len() == 6 && code.bytes().all(|b| b.is_ascii_digit()) {
        Ok(SecretString::from(code.to_owned()))
    } else {
        Err(invalid(field, "must be 6 digits"))
    }
}

pub fn destination_field(field: &str, value: &str) -> Result<Login, Status> {
    Login::parse_destination(value).map_err(|e| invalid(field, e))
}

#[cfg(test)]
mod tests {
    use uuid::Uuid;

    #[test]
    fn an_id_is_written_lowercase_and_hyphenated_as_to_string_writes_it() {
        let id = Uuid::from_u128(0xA1B2_C3D4_E5F6_0718_293A_4B5C_6D7E_8F90);
        assert_eq!(super::id_text(id), "a1b2c3d4-e5f6-0718-293a-4b5c6d7e8f90");
        assert_eq!(super::id_text(id), id.to_string());
    }
}
