//! The gateway decision, shared by `/forward-auth` (HTTP) and Envoy's
//! `ext_authz` (gRPC): whose token the original request carries, which
//! catalogue service and entry it matches, and whether that user holds the
//! entry's capability at the node the request names. Protocol-free: each
//! edge reads the original request its own way and maps the answer.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use secrecy::{ExposeSecret, SecretString};

use super::{
    AuthzError, CapabilityKey, Check, EndpointCatalogue, EndpointDecision, EndpointRequest, Subject,
};
use crate::db::Db;
use crate::names::{HttpMethod, OrgNodeId};
use crate::tokens::{Claims, Principal, TokenError, Tokens, UpstreamGrant};

/// How the gateways' requests are decided, by forward-auth and ext_authz
/// alike.
#[derive(Clone, Debug)]
pub struct GatewaySettings {
    /// A header naming the catalogue's service, read only when no host
    /// mapping is configured.
    pub service_header: String,
    /// The service by the original host, as the edge reads it. When set,
    /// no request header names the service.
    pub services_by_host: HashMap<String, String>,
    /// Catalogue services whose upstream gets a token minted for the one
    /// request, living this long.
    pub upstream_token_services: HashSet<String>,
    pub upstream_token_lifetime: Duration,
    /// When no catalogue entry matches: headers (set by the gateway's own
    /// route configuration) naming the capability and the node to check.
    /// Off unless both are configured.
    pub capability_header: Option<String>,
    pub node_header: Option<String>,
}

impl GatewaySettings {
    /// The service a request header names, honoured only where no host
    /// mapping is configured: with one, the host decides.
    pub fn service_named_by_header<'a>(&self, value: Option<&'a str>) -> Option<&'a str> {
        self.services_by_host.is_empty().then_some(value).flatten()
    }
}

impl Default for GatewaySettings {
    fn default() -> Self {
        Self {
            service_header: "x-auth-service".into(),
            services_by_host: HashMap::new(),
            upstream_token_services: HashSet::new(),
            upstream_token_lifetime: Duration::from_secs(60),
            capability_header: None,
            node_header: None,
        }
    }
}

/// The request a gateway holds, as its edge read it.
#[derive(Clone, Copy, Debug)]
pub struct OriginalRequest<'a> {
    pub method: &'a str,
    /// Path, with or without its query.
    pub uri: &'a str,
    /// The catalogue's service, when the gateway's own configuration names
    /// it (never a client's header where a host mapping applies).
    pub service: Option<&'a str>,
    /// The original host, as the edge's trusted source gives it, to find
    /// the service by when it is not named.
    pub host: Option<&'a str>,
    /// The user's bearer token.
    pub token: Option<&'a str>,
    /// Every original header, names in lower case.
    pub headers: &'a HashMap<String, String>,
    pub request_id: Option<&'a str>,
}

/// A request allowed to pass, and what the upstream is told.
#[derive(Debug)]
pub struct Allowed {
    pub subject: Subject,
    /// Keys of the roles the user holds at the decided node.
    pub roles: Vec<String>,
    pub reason: String,
    pub upstream_token: Option<SecretString>,
}

impl Allowed {
    /// What the upstream of an allowed request is told, in the platform's
    /// names, by forward-auth and ext_authz alike: `x-auth-user`,
    /// `x-auth-tenant`, `x-auth-groups` (may be empty), `x-auth-reason`,
    /// and `x-auth-token` for services configured for one.
    pub fn upstream_headers(&self) -> Vec<(&'static str, String)> {
        let mut headers = vec![
            (UPSTREAM_USER, self.subject.user_id.to_string()),
            (UPSTREAM_TENANT, self.subject.tenant_id.to_string()),
            (UPSTREAM_GROUPS, self.roles.join(",")),
            (UPSTREAM_REASON, self.reason.clone()),
        ];
        if let Some(token) = &self.upstream_token {
            headers.push((UPSTREAM_TOKEN, token.expose_secret().to_owned()));
        }
        headers
    }
}

pub const UPSTREAM_USER: &str = "x-auth-user";
pub const UPSTREAM_TENANT: &str = "x-auth-tenant";
pub const UPSTREAM_GROUPS: &str = "x-auth-groups";
pub const UPSTREAM_REASON: &str = "x-auth-reason";
pub const UPSTREAM_TOKEN: &str = "x-auth-token";

/// ext_authz's names before they were the platform's, kept for one release
/// (`--ext-authz-legacy-headers`): each upstream header and its old name.
pub const LEGACY_EXT_AUTHZ_NAMES: [(&str, &str); 4] = [
    (UPSTREAM_USER, "x-portcullis-user"),
    (UPSTREAM_TENANT, "x-portcullis-tenant"),
    (UPSTREAM_GROUPS, "x-portcullis-groups"),
    (UPSTREAM_REASON, "x-portcullis-reason"),
];

