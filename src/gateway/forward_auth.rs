//! `/forward-auth`: an API gateway asks whether the request it holds may
//! pass (nginx `auth_request`, Traefik ForwardAuth, Envoy's HTTP
//! ext-authz), and Portcullis decides through the endpoint catalogue.
//!
//! The original request is read from the conventions gateways use: nginx's
//! `X-Original-Method`/`X-Original-URI` (names configurable), Traefik's
//! `X-Forwarded-Method`/`X-Forwarded-Uri`/`X-Forwarded-Host`, or, as Envoy
//! sends it, the request's own method and the path after `/forward-auth`.
//! The credential is the original `Authorization: Bearer` user token (or a
//! configured cookie). Answers: `200` with `X-Auth-User`, `X-Auth-Tenant`,
//! `X-Auth-Groups` and `X-Auth-Reason` (and `X-Auth-Token`, a token minted
//! for the one request, for services configured so); `401` with `WWW-Authenticate:
//! Bearer` for a missing, bad, expired or revoked token; `403` with the
//! reason; `503` when the database cannot be asked. Never a silent allow.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use secrecy::ExposeSecret;

use super::decide::{Gatekeeper, OriginalRequest, Refusal};
use crate::tokens::bearer;

pub fn routes(gate: Arc<Gatekeeper>) -> axum::Router {
    axum::Router::new()
        .route("/forward-auth", axum::routing::any(decide_here))
        .route("/forward-auth/{*rest}", axum::routing::any(decide_below))
        .with_state(gate)
}

async fn decide_here(
    State(gate): State<Arc<Gatekeeper>>,
    method: Method,
    headers: HeaderMap,
) -> Response {
    decide(&gate, &method, "/", &headers).await
}

/// Envoy's HTTP ext-authz: the original path follows the prefix.
async fn decide_below(
    State(gate): State<Arc<Gatekeeper>>,
    Path(rest): Path<String>,
    method: Method,
    headers: HeaderMap,
) -> Response {
    decide(&gate, &method, &format!("/{rest}"), &headers).await
}

async fn decide(
    gate: &Gatekeeper,
    own_method: &Method,
    own_path: &str,
    headers: &HeaderMap,
) -> Response {
    let settings = &gate.settings;
    let request_id = header(headers, "x-request-id");
    // Every original header, so a catalogue entry may name its node in one.
    let original_headers: HashMap<String, String> = headers
        .iter()
        .filter_map(|(name, value)| {
            Some((name.as_str().to_owned(), value.to_str().ok()?.to_owned()))
        })
        .collect();
    let token = match &settings.token_cookie {
        Some(name) => cookie(headers, name),
        None => header(headers, "authorization").and_then(bearer),
    };
    let original = OriginalRequest {
        method: header(headers, &settings.method_header)
            .or_else(|| header(headers, "x-forwarded-method"))
            .unwrap_or(own_method.as_str()),
        uri: header(headers, &settings.uri_header)
            .or_else(|| header(headers, "x-forwarded-uri"))
            .unwrap_or(own_path),
        service: header(headers, &settings.service_header),
        host: header(headers, "x-forwarded-host").or_else(|| header(headers, "host")),
        token,
        headers: &original_headers,
        request_id,
    };
    let outcome = gate.decide(&original).await;
    let reason = match &outcome {
        Ok(allowed) => allowed.reason.clone(),
        Err(refusal) => refusal.reason().to_owned(),
    };
    metrics::counter!("portcullis_forward_auth_decisions_total", "reason" => reason.clone())
        .increment(1);
    match outcome {
        Ok(allowed) => {
            let mut response = StatusCode::OK.into_response();
            let out = response.headers_mut();
            let token = allowed
                .upstream_token
                .as_ref()
                .map(|t| t.expose_secret().to_owned());
            for (name, value) in [
                ("x-auth-user", Some(allowed.subject.user_id.to_string())),
                ("x-auth-tenant", Some(allowed.subject.tenant_id.to_string())),
                ("x-auth-groups", Some(allowed.roles.join(","))),
                ("x-auth-reason", Some(allowed.reason)),
                ("x-auth-token", token),
            ] {
                if let Some(Ok(value)) = value.map(|v| HeaderValue::from_str(&v)) {
                    out.insert(name, value);
                }
            }
            response
        }
        Err(refusal) => {
            if !matches!(refusal, Refusal::Unauthenticated(_)) {
                tracing::info!(request_id, %reason, "forward-auth denied");
            }
            refused(refusal)
        }
    }
}

fn refused(refusal: Refusal) -> Response {
    let json = |status: StatusCode, reason: &str| {
        (
            status,
            [("content-type", "application/json")],
            serde_json::json!({ "reason": reason }).to_string(),
        )
            .into_response()
    };
    match refusal {
        Refusal::Unauthenticated(why) => {
            let mut response = json(StatusCode::UNAUTHORIZED, why);
            response
                .headers_mut()
                .insert("www-authenticate", HeaderValue::from_static("Bearer"));
            response
        }
        Refusal::Denied(reason) => json(StatusCode::FORBIDDEN, &reason),
        Refusal::Unavailable => json(StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
        Refusal::Failed => json(StatusCode::INTERNAL_SERVER_ERROR, "internal"),
    }
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty())
}

fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all("cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value)
}
