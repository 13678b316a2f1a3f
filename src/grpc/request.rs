//! Small helpers shared by the handlers: reading the caller and request id,
//! naming a bad field, converting times.

use chrono::{DateTime, Utc};
use tonic::{Request, Status};

use crate::tokens::Principal;

/// Header carrying the request id (set by the request-id layer when absent).
pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// `INVALID_ARGUMENT` naming the field.
pub fn invalid(field: &str, problem: impl std::fmt::Display) -> Status {
    Status::invalid_argument(format!("{field}: {problem}"))
}

/// The caller the authentication layer established.
pub fn caller<T>(request: &Request<T>) -> Result<Principal, Status> {
    request
        .extensions()
        .get::<Principal>()
        .cloned()
        .ok_or_else(|| Status::unauthenticated(super::access::UNAUTHENTICATED))
}

pub fn request_id<T>(request: &Request<T>) -> Option<String> {
    request
        .metadata()
        .get(REQUEST_ID_HEADER)
        .and_then(|value| value.to_str().ok())
        .filter(|id| !id.is_empty() && id.len() <= 128)
        .map(str::to_owned)
}

pub fn timestamp(time: DateTime<Utc>) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: time.timestamp(),
        nanos: time.timestamp_subsec_nanos() as i32,
    }
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
