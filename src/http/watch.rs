//! `GET /v1/watch` on the AuthZEN listener: the change stream as
//! Server-Sent Events, for consumers without gRPC. Each change is an
//! `event: change` whose `id` is its token, so an `EventSource` resumes by
//! itself (it sends `Last-Event-ID`); an idle stream gets `event:
//! checkpoint`; a stream that ends says why in `event: end`, with the token
//! to resume from. The caller is a service with `authz.watch`, by the same
//! rule as the gRPC `Watch`.

use std::convert::Infallible;
use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::sse::{Event, Sse};
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use futures_util::StreamExt;
use serde_json::json;

use crate::callers::{self, CallerRefusal};
use crate::tokens::Tokens;
use crate::watch::{Hub, Item, Kind, Start, Subscription, WatchError};

pub struct WatchEdge {
    pub hub: Arc<Hub>,
    pub tokens: Arc<Tokens>,
}

pub fn routes(state: Arc<WatchEdge>) -> axum::Router {
    axum::Router::new()
        .route("/v1/watch", axum::routing::get(watch))
        .with_state(state)
}

/// The query: as `WatchRequest`, `kinds` comma-separated.
#[derive(Debug, Default)]
struct WatchQuery {
    tenant_id: String,
    kinds: String,
    resume_token: String,
}

impl WatchQuery {
    /// The query, or the name of a parameter it does not take.
    fn parse(uri: &Uri) -> Result<WatchQuery, String> {
        let mut query = WatchQuery::default();
        let pairs = url::form_urlencoded::parse(uri.query().unwrap_or_default().as_bytes());
        for (name, value) in pairs {
            let slot = match name.as_ref() {
                "tenant_id" => &mut query.tenant_id,
                "kinds" => &mut query.kinds,
                "resume_token" => &mut query.resume_token,
                other => return Err(other.to_owned()),
            };
            *slot = value.into_owned();
        }
        Ok(query)
    }
}

async fn watch(State(edge): State<Arc<WatchEdge>>, headers: HeaderMap, uri: Uri) -> Response {
    match open(&edge, &headers, &uri).await {
        Ok(response) => response,
        Err(refusal) => refusal,
    }
}

async fn open(edge: &WatchEdge, headers: &HeaderMap, uri: &Uri) -> Result<Response, Response> {
    let authorization = headers.get("authorization").and_then(|v| v.to_str().ok());
    let caller = callers::authorize(&edge.tokens, "Changes/Watch", authorization, Utc::now())
        .map_err(refused)?
        .ok_or_else(|| refused(CallerRefusal::Unauthenticated))?;
    let query = WatchQuery::parse(uri).map_err(|unknown| {
        problem(
            StatusCode::BAD_REQUEST,
            &format!("{unknown}: unknown parameter; tenant_id, kinds and resume_token are"),
            Some(&unknown),
        )
    })?;
    let tenant = match query.tenant_id.trim() {
        "" => None,
        id => Some(uuid::Uuid::parse_str(id).map_err(|_| {
            problem(
                StatusCode::BAD_REQUEST,
                "tenant_id: is not a UUID",
                Some("tenant_id"),
            )
        })?),
    };
    let kinds: Vec<&str> = query
        .kinds
        .split(',')
        .filter(|k| !k.trim().is_empty())
        .collect();
    let kinds = Kind::parse_all(&kinds).map_err(watch_problem)?;
    // An EventSource reconnecting sends the last id it saw.
    let resume = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.trim().is_empty())
        .unwrap_or(&query.resume_token);
    let start = Start::parse(edge.tokens.keys(), resume, Utc::now()).map_err(watch_problem)?;
    let request_id = headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let subscription = Subscription::for_caller(&caller, tenant, kinds, start, request_id)
        .map_err(watch_problem)?;
    let stream = edge.hub.open(subscription).await.map_err(watch_problem)?;
    let events = stream.map(|item| Ok::<_, Infallible>(event(item)));
    Ok(Sse::new(events).into_response())
}

fn event(item: Result<Item, WatchError>) -> Event {
    match item {
        Ok(Item::Change { change, token }) => Event::default()
            .event("change")
            .id(token.clone())
            .data(json!({ "token": token, "change": change }).to_string()),
        Ok(Item::Checkpoint { token }) => Event::default()
            .event("checkpoint")
            .id(token.clone())
            .data(json!({ "token": token }).to_string()),
        Err(error) => Event::default().event("end").data(
            json!({
                "error": error.to_string(),
                "resume_token": error.resume_token(),
            })
            .to_string(),
        ),
    }
}

fn watch_problem(error: WatchError) -> Response {
    let status = match &error {
        WatchError::BadToken | WatchError::BadKind(..) | WatchError::OutOfRange { .. } => {
            StatusCode::BAD_REQUEST
        }
        WatchError::TenantNotFound => StatusCode::NOT_FOUND,
        WatchError::FellBehind { .. } | WatchError::ShuttingDown { .. } => {
            StatusCode::SERVICE_UNAVAILABLE
        }
        WatchError::Db(crate::db::DbError::Unavailable(_) | crate::db::DbError::Timeout) => {
            StatusCode::SERVICE_UNAVAILABLE
        }
        WatchError::Db(error) => {
            tracing::error!(%error, "opening a change stream failed");
            return problem(StatusCode::INTERNAL_SERVER_ERROR, "internal error", None);
        }
    };
    let message = error.to_string();
    let field = message.split_once(": ").map(|(field, _)| field);
    let mut response = problem(status, &message, field.filter(|f| !f.contains(' ')));
    if let WatchError::OutOfRange { oldest, .. } = &error
        && let Ok(value) = oldest.parse()
    {
        response.headers_mut().insert("x-watch-resume-token", value);
    }
    response
}

fn refused(refusal: CallerRefusal) -> Response {
    match refusal {
        CallerRefusal::Unauthenticated => problem(
            StatusCode::UNAUTHORIZED,
            "a valid service token is required (authorization: Bearer)",
            None,
        ),
        CallerRefusal::RevocationUnknown => problem(
            StatusCode::SERVICE_UNAVAILABLE,
            "whether the token is revoked cannot be told now; retry",
            None,
        ),
        CallerRefusal::UserNotAllowed { operation } => problem(
            StatusCode::FORBIDDEN,
            &format!("{operation}: services only"),
            None,
        ),
        CallerRefusal::PermissionMissing {
            operation,
            permission,
        } => problem(
            StatusCode::FORBIDDEN,
            &format!("{operation} needs the {permission} permission"),
            None,
        ),
    }
}

fn problem(status: StatusCode, message: &str, field: Option<&str>) -> Response {
    let body = json!({ "error": message, "field": field });
    (
        status,
        [("content-type", "application/json")],
        body.to_string(),
    )
        .into_response()
}
