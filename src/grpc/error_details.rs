//! Rich gRPC errors (google.rpc, through `tonic-types`): every error carries
//! `ErrorInfo { reason, domain: "portcullis.dev" }` with a stable
//! UPPER_SNAKE reason, every `INVALID_ARGUMENT` a `BadRequest` naming the
//! field its message names, and `UNAVAILABLE` / `RESOURCE_EXHAUSTED` a
//! `RetryInfo`. Messages are unchanged. Errors are made with [`detailed`]
//! where the reason is known; [`ErrorDetailsLayer`] gives any other error
//! (the router's, a library's) the details its code implies.

use std::collections::HashMap;
use std::task::{Context, Poll};
use std::time::Duration;

use base64::Engine;
use futures_util::TryFutureExt;
use futures_util::future::MapOk;
use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};
use tower::{Layer, Service};

use super::reason::Reason;

pub const DOMAIN: &str = "portcullis.dev";
const DETAILS_HEADER: &str = "grpc-status-details-bin";

/// How long a client should wait before retrying when nothing says better.
const DEFAULT_RETRY: Duration = Duration::from_secs(1);

/// A status with its details: `reason` in `ErrorInfo` (with `metadata`) and
/// the reason's code; the field of a `field: problem` message in
/// `BadRequest` for `INVALID_ARGUMENT`; and `retry_after` (or a second) in
/// `RetryInfo` for `UNAVAILABLE` and `RESOURCE_EXHAUSTED`.
pub fn detailed(
    message: impl Into<String>,
    reason: Reason,
    metadata: &[(&str, &str)],
    retry_after: Option<Duration>,
) -> Status {
    let code = reason.code();
    let message = message.into();
    let metadata: HashMap<String, String> = metadata
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    let mut details = ErrorDetails::with_error_info(reason.as_str(), DOMAIN, metadata);
    if code == Code::InvalidArgument {
        let (field, problem) = message
            .split_once(": ")
            .unwrap_or(("request", message.as_str()));
        details.add_bad_request_violation(field, problem);
    }
    if matches!(code, Code::Unavailable | Code::ResourceExhausted) {
        details.set_retry_info(Some(retry_after.unwrap_or(DEFAULT_RETRY)));
    }
    Status::with_error_details(code, message, details)
}

/// Adds the details an error's code implies to any error response that has
/// none: a trailers-only response (how tonic answers a unary error) with a
/// `grpc-status` other than 0 and no `grpc-status-details-bin`.
#[derive(Clone, Copy, Debug, Default)]
pub struct ErrorDetailsLayer;

impl<S> Layer<S> for ErrorDetailsLayer {
    type Service = WithErrorDetails<S>;

    fn layer(&self, inner: S) -> Self::Service {
        WithErrorDetails { inner }
    }
}

#[derive(Clone, Debug)]
pub struct WithErrorDetails<S> {
    inner: S,
}

impl<S, ReqBody, ResBody> Service<http::Request<ReqBody>> for WithErrorDetails<S>
where
    S: Service<http::Request<ReqBody>, Response = http::Response<ResBody>>,
{
    type Response = http::Response<ResBody>;
    type Error = S::Error;
    // Mapped in place: no allocation per call on the hot path.
    type Future = MapOk<S::Future, fn(http::Response<ResBody>) -> http::Response<ResBody>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<ReqBody>) -> Self::Future {
        self.inner.call(request).map_ok(|mut response| {
            add_missing_details(response.headers_mut());
            response
        })
    }
}

fn add_missing_details(headers: &mut http::HeaderMap) {
    if headers.contains_key(DETAILS_HEADER) {
        return;
    }
    let code = match headers.get("grpc-status").and_then(|v| v.to_str().ok()) {
        Some(raw) => Code::from_i32(raw.parse().unwrap_or(2)),
        None => return,
    };
    if code == Code::Ok {
        return;
    }
    // The message as tonic sent it (percent-encoded), for the field name.
    let message = headers
        .get("grpc-message")
        .and_then(|v| v.to_str().ok())
        .map(|m| {
            percent_encoding::percent_decode_str(m)
                .decode_utf8_lossy()
                .into_owned()
        })
        .unwrap_or_default();
    let retry_after = headers
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .map(Duration::from_secs);
    let Some(reason) = Reason::of_code(code) else {
        return;
    };
    let status = detailed(message, reason, &[], retry_after);
    let encoded = base64::engine::general_purpose::STANDARD_NO_PAD.encode(status.details());
    if let Ok(value) = http::HeaderValue::from_str(&encoded) {
        headers.insert(DETAILS_HEADER, value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_invalid_argument_names_its_field_in_bad_request() {
        let status = detailed(
            "checks[3].org_node_id: must be a UUID",
            Reason::InvalidArgument,
            &[],
            None,
        );
        assert_eq!(status.message(), "checks[3].org_node_id: must be a UUID");
        let details = status.get_error_details();
        let violation = &details.bad_request().unwrap().field_violations[0];
        assert_eq!(violation.field, "checks[3].org_node_id");
        assert_eq!(violation.description, "must be a UUID");
        let info = details.error_info().unwrap();
        assert_eq!(
            (info.reason.as_str(), info.domain.as_str()),
            ("INVALID_ARGUMENT", DOMAIN)
        );
    }

    #[test]
    fn retryable_codes_carry_retry_info() {
        for reason in [Reason::Unavailable, Reason::ResourceExhausted] {
            let status = detailed("later", reason, &[], Some(Duration::from_secs(7)));
            let retry = status.get_error_details().retry_info().cloned().unwrap();
            assert_eq!(retry.retry_delay, Some(Duration::from_secs(7)));
        }
        let internal = detailed("internal error", Reason::Internal, &[], None);
        assert!(internal.get_error_details().retry_info().is_none());
    }

    #[test]
    fn the_layer_details_an_error_that_had_none_and_leaves_the_message() {
        let mut headers = http::HeaderMap::new();
        headers.insert("grpc-status", http::HeaderValue::from_static("3"));
        headers.insert(
            "grpc-message",
            http::HeaderValue::from_static("org_node_id:%20must%20be%20a%20UUID"),
        );
        add_missing_details(&mut headers);
        let status = Status::from_header_map(&headers).unwrap();
        assert_eq!(status.message(), "org_node_id: must be a UUID");
        let details = status.get_error_details();
        assert_eq!(details.error_info().unwrap().reason, "INVALID_ARGUMENT");
        assert_eq!(
            details.bad_request().unwrap().field_violations[0].field,
            "org_node_id"
        );
    }
}
