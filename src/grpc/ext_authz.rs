//! `envoy.service.auth.v3.Authorization/Check`: Envoy's (and Istio's)
//! external authorization, on the gRPC port. The original request comes
//! in `attributes.request.http`; the decision is the gateway's
//! ([`crate::authz::gatekeeper::Gatekeeper`]), shared with `/forward-auth`. A gRPC
//! server may call it too (gRPC proposal A92), with the gRPC method as the
//! path and `POST` as the method.
//!
//! The caller is the mesh's sidecar, so it must be an authenticated service:
//! by a service token with `authz.check`, by a client certificate the
//! server's client CA verified, or either, as configured.

use std::collections::HashMap;
use std::sync::Arc;

use envoy_types::ext_authz::v3::pb::{
    Authorization, CheckRequest, CheckResponse, DeniedHttpResponse, HeaderAppendAction,
    HttpStatusCode, OkHttpResponse,
};
use envoy_types::ext_authz::v3::{
    CheckResponseExt, DeniedHttpResponseBuilder, OkHttpResponseBuilder,
};
use envoy_types::pb::google::protobuf::{Struct, Value, value::Kind};
use tonic::{Request, Response, Status};

use super::access;
use super::error_details::detailed;
use super::reason::Reason;
use super::request::invalid;

use crate::authz::gatekeeper::{
    Allowed, Gatekeeper, LEGACY_EXT_AUTHZ_NAMES, OriginalRequest, Refusal, UPSTREAM_GROUPS,
};
use crate::callers;
use crate::consistency::{self, ConsistencyError, Requirement};
use crate::tokens::Principal;
use crate::tokens::bearer;

/// Who may call `Check`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum ExtAuthzCallers {
    /// A service token with the permission `authz.check`.
    #[default]
    Token,
    /// A client certificate verified by the server's client CA.
    Mtls,
    /// Either.
    TokenOrMtls,
}

#[derive(Clone, Debug, Default)]
pub struct ExtAuthzSettings {
    pub callers: ExtAuthzCallers,
    /// Remove the user's `authorization` header before the upstream sees it.
    pub remove_authorization: bool,
    /// Without the route's context extension, take the catalogue service
    /// from the original request (a header, or the host mapping). Off: the
    /// route's configuration alone names it.
    pub service_from_request: bool,
    /// Also send the upstream the pre-platform names (`x-portcullis-user`,
    /// …) beside `x-auth-*`; off, they are removed from the request. For
    /// one release.
    pub legacy_headers: bool,
}

/// Envoy's `Check` in the caller rule table.
const OPERATION: &str = "Envoy/Check";

/// The context extension (per-route in Envoy's configuration) naming the
/// catalogue's service.
pub const SERVICE_EXTENSION: &str = "portcullis_service";

/// The context extension (per-route) with the route's consistency
/// requirement, as `x-consistency` would give it: `fully_consistent` for a
/// route that must never act on a revoked grant, `max_staleness=…`.
pub const CONSISTENCY_EXTENSION: &str = "portcullis_consistency";

pub struct ExtAuthzService {
    gate: Arc<Gatekeeper>,
    settings: ExtAuthzSettings,
}

impl ExtAuthzService {
    pub fn new(gate: Arc<Gatekeeper>, settings: ExtAuthzSettings) -> Self {
        Self { gate, settings }
    }

    /// The sidecar, as the rule table and `--ext-authz-callers` say: a
    /// service token holding the permission, a verified client
    /// certificate, or either.
    fn authenticate_caller<T>(&self, request: &Request<T>) -> Result<(), Status> {
        let by_token = || {
            request
                .extensions()
                .get::<Principal>()
                .map(|caller| callers::permit(caller, OPERATION).map_err(access::refused))
        };
        let by_certificate = || request.peer_certs().is_some_and(|certs| !certs.is_empty());
        let outcome = match self.settings.callers {
            ExtAuthzCallers::Token => by_token(),
            ExtAuthzCallers::Mtls => by_certificate().then_some(Ok(())),
            ExtAuthzCallers::TokenOrMtls => {
                by_token().or_else(|| by_certificate().then_some(Ok(())))
            }
        };
        outcome.unwrap_or_else(|| {
            Err(detailed(
                "Check needs an authenticated caller (a service token or a client certificate, as configured)",
                Reason::CallerUnauthenticated,
                &[],
                None,
            ))
        })
    }
}

