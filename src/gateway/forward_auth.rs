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

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use secrecy::ExposeSecret;

use crate::authz::{
    self, AuthzError, EndpointCatalogue, EndpointDecision, EndpointRequest, Subject,
};
use crate::db::{Db, DbError};
use crate::names::HttpMethod;
use crate::tokens::{Claims, Principal, TokenError, Tokens, UpstreamGrant};

#[derive(Clone, Debug)]
pub struct ForwardAuthSettings {
    /// nginx-style headers naming the original method and URI.
    pub method_header: String,
    pub uri_header: String,
    /// A header naming the catalogue's service (checked first).
    pub service_header: String,
    /// Else the service by the original host (`X-Forwarded-Host`, or Host).
    pub services_by_host: HashMap<String, String>,
    /// Read the user token from this cookie instead of `Authorization`.
    pub token_cookie: Option<String>,
    /// Catalogue services whose upstream gets `X-Auth-Token`, a token
    /// minted for the one request, living this long.
    pub upstream_token_services: HashSet<String>,
    pub upstream_token_lifetime: Duration,
}

impl Default for ForwardAuthSettings {
    fn default() -> Self {
        Self {
            method_header: "x-original-method".into(),
            uri_header: "x-original-uri".into(),
            service_header: "x-auth-service".into(),
            services_by_host: HashMap::new(),
            token_cookie: None,
            upstream_token_services: HashSet::new(),
            upstream_token_lifetime: Duration::from_secs(60),
        }
    }
}

pub struct ForwardAuth {
    pub db: Db,
    pub tokens: Arc<Tokens>,
    pub catalogue: Arc<EndpointCatalogue>,
    pub settings: ForwardAuthSettings,
}

pub fn routes(state: Arc<ForwardAuth>) -> axum::Router {
    axum::Router::new()
        .route("/forward-auth", axum::routing::any(decide_here))
        .route("/forward-auth/{*rest}", axum::routing::any(decide_below))
        .with_state(state)
}

async fn decide_here(
    State(state): State<Arc<ForwardAuth>>,
    method: Method,
    headers: HeaderMap,
) -> Response {
    state.decide(&method, "/", &headers).await
}

/// Envoy's HTTP ext-authz: the original path follows the prefix.
async fn decide_below(
    State(state): State<Arc<ForwardAuth>>,
    Path(rest): Path<String>,
    method: Method,
    headers: HeaderMap,
) -> Response {
    state.decide(&method, &format!("/{rest}"), &headers).await
}

/// A request allowed to pass, and what the upstream is told.
struct Allowed {
    subject: Subject,
    roles: Vec<String>,
    reason: String,
    upstream_token: Option<secrecy::SecretString>,
}

