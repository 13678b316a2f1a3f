//! How the API answers: its errors (`{"error": {"status", "message"}}`),
//! from the domain's and the caller table's, and the answer with its
//! request id and what was decided, for the request's log line.

use axum::body::Bytes;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::authz::AuthzError;
use crate::callers::CallerRefusal;
use crate::http::edge::Decided;

/// An answer other than 200: its status and message (naming the field).
#[derive(Debug)]
pub(super) struct Problem {
    pub(super) status: StatusCode,
    pub(super) message: String,
}

impl Problem {
    pub(super) fn bad(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
        }
    }

    pub(super) fn json(&self) -> Value {
        json!({ "status": self.status.as_u16(), "message": self.message })
    }

    /// The outcome and reason a refused request or item is logged and
    /// counted under.
    pub(super) fn outcome(&self) -> (&'static str, &'static str) {
        match self.status {
            StatusCode::UNAUTHORIZED => ("unauthenticated", "unauthenticated"),
            StatusCode::FORBIDDEN => ("denied", "forbidden"),
            StatusCode::NOT_FOUND => ("error", "not_found"),
            StatusCode::SERVICE_UNAVAILABLE => ("unavailable", "unavailable"),
            status if status.is_client_error() => ("error", "bad_request"),
            _ => ("error", "internal"),
        }
    }
}

impl From<AuthzError> for Problem {
    fn from(error: AuthzError) -> Self {
        let (status, message) = match error {
            AuthzError::BadPageToken => (
                StatusCode::BAD_REQUEST,
                "page.token: not a token of this search".into(),
            ),
            AuthzError::UnknownCapability => (
                StatusCode::NOT_FOUND,
                "action.name: no such capability".into(),
            ),
            AuthzError::UnknownOrgNode => (
                StatusCode::NOT_FOUND,
                "resource.id: no such node in the tenant".into(),
            ),
            AuthzError::Forbidden(message) => (StatusCode::FORBIDDEN, message),
            AuthzError::TenantForbidden { .. } => (StatusCode::FORBIDDEN, error.to_string()),
            AuthzError::RevocationUnknown => (
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable; retry later".into(),
            ),
            AuthzError::Db(cause) if cause.is_retryable() => (
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable; retry later".into(),
            ),
            other => {
                tracing::error!(error = %other, "AuthZEN request failed");
                (StatusCode::INTERNAL_SERVER_ERROR, "internal error".into())
            }
        };
        Self { status, message }
    }
}

pub(super) fn respond(headers: &HeaderMap, outcome: Result<Value, Problem>) -> Response {
    respond_decided(headers, outcome, None)
}

/// The answer, with what was decided for the request's log line (a refused
/// request's own outcome when it was refused).
pub(super) fn respond_decided(
    headers: &HeaderMap,
    outcome: Result<Value, Problem>,
    decided: Option<Decided>,
) -> Response {
    let refused = outcome.as_ref().err().map(|problem| {
        let (outcome, reason) = problem.outcome();
        Decided {
            outcome,
            reason: reason.to_owned(),
            caller: None,
        }
    });
    let (status, body) = match outcome {
        Ok(body) => (StatusCode::OK, body),
        Err(problem) => (problem.status, json!({ "error": problem.json() })),
    };
    let mut response = (
        status,
        [("content-type", "application/json")],
        body.to_string(),
    )
        .into_response();
    if status == StatusCode::UNAUTHORIZED {
        response
            .headers_mut()
            .insert("www-authenticate", HeaderValue::from_static("Bearer"));
    }
    if let Some(id) = headers.get("x-request-id") {
        response.headers_mut().insert("x-request-id", id.clone());
    }
    if let Some(decided) = refused.or(decided) {
        response.extensions_mut().insert(decided);
    }
    response
}

pub(super) fn parse<T: for<'de> Deserialize<'de>>(body: &Bytes) -> Result<T, Problem> {
    serde_json::from_slice(body)
        .map_err(|e| Problem::bad(format!("body: not the expected JSON: {e}")))
}

pub(super) fn request_id(headers: &HeaderMap) -> Option<&str> {
    headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|id| !id.is_empty() && id.len() <= 128)
}

impl From<CallerRefusal> for Problem {
    fn from(refusal: CallerRefusal) -> Self {
        let (status, message) = match refusal {
            CallerRefusal::Unauthenticated => (
                StatusCode::UNAUTHORIZED,
                "a service's bearer token is required".to_owned(),
            ),
            CallerRefusal::RevocationUnknown => (
                StatusCode::SERVICE_UNAVAILABLE,
                "cannot confirm that the token is not revoked; retry shortly".to_owned(),
            ),
            CallerRefusal::UserNotAllowed { .. } => (
                StatusCode::FORBIDDEN,
                "user tokens may not call the AuthZEN API".to_owned(),
            ),
            CallerRefusal::PermissionMissing { permission, .. } => (
                StatusCode::FORBIDDEN,
                format!("this needs the permission {permission}"),
            ),
        };
        Self { status, message }
    }
}
