//! The OpenID AuthZEN Authorization API 1.0 over HTTP (`--authzen-listen`):
//! access evaluation (single and batch), the subject, resource and action
//! searches, and discovery. The mapping: a subject `{type: "user", id:
//! <user id>, properties.tenant_id}` (the tenant defaults to the caller's
//! own when it is bound to one), a resource `{type: "org_node", id}`, an
//! action `{name: <capability key>}`. A decision's `context.reason` is the
//! reason code `CheckCapability` answers. The caller is a service, by its
//! Portcullis token (`Authorization: Bearer`): `authz.check` to evaluate
//! and search resources and actions, `authz.list_users` to search subjects.

mod problem;
mod search;
mod wire;

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use chrono::Utc;
use serde_json::json;

use super::edge::Decided;
use crate::authz::{self, Check};
use crate::callers::{self, CallerRefusal};
use crate::db::Db;
use crate::names::{TenantId, UserId};
use crate::tokens::{Principal, Tokens};
use problem::{Problem, parse, request_id, respond, respond_decided};
use search::{search_action, search_resource, search_subject};
use wire::{EvaluationBody, EvaluationsBody, Semantic, decision, parsed};

/// Evaluations in one batch, at most (as `CheckCapabilities`).
pub const MAX_EVALUATIONS: usize = 1000;

/// The edge's name in logs, spans and `portcullis_decisions_total`.
pub const EDGE: &str = "authzen";

pub struct AuthZen {
    pub db: Db,
    pub tokens: Arc<Tokens>,
    /// The PDP's own URL in discovery (configured, never the request's
    /// Host).
    pub base_url: String,
}

pub fn routes(state: Arc<AuthZen>) -> axum::Router {
    use axum::routing::{get, post};
    axum::Router::new()
        .route("/access/v1/evaluation", post(evaluation))
        .route("/access/v1/evaluations", post(evaluations))
        .route("/access/v1/search/subject", post(search_subject))
        .route("/access/v1/search/resource", post(search_resource))
        .route("/access/v1/search/action", post(search_action))
        .route("/.well-known/authzen-configuration", get(configuration))
        .with_state(state)
}

impl AuthZen {
    /// The calling service, as the caller rule table has it for
    /// `operation`.
    fn caller(&self, headers: &HeaderMap, operation: &str) -> Result<Principal, Problem> {
        let authorization = headers.get("authorization").and_then(|v| v.to_str().ok());
        callers::authorize(&self.tokens, operation, authorization, Utc::now())
            .map_err(Problem::from)?
            .ok_or_else(|| Problem::from(CallerRefusal::Unauthenticated))
    }
}

impl AuthZen {
    /// Decides `items` in order (each subject's checks in one statement);
    /// an item that does not parse or may not be asked stays an error in
    /// its place.
    async fn decide(
        &self,
        caller: &Principal,
        items: &[EvaluationBody],
        request_id: Option<&str>,
    ) -> Result<Vec<Result<(bool, String), Problem>>, Problem> {
        let mut answers: Vec<Option<Result<(bool, String), Problem>>> =
            items.iter().map(|_| None).collect();
        // Each tenant's checks, with their places in the request: one
        // statement per tenant (the context fences one tenant), however
        // many subjects.
        let mut by_tenant: BTreeMap<uuid::Uuid, Placed> = BTreeMap::new();
        for (index, item) in items.iter().enumerate() {
            match parsed(item, caller) {
                Ok((subject, check)) => {
                    by_tenant
                        .entry(subject.tenant_id.get())
                        .or_insert_with(|| (subject.tenant_id, Vec::new()))
                        .1
                        .push((index, (subject.user_id, check)));
                }
                Err(problem) => answers[index] = Some(Err(problem)),
            }
        }
        for (tenant, checks) in by_tenant.into_values() {
            let only: Vec<(UserId, Check)> = checks.iter().map(|(_, c)| c.clone()).collect();
            let decisions = authz::check_users(&self.db, tenant, &only, request_id).await?;
            for ((index, _), decided) in checks.iter().zip(decisions) {
                answers[*index] = Some(Ok((decided.allowed(), decided.reason.as_str().to_owned())));
            }
        }
        let answers: Vec<_> = answers
            .into_iter()
            .map(|a| a.unwrap_or_else(|| Err(Problem::bad("unanswered"))))
            .collect();
        for answer in &answers {
            match answer {
                Ok((allowed, reason)) => {
                    let outcome = if *allowed { "allowed" } else { "denied" };
                    crate::metrics::decision(EDGE, outcome, reason);
                }
                Err(problem) => {
                    let (outcome, reason) = problem.outcome();
                    crate::metrics::decision(EDGE, outcome, reason);
                }
            }
        }
        Ok(answers)
    }
}