/// Why a request is refused.
#[derive(Debug)]
pub enum Refusal {
    /// No, a bad, an expired or a revoked token, or not a user's.
    Unauthenticated(&'static str),
    /// Decided: the reason code.
    Denied(String),
    /// The database (or the revocation list) cannot be asked.
    Unavailable,
    Failed,
}

impl Refusal {
    /// The outcome as metrics and logs name it.
    pub fn outcome(&self) -> &'static str {
        match self {
            Self::Unauthenticated(_) => "unauthenticated",
            Self::Denied(_) => "denied",
            Self::Unavailable => "unavailable",
            Self::Failed => "error",
        }
    }

    /// The reason as metrics and logs name it.
    pub fn reason(&self) -> &str {
        match self {
            Self::Unauthenticated(_) => "unauthenticated",
            Self::Denied(reason) => reason,
            Self::Unavailable => "unavailable",
            Self::Failed => "internal",
        }
    }
}

/// Decides gateway requests.
pub struct Gatekeeper {
    pub db: Db,
    pub tokens: Arc<Tokens>,
    pub catalogue: Arc<EndpointCatalogue>,
    pub settings: GatewaySettings,
}

impl Gatekeeper {
    pub async fn decide(
        &self,
        original: &OriginalRequest<'_>,
        now: DateTime<Utc>,
    ) -> Result<Allowed, Refusal> {
        let settings = &self.settings;
        let path = original.uri.split(['?', '#']).next().unwrap_or("/");
        let (subject, claims) = self.subject(original.token, now)?;
        let service = original
            .service
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .or_else(|| {
                let host = original.host?;
                let host = host.split(':').next().unwrap_or(host);
                settings.services_by_host.get(host).cloned()
            })
            .ok_or_else(|| Refusal::Denied("no_service".into()))?;
        let method = match HttpMethod::parse(original.method) {
            Ok(HttpMethod::Any) | Err(_) => {
                return Err(Refusal::Denied("no_matching_endpoint".into()));
            }
            Ok(method) => method,
        };
        let request = EndpointRequest {
            service: &service,
            method,
            path,
            headers: original.headers,
            fields: &HashMap::new(),
        };
        let decided = super::check_endpoint(
            &self.db,
            &self.catalogue,
            subject,
            &request,
            true,
            original.request_id,
        )
        .await
        .map_err(refusal)?;
        let (capability, org_node_id, decision, roles) = match decided {
            EndpointDecision::NoMatchingEndpoint => {
                let Some(named) = self.named_check(original.headers)? else {
                    return Err(Refusal::Denied("no_matching_endpoint".into()));
                };
                let decision = super::check(
                    &self.db,
                    subject,
                    std::slice::from_ref(&named),
                    false,
                    original.request_id,
                )
                .await
                .map_err(refusal)?
                .pop()
                .ok_or(Refusal::Failed)?;
                (
                    named.capability.to_string(),
                    named.org_node_id,
                    decision,
                    Vec::new(),
                )
            }
            EndpointDecision::OrgNodeNotGiven(_) => {
                return Err(Refusal::Denied("org_node_not_given".into()));
            }
            EndpointDecision::Decided {
                policy,
                org_node_id,
                decision,
                roles,
            } => (policy.capability, org_node_id, decision, roles),
        };
        if !decision.allowed() {
            return Err(Refusal::Denied(decision.reason.as_str().to_owned()));
        }
        let upstream_token = if settings.upstream_token_services.contains(&service) {
            let grant = UpstreamGrant {
                service: &service,
                method: method.as_str(),
                path,
                capability: &capability,
                org_node_id: org_node_id.get(),
                lifetime: settings.upstream_token_lifetime,
            };
            // Never pass without the token the upstream expects.
            let minted = self.tokens.issue_upstream(&claims, &grant, now);
            Some(minted.map_err(|error| {
                tracing::error!(%error, "the gateway could not mint the upstream token");
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

    /// The capability and node the gateway's configured headers name, when
    /// both are configured and present; refused when they do not parse.
    fn named_check(&self, headers: &HashMap<String, String>) -> Result<Option<Check>, Refusal> {
        let (Some(capability_header), Some(node_header)) =
            (&self.settings.capability_header, &self.settings.node_header)
        else {
            return Ok(None);
        };
        let (Some(capability), Some(node)) =
            (headers.get(capability_header), headers.get(node_header))
        else {
            return Ok(None);
        };
        match (CapabilityKey::parse(capability), node.parse::<OrgNodeId>()) {
            (Ok(capability), Ok(org_node_id)) => Ok(Some(Check {
                capability,
                org_node_id,
            })),
            _ => Err(Refusal::Denied("bad_capability_or_node".into())),
        }
    }

    /// The user the original request's token names, and its claims.
    fn subject(
        &self,
        token: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<(Subject, Claims), Refusal> {
        let token = token
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or(Refusal::Unauthenticated("no bearer token"))?;
        match self.tokens.verify(token, now) {
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

fn refusal(error: AuthzError) -> Refusal {
    match error {
        AuthzError::Db(cause) if cause.is_retryable() => Refusal::Unavailable,
        other => {
            tracing::error!(error = %other, "a gateway decision failed");
            Refusal::Failed
        }
    }
}
