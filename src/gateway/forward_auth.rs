//! `/forward-auth`: an API gateway asks whether the request it holds may
//! pass (nginx `auth_request`, Traefik ForwardAuth, Envoy's HTTP
//! ext-authz), and Portcullis decides through the endpoint catalogue.
//!
//! The original request is read from the one convention
//! `--forward-auth-mode` names ([`ForwardAuthMode`]): nginx's
//! `X-Original-Method`/`X-Original-URI` (names configurable), Traefik's
//! `X-Forwarded-Method`/`X-Forwarded-Uri`/`X-Forwarded-Host`, or, as Envoy
//! sends it, the request's own method and the path after `/forward-auth`.
//! A missing source is a refusal, never a fallback to another convention.
//! The credential is the original `Authorization: Bearer` user token (or a
//! configured cookie, for safe methods or same-site requests). Answers:
//! `200` with `X-Auth-User`, `X-Auth-Tenant`, `X-Auth-Groups` and
//! `X-Auth-Reason` (and `X-Auth-Token`, a token minted for the one request,
//! for services configured so); `401` with `WWW-Authenticate: Bearer` for a
//! missing, bad, expired or revoked token; `403` with the reason; `503` when
//! the database cannot be asked. Never a silent allow.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use secrecy::ExposeSecret;

use super::decide::{ForwardAuthMode, Gatekeeper, GatewaySettings, OriginalRequest, Refusal};
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
    decide(&gate, &method, "/", false, &headers).await
}

/// Envoy's HTTP ext-authz: the original path follows the prefix.
async fn decide_below(
    State(gate): State<Arc<Gatekeeper>>,
    Path(rest): Path<String>,
    method: Method,
    headers: HeaderMap,
) -> Response {
    decide(&gate, &method, &format!("/{rest}"), true, &headers).await
}

/// The original request as the configured gateway gives it: one source per
/// mode, none borrowed from another convention.
struct Asked<'a> {
    method: &'a str,
    uri: &'a str,
    host: Option<&'a str>,
}

impl<'a> Asked<'a> {
    /// `None` when the mode's source is missing, or when a path follows
    /// `/forward-auth` outside Envoy mode (nginx and Traefik call the one
    /// address they are configured with).
    fn read(
        settings: &GatewaySettings,
        own_method: &'a Method,
        own_path: &'a str,
        below: bool,
        headers: &'a HeaderMap,
    ) -> Option<Self> {
        match settings.mode {
            ForwardAuthMode::Nginx if !below => Some(Self {
                method: header(headers, &settings.method_header)?,
                uri: header(headers, &settings.uri_header)?,
                host: header(headers, "host"),
            }),
            ForwardAuthMode::Traefik if !below => Some(Self {
                method: header(headers, "x-forwarded-method")?,
                uri: header(headers, "x-forwarded-uri")?,
                host: header(headers, "x-forwarded-host"),
            }),
            ForwardAuthMode::Envoy => Some(Self {
                method: own_method.as_str(),
                uri: own_path,
                host: header(headers, "host"),
            }),
            ForwardAuthMode::Nginx | ForwardAuthMode::Traefik => None,
        }
    }
}

async fn decide(
    gate: &Gatekeeper,
    own_method: &Method,
    own_path: &str,
    below: bool,
    headers: &HeaderMap,
) -> Response {
    let settings = &gate.settings;
    let request_id = header(headers, "x-request-id");
    let Some(asked) = Asked::read(settings, own_method, own_path, below, headers) else {
        return refused_as(
            Refusal::Denied("original_request_not_given".into()),
            request_id,
        );
    };
    // Every original header, so a catalogue entry may name its node in one.
    let original_headers: HashMap<String, String> = headers
        .iter()
        .filter_map(|(name, value)| {
            Some((name.as_str().to_owned(), value.to_str().ok()?.to_owned()))
        })
        .collect();
    let token = match &settings.token_cookie {
        Some(name) => {
            if let Err(refusal) = cookie_request_is_same_site(&asked, headers) {
                return refused_as(refusal, request_id);
            }
            cookie(headers, name)
        }
        None => header(headers, "authorization").and_then(bearer),
    };
    let original = OriginalRequest {
        method: asked.method,
        uri: asked.uri,
        service: settings.service_named_by_header(header(headers, &settings.service_header)),
        host: asked.host,
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
        Err(refusal) => refused(refusal, request_id),
    }
}

/// A refusal before the decision: counted and logged like one.
fn refused_as(refusal: Refusal, request_id: Option<&str>) -> Response {
    metrics::counter!("portcullis_forward_auth_decisions_total", "reason" => refusal.reason().to_owned())
        .increment(1);
    refused(refusal, request_id)
}

/// A cookie is sent by the browser whoever made the page, so a request
/// that changes something (not GET, HEAD or OPTIONS) passes on a cookie
/// only when the browser says it comes from the same site: `Sec-Fetch-Site`
/// `same-origin` or `same-site`, or, from a browser without it, an `Origin`
/// whose host is the original host.
fn cookie_request_is_same_site(asked: &Asked<'_>, headers: &HeaderMap) -> Result<(), Refusal> {
    if matches!(asked.method, "GET" | "HEAD" | "OPTIONS") {
        return Ok(());
    }
    let same_site = match header(headers, "sec-fetch-site") {
        Some(site) => matches!(site, "same-origin" | "same-site"),
        None => header(headers, "origin")
            .and_then(|origin| url::Url::parse(origin).ok())
            .zip(asked.host)
            .is_some_and(|(origin, host)| {
                let host = host.rsplit_once(':').map_or(host, |(name, _)| name);
                origin.host_str() == Some(host)
            }),
    };
    if same_site {
        Ok(())
    } else {
        Err(Refusal::Denied("cross_site_cookie_request".into()))
    }
}

fn refused(refusal: Refusal, request_id: Option<&str>) -> Response {
    if !matches!(refusal, Refusal::Unauthenticated(_)) {
        tracing::info!(request_id, reason = refusal.reason(), "forward-auth denied");
    }
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