/// Why a request is refused, as the response says it.
enum Refusal {
    Unauthenticated(&'static str),
    Denied(String),
    Unavailable,
    Failed,
}

impl ForwardAuth {
    async fn decide(&self, own_method: &Method, own_path: &str, headers: &HeaderMap) -> Response {
        let request_id = header(headers, "x-request-id").map(str::to_owned);
        let outcome = self
            .decision(own_method, own_path, headers, request_id.as_deref())
            .await;
        let reason = match &outcome {
            Ok(allowed) => allowed.reason.clone(),
            Err(Refusal::Unauthenticated(_)) => "unauthenticated".into(),
            Err(Refusal::Denied(reason)) => reason.clone(),
            Err(Refusal::Unavailable) => "unavailable".into(),
            Err(Refusal::Failed) => "internal".into(),
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
                    tracing::info!(request_id = request_id.as_deref(), %reason, "forward-auth denied");
                }
                refusal.into_response()
            }
        }
    }

    async fn decision(
        &self,
        own_method: &Method,
        own_path: &str,
        headers: &HeaderMap,
        request_id: Option<&str>,
    ) -> Result<Allowed, Refusal> {
        let settings = &self.settings;
        let method = header(headers, &settings.method_header)
            .or_else(|| header(headers, "x-forwarded-method"))
            .unwrap_or(own_method.as_str());
        let uri = header(headers, &settings.uri_header)
            .or_else(|| header(headers, "x-forwarded-uri"))
            .unwrap_or(own_path);
        let path = uri.split(['?', '#']).next().unwrap_or("/");
        let (subject, claims) = self.subject(headers)?;
        let service = header(headers, &settings.service_header)
            .map(str::to_owned)
            .or_else(|| {
                let host =
                    header(headers, "x-forwarded-host").or_else(|| header(headers, "host"))?;
                let host = host.split(':').next().unwrap_or(host);
                settings.services_by_host.get(host).cloned()
            })
            .ok_or_else(|| Refusal::Denied("no_service".into()))?;
        let method = match HttpMethod::parse(method) {
            Ok(HttpMethod::Any) | Err(_) => {
                return Err(Refusal::Denied("no_matching_endpoint".into()));
            }
            Ok(method) => method,
        };
        // Every original header, so a catalogue entry may name its node in one.
        let original: HashMap<String, String> = headers
            .iter()
            .filter_map(|(name, value)| {
                Some((name.as_str().to_owned(), value.to_str().ok()?.to_owned()))
            })
            .collect();
        let request = EndpointRequest {
            service: &service,
            method,
            path,
            headers: &original,
            fields: &HashMap::new(),
        };
        let decided = authz::check_endpoint(
            &self.db,
            &self.catalogue,
            subject,
            &request,
            true,
            request_id,
        )
        .await
        .map_err(|error| match error {
            AuthzError::Db(DbError::Unavailable(_)) | AuthzError::Db(DbError::Timeout) => {
                Refusal::Unavailable
            }
            other => {
                tracing::error!(error = %other, "forward-auth failed");
                Refusal::Failed
            }
        })?;
        match decided {
            EndpointDecision::NoMatchingEndpoint => {
                Err(Refusal::Denied("no_matching_endpoint".into()))
            }
            EndpointDecision::OrgNodeNotGiven(_) => {
                Err(Refusal::Denied("org_node_not_given".into()))
            }
            EndpointDecision::Decided {
                decision,
                roles,
                policy,
                org_node_id,
            } if decision.allowed() => {
                let upstream_token = if settings.upstream_token_services.contains(&service) {
                    let grant = UpstreamGrant {
                        service: &service,
                        method: method.as_str(),
                        path,
                        capability: &policy.capability,
                        org_node_id: org_node_id.get(),
                        lifetime: settings.upstream_token_lifetime,
                    };
                    // Never pass without the token the upstream expects.
                    let minted = self.tokens.issue_upstream(&claims, &grant, Utc::now());
                    Some(minted.map_err(|error| {
                        tracing::error!(%error, "forward-auth could not mint the upstream token");
                        Refusal::Failed
                    })?)
                } else {
                    None
                };
                Ok(Allowed {
                    subject,
                    roles,
                    reason: decision.reason.as_str().to_owned(),
                    upstream_token,
                })
            }
            EndpointDecision::Decided { decision, .. } => {
                Err(Refusal::Denied(decision.reason.as_str().to_owned()))
            }
        }
    }

    /// The user the original request's token names, and its claims.
    fn subject(&self, headers: &HeaderMap) -> Result<(Subject, Claims), Refusal> {
        let token = match &self.settings.token_cookie {
            Some(name) => cookie(headers, name),
            None => header(headers, "authorization").and_then(|value| {
                value
                    .strip_prefix("Bearer ")
                    .or_else(|| value.strip_prefix("bearer "))
            }),
        }
        .ok_or(Refusal::Unauthenticated("no bearer token"))?;
        match self.tokens.verify(token.trim(), Utc::now()) {
            Ok(verified) => match verified.principal {
                Principal::User(user) => Ok((
                    Subject {
                        tenant_id: user.tenant_id.into(),
                        user_id: user.user_id.into(),
                    },
                    verified.claims,
                )),
                Principal::Service(_) => Err(Refusal::Unauthenticated("not a user token")),
            },
            Err(TokenError::RevocationUnknown) => Err(Refusal::Unavailable),
            Err(_) => Err(Refusal::Unauthenticated("invalid token")),
        }
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let json = |status: StatusCode, reason: &str| {
            (
                status,
                [("content-type", "application/json")],
                serde_json::json!({ "reason": reason }).to_string(),
            )
                .into_response()
        };
        match self {
            Self::Unauthenticated(why) => {
                let mut response = json(StatusCode::UNAUTHORIZED, why);
                response
                    .headers_mut()
                    .insert("www-authenticate", HeaderValue::from_static("Bearer"));
                response
            }
            Self::Denied(reason) => json(StatusCode::FORBIDDEN, &reason),
            Self::Unavailable => json(StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
            Self::Failed => json(StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        }
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