/// A tenant and its checks, each with its index in the request.
type Placed = (TenantId, Vec<(usize, (UserId, Check))>);

// ---- Handlers ----

async fn evaluation(State(api): State<Arc<AuthZen>>, headers: HeaderMap, body: Bytes) -> Response {
    let outcome = async {
        let caller = api.caller(&headers, "AuthZen/Evaluation")?;
        let item: EvaluationBody = parse(&body)?;
        let mut answers = api
            .decide(&caller, std::slice::from_ref(&item), request_id(&headers))
            .await?;
        let (allowed, reason) = answers.pop().ok_or_else(|| Problem::bad("unanswered"))??;
        let decided = Decided {
            outcome: if allowed { "allowed" } else { "denied" },
            reason: reason.clone(),
            caller: Some(caller_label(&caller)),
        };
        Ok((decision(allowed, &reason), decided))
    }
    .await;
    match outcome {
        Ok((body, decided)) => respond_decided(&headers, Ok(body), Some(decided)),
        Err(problem) => respond(&headers, Err(problem)),
    }
}

/// The caller as logs name it (`service:<id>`), never its token.
fn caller_label(caller: &Principal) -> String {
    let (kind, id) = caller.actor();
    format!("{kind}:{id}")
}

async fn evaluations(State(api): State<Arc<AuthZen>>, headers: HeaderMap, body: Bytes) -> Response {
    let outcome = async {
        let caller = api.caller(&headers, "AuthZen/Evaluations")?;
        let batch: EvaluationsBody = parse(&body)?;
        let semantic = match batch
            .options
            .as_ref()
            .and_then(|o| o.evaluations_semantic.as_deref())
        {
            None | Some("execute_all") => Semantic::ExecuteAll,
            Some("deny_on_first_deny") => Semantic::DenyOnFirstDeny,
            Some("permit_on_first_permit") => Semantic::PermitOnFirstPermit,
            Some(other) => {
                return Err(Problem::bad(format!(
                    "options.evaluations_semantic: `{other}` is not execute_all, deny_on_first_deny or permit_on_first_permit"
                )));
            }
        };
        let defaults = EvaluationBody {
            subject: batch.subject.clone(),
            resource: batch.resource.clone(),
            action: batch.action.clone(),
        };
        let listed = batch.evaluations.unwrap_or_default();
        // Without items, the request is a single evaluation (§7.1).
        if listed.is_empty() {
            let mut answers = api
                .decide(&caller, std::slice::from_ref(&defaults), request_id(&headers))
                .await?;
            let (allowed, reason) = answers.pop().ok_or_else(|| Problem::bad("unanswered"))??;
            return Ok(decision(allowed, &reason));
        }
        if listed.len() > MAX_EVALUATIONS {
            return Err(Problem::bad(format!(
                "evaluations: at most {MAX_EVALUATIONS} in one request"
            )));
        }
        // Each item's own subject, resource and action override the defaults.
        let items: Vec<EvaluationBody> = listed
            .into_iter()
            .map(|item| EvaluationBody {
                subject: item.subject.or_else(|| defaults.subject.clone()),
                resource: item.resource.or_else(|| defaults.resource.clone()),
                action: item.action.or_else(|| defaults.action.clone()),
            })
            .collect();
        let answers = api.decide(&caller, &items, request_id(&headers)).await?;
        let mut results = Vec::with_capacity(answers.len());
        for (index, answer) in answers.into_iter().enumerate() {
            let (allowed, json) = match answer {
                Ok((allowed, reason)) => (allowed, decision(allowed, &reason)),
                Err(problem) => (
                    false,
                    json!({ "decision": false, "context": { "error": problem.json(), "index": index } }),
                ),
            };
            results.push(json);
            let stop = match semantic {
                Semantic::ExecuteAll => false,
                Semantic::DenyOnFirstDeny => !allowed,
                Semantic::PermitOnFirstPermit => allowed,
            };
            if stop {
                break;
            }
        }
        Ok(json!({ "evaluations": results }))
    }
    .await;
    respond(&headers, outcome)
}

async fn configuration(State(api): State<Arc<AuthZen>>, headers: HeaderMap) -> Response {
    let base = api.base_url.as_str();
    let base = base.trim_end_matches('/');
    respond(
        &headers,
        Ok(json!({
            "policy_decision_point": base,
            "access_evaluation_endpoint": format!("{base}/access/v1/evaluation"),
            "access_evaluations_endpoint": format!("{base}/access/v1/evaluations"),
            "search_subject_endpoint": format!("{base}/access/v1/search/subject"),
            "search_resource_endpoint": format!("{base}/access/v1/search/resource"),
            "search_action_endpoint": format!("{base}/access/v1/search/action"),
        })),
    )
}