#[tonic::async_trait]
impl Authorization for ExtAuthzService {
    async fn check(
        &self,
        request: Request<CheckRequest>,
    ) -> Result<Response<CheckResponse>, Status> {
        self.authenticate_caller(&request)?;
        let attributes = request.get_ref().attributes.as_ref();
        let http = attributes
            .and_then(|a| a.request.as_ref())
            .and_then(|r| r.http.as_ref())
            .ok_or_else(|| {
                invalid(
                    "attributes.request.http",
                    "the original HTTP request is missing",
                )
            })?;
        // Envoy sends header names in lower case (a gRPC client might not),
        // in `headers`, or in `header_map` with `encode_raw_headers`.
        let raw = http
            .header_map
            .iter()
            .flat_map(|map| &map.headers)
            .map(|h| {
                let value = if h.raw_value.is_empty() {
                    h.value.clone()
                } else {
                    String::from_utf8_lossy(&h.raw_value).into_owned()
                };
                (h.key.clone(), value)
            });
        let headers: HashMap<String, String> = http
            .headers
            .iter()
            .map(|(name, value)| (name.clone(), value.clone()))
            .chain(raw)
            .map(|(name, value)| (name.to_ascii_lowercase(), value))
            .collect();
        let settings = &self.gate.settings;
        let from_request = self.settings.service_from_request;
        let service = attributes
            .and_then(|a| a.context_extensions.get(SERVICE_EXTENSION))
            .map(String::as_str)
            .or_else(|| {
                let named = headers.get(&settings.service_header).map(String::as_str);
                from_request
                    .then(|| settings.service_named_by_header(named))
                    .flatten()
            });
        self.require_consistency(attributes.map(|a| &a.context_extensions), &headers)
            .await?;
        let request_id = headers
            .get("x-request-id")
            .map(String::as_str)
            .or(Some(http.id.as_str()).filter(|id| !id.is_empty()));
        let original = OriginalRequest {
            method: &http.method,
            uri: &http.path,
            service,
            host: Some(http.host.as_str()).filter(|h| from_request && !h.is_empty()),
            token: headers.get("authorization").and_then(|v| bearer(v)),
            headers: &headers,
            request_id,
        };
        let outcome = self.gate.decide(&original, chrono::Utc::now()).await;
        let reason = match &outcome {
            Ok(allowed) => allowed.reason.clone(),
            Err(refusal) => refusal.reason().to_owned(),
        };
        let outcome_name = outcome
            .as_ref()
            .map_or_else(Refusal::outcome, |_| "allowed");
        crate::metrics::decision("ext_authz", outcome_name, &reason);
        tracing::Span::current().record("decision", reason.as_str());
        let mut response = CheckResponse::new();
        response.set_dynamic_metadata(Some(metadata(&reason, outcome.as_ref().ok())));
        match outcome {
            Ok(allowed) => {
                response
                    .set_status(Status::ok(""))
                    .set_http_response(self.allowed(allowed));
            }
            Err(refusal) => {
                if !matches!(refusal, Refusal::Unauthenticated(_)) {
                    tracing::info!(request_id, %reason, "ext_authz denied");
                }
                let (status, denied) = denied(&refusal);
                response.set_status(status).set_http_response(denied);
            }
        }
        Ok(Response::new(response))
    }
}

