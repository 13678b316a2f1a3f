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

use super::edge::Decided;
use crate::authz::gatekeeper::{Allowed, Gatekeeper, OriginalRequest, Refusal};
use crate::tokens::bearer;

/// Which gateway calls `/forward-auth`, and so the one place the original
/// request is read from. A header of another gateway's convention is the
/// client's own (Traefik copies every client header into its auth request,
/// and nginx's passes the client's headers it does not set), so no mode
/// falls back to another's.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum ForwardAuthMode {
    /// nginx `auth_request`: the method and URI in the headers its location
    /// sets (`X-Original-Method`, `X-Original-URI`), the host in `Host`.
    #[default]
    Nginx,
    /// Traefik ForwardAuth: `X-Forwarded-Method`, `X-Forwarded-Uri` and
    /// `X-Forwarded-Host`, which Traefik overwrites.
    Traefik,
    /// Envoy's HTTP ext_authz: the request's own method and the path after
    /// `/forward-auth`, the host in `Host`.
    Envoy,
}

/// How `/forward-auth` reads the gateway's request.
#[derive(Clone, Debug)]
pub struct ForwardAuthSettings {
    /// The gateway convention read.
    pub mode: ForwardAuthMode,
    /// nginx-mode headers naming the original method and URI.
    pub method_header: String,
    pub uri_header: String,
    /// Read the user token from this cookie instead of `Authorization`.
    pub token_cookie: Option<String>,
}

impl Default for ForwardAuthSettings {
    fn default() -> Self {
        Self {
            mode: ForwardAuthMode::Nginx,
            method_header: "x-original-method".into(),
            uri_header: "x-original-uri".into(),
            token_cookie: None,
        }
    }
}

/// What the routes hold: the shared decision, and how requests are read.
pub struct ForwardAuth {
    pub gate: Arc<Gatekeeper>,
    pub settings: ForwardAuthSettings,
}

/// The edge's name in logs, spans and `portcullis_decisions_total`.
pub const EDGE: &str = "forward_auth";

pub fn routes(edge: Arc<ForwardAuth>) -> axum::Router {
    axum::Router::new()
        .route("/forward-auth", axum::routing::any(decide_here))
        .route("/forward-auth/{*rest}", axum::routing::any(decide_below))
        .with_state(edge)
}

async fn decide_here(
    State(edge): State<Arc<ForwardAuth>>,
    method: Method,
    headers: HeaderMap,
) -> Response {
    decide(&edge, &method, "/", false, &headers).await
}

/// Envoy's HTTP ext-authz: the original path follows the prefix.
async fn decide_below(
    State(edge): State<Arc<ForwardAuth>>,
    Path(rest): Path<String>,
    method: Method,
    headers: HeaderMap,
) -> Response {
    decide(&edge, &method, &format!("/{rest}"), true, &headers).await
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
        settings: &ForwardAuthSettings,
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
    edge: &ForwardAuth,
    own_method: &Method,
    own_path: &str,
    below: bool,
    headers: &HeaderMap,
) -> Response {
    let outcome = decide_request(edge, own_method, own_path, below, headers).await;
    let reason = match &outcome {
        Ok(allowed) => allowed.reason.clone(),
        Err(refusal) => refusal.reason().to_owned(),
    };
    let decided = Decided {
        outcome: outcome
            .as_ref()
            .map_or_else(Refusal::outcome, |_| "allowed"),
        caller: outcome
            .as_ref()
            .ok()
            .map(|allowed| format!("user:{}", allowed.subject.user_id)),
        reason,
    };
    crate::metrics::decision(EDGE, decided.outcome, &decided.reason);
    let mut response = match outcome {
        Ok(allowed) => passed(allowed),
        Err(refusal) => refused(refusal),
    };
    response.extensions_mut().insert(decided);
    response
}

/// The decision on the original request the configured gateway names.
async fn decide_request(
    edge: &ForwardAuth,
    own_method: &Method,
    own_path: &str,
    below: bool,
    headers: &HeaderMap,
) -> Result<Allowed, Refusal> {
    let (settings, gate) = (&edge.settings, &edge.gate);
    let Some(asked) = Asked::read(settings, own_method, own_path, below, headers) else {
        return Err(Refusal::Denied("original_request_not_given".into()));
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
            cookie_request_is_same_site(&asked, headers)?;
            cookie(headers, name)
        }
        None => header(headers, "authorization").and_then(bearer),
    };
    let original = OriginalRequest {
        method: asked.method,
        uri: asked.uri,
        service: gate
            .settings
            .service_named_by_header(header(headers, &gate.settings.service_header)),
        host: asked.host,
        token,
        headers: &original_headers,
        request_id: header(headers, "x-request-id"),
    };
    gate.decide(&original, chrono::Utc::now()).await
}

/// `200`, and what the upstream is told.
fn passed(allowed: Allowed) -> Response {
    let mut response = StatusCode::OK.into_response();
    let out = response.headers_mut();
    for (name, value) in allowed.upstream_headers() {
        if let Ok(value) = HeaderValue::from_str(&value) {
            out.insert(name, value);
        }
    }
    response
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
