//! Small helpers shared by the handlers: reading the caller and request id,
//! naming a bad field, converting times.

use chrono::{DateTime, Utc};
use tonic::{Request, Status};

use crate::tokens::Principal;

/// Header carrying the request id (set by the request-id layer when absent).
pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// `INVALID_ARGUMENT` naming the field.
pub fn invalid(field: &str, problem: impl std::fmt::Display) -> Status {
    super::error_details::detailed(
        format!("{field}: {problem}"),
        super::reason::Reason::InvalidArgument,
        &[("field", field)],
        None,
    )
}

/// The caller the authentication layer established.
pub fn caller<T>(request: &Request<T>) -> Result<Principal, Status> {
    request
        .extensions()
        .get::<Principal>()
        .cloned()
        .ok_or_else(super::access::unauthenticated)
}

pub fn request_id<T>(request: &Request<T>) -> Option<String> {
    request
        .metadata()
        .get(REQUEST_ID_HEADER)
        .and_then(|value| value.to_str().ok())
        .filter(|id| !id.is_empty() && id.len() <= 128)
        .map(str::to_owned)
}

/// The client's address: the TCP peer, or, behind `trusted_proxy_hops`
/// proxies that each append the address they received from to
/// `x-forwarded-for`, the entry the outermost trusted proxy appended,
/// counted from the right. Entries to its left were written by the client
/// and are never believed. A header with fewer entries than trusted hops,
/// or an entry that is not an IP address, falls back to the peer.
pub fn client_address<T>(request: &Request<T>, trusted_proxy_hops: usize) -> Option<String> {
    let forwarded = request
        .metadata()
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|value| value.to_str().ok())
        .collect::<Vec<_>>()
        .join(",");
    forwarded_client(&forwarded, trusted_proxy_hops)
        .map(|ip| ip.to_string())
        .or_else(|| request.remote_addr().map(|addr| addr.ip().to_string()))
}

/// The address `hops` trusted proxies vouch for in an `x-forwarded-for`
/// value (`None` when not trusting any, or when it cannot be told).
pub fn forwarded_client(header: &str, hops: usize) -> Option<std::net::IpAddr> {
    if hops == 0 || header.trim().is_empty() {
        return None;
    }
    let entries: Vec<&str> = header.split(',').map(str::trim).collect();
    let index = entries.len().checked_sub(hops)?;
    entries.get(index)?.parse().ok()
}

pub fn timestamp(time: DateTime<Utc>) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: time.timestamp(),
        nanos: time.timestamp_subsec_nanos() as i32,
    }
}

#[cfg(test)]
mod tests {
    use super::forwarded_client;

    #[test]
    fn the_address_the_trusted_proxy_appended_wins_over_what_the_client_wrote() {
        let header = "198.51.100.66, 203.0.113.9";
        assert_eq!(forwarded_client(header, 1), "203.0.113.9".parse().ok());
        assert_eq!(forwarded_client(header, 2), "198.51.100.66".parse().ok());
        assert_eq!(forwarded_client(header, 3), None);
        assert_eq!(forwarded_client(header, 0), None);
        assert_eq!(forwarded_client("not-an-ip", 1), None);
        assert_eq!(
            forwarded_client("2001:db8::1", 1),
            "2001:db8::1".parse().ok()
        );
    }
}