impl ExtAuthzService {
    /// The original request's consistency headers (`x-consistency`,
    /// `x-consistency-token`, as on every edge) and the route's
    /// requirement ([`CONSISTENCY_EXTENSION`]), on top of what the sidecar's
    /// own call required.
    async fn require_consistency(
        &self,
        extensions: Option<&HashMap<String, String>>,
        headers: &HashMap<String, String>,
    ) -> Result<(), Status> {
        let (keys, now) = (self.gate.tokens.keys(), chrono::Utc::now());
        let header = |name| headers.get(name).map(String::as_str);
        let in_header = |e: ConsistencyError| {
            invalid(
                &format!("attributes.request.http.headers[{}]", e.field),
                e.problem,
            )
        };
        let mut stated = Requirement::from_headers(
            header(consistency::headers::CONSISTENCY),
            header(consistency::headers::TOKEN),
            self.gate.db.default_consistency(),
            keys,
            now,
        )
        .map_err(in_header)?;
        if let Some(value) = extensions.and_then(|e| e.get(CONSISTENCY_EXTENSION)) {
            let route = Requirement::parse_header(value, keys, now)
                .map_err(|e| invalid(CONSISTENCY_EXTENSION, e.problem))?;
            stated.requirement = stated.requirement.and(route.requirement);
            stated.transactions.extend(route.transactions);
        }
        let requirement = consistency::resolve(stated, &self.gate.db)
            .await
            .map_err(in_header)?;
        consistency::scope::require(requirement);
        Ok(())
    }

    fn allowed(&self, allowed: Allowed) -> OkHttpResponse {
        // Replaced, never appended to: a client's own `x-auth-user` must
        // not reach the upstream beside the real one.
        let replace = Some(HeaderAppendAction::OverwriteIfExistsOrAdd);
        let mut ok = OkHttpResponseBuilder::new();
        let headers = allowed.upstream_headers();
        for (name, value) in &headers {
            ok.add_header(*name, value.as_str(), replace, *name == UPSTREAM_GROUPS);
        }
        for (name, legacy) in LEGACY_EXT_AUTHZ_NAMES {
            if self.settings.legacy_headers {
                if let Some((_, value)) = headers.iter().find(|(n, _)| *n == name) {
                    ok.add_header(legacy, value.as_str(), replace, name == UPSTREAM_GROUPS);
                }
            } else {
                // An upstream still reading the old name must not read a
                // value the client wrote there.
                ok.remove_header(legacy);
            }
        }
        if self.settings.remove_authorization {
            ok.remove_header("authorization");
        }
        ok.build()
    }
}

/// The denial Envoy sends to the client, and the status of the check.
fn denied(refusal: &Refusal) -> (Status, DeniedHttpResponse) {
    let (status, code) = match refusal {
        Refusal::Unauthenticated(why) => {
            (Status::unauthenticated(*why), HttpStatusCode::Unauthorized)
        }
        Refusal::Denied(reason) => (
            Status::permission_denied(reason.clone()),
            HttpStatusCode::Forbidden,
        ),
        Refusal::Unavailable => (
            Status::unavailable("unavailable"),
            HttpStatusCode::ServiceUnavailable,
        ),
        Refusal::Failed => (
            Status::internal("internal"),
            HttpStatusCode::InternalServerError,
        ),
    };
    let mut denied = DeniedHttpResponseBuilder::new();
    denied
        .set_http_status(code)
        .add_header("content-type", "application/json", None, false)
        .set_body(serde_json::json!({ "reason": refusal.reason() }).to_string());
    if matches!(refusal, Refusal::Unauthenticated(_)) {
        denied.add_header("www-authenticate", "Bearer", None, false);
    }
    (status, denied.build())
}

/// `dynamic_metadata`: the reason, and who, for Envoy's access log and the
/// filters after this one.
fn metadata(reason: &str, allowed: Option<&Allowed>) -> Struct {
    let text = |s: String| Value {
        kind: Some(Kind::StringValue(s)),
    };
    let mut fields = HashMap::new();
    fields.insert("reason".to_owned(), text(reason.to_owned()));
    if let Some(allowed) = allowed {
        fields.insert("user".to_owned(), text(allowed.subject.user_id.to_string()));
        fields.insert(
            "tenant".to_owned(),
            text(allowed.subject.tenant_id.to_string()),
        );
    }
    Struct { fields }
}
