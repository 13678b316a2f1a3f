//! The OpenID AuthZEN Authorization API 1.0 over HTTP (`--authzen-listen`):
//! access evaluation (single and batch), the subject, resource and action
//! searches, and discovery. The mapping: a subject `{type: "user", id:
//! <user id>, properties.tenant_id}` (the tenant defaults to the caller's
//! own when it is bound to one), a resource `{type: "org_node", id}`, an
//! action `{name: <capability key>}`. A decision's `context.reason` is the
//! reason code `CheckCapability` answers. The caller is a service, by its
//! Portcullis token (`Authorization: Bearer`): `authz.check` to evaluate
//! and search resources and actions, `authz.list_users` to search subjects.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use serde::Deserialize;
use serde_json::{Value, json};

use super::edge::Decided;
use crate::authz::{self, AuthzError, CapabilityKey, Check, HoldersQuery, PageRequest, Subject};
use crate::callers::{self, CallerRefusal};
use crate::db::{Db, RlsContext};
use crate::names::{OrgNodeId, TenantId, UserId};
use crate::tokens::{Principal, Tokens};

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

// ---- Wire shapes ----

#[derive(Clone, Debug, Default, Deserialize)]
struct Entity {
    #[serde(rename = "type")]
    kind: Option<String>,
    id: Option<String>,
    #[serde(default)]
    properties: serde_json::Map<String, Value>,
}

#[derive(Clone, Debug, Default, Deserialize)]
struct ActionBody {
    name: Option<String>,
}

#[derive(Clone, Debug, Default, Deserialize)]
struct EvaluationBody {
    subject: Option<Entity>,
    resource: Option<Entity>,
    action: Option<ActionBody>,
}

#[derive(Debug, Default, Deserialize)]
struct EvaluationsBody {
    subject: Option<Entity>,
    resource: Option<Entity>,
    action: Option<ActionBody>,
    evaluations: Option<Vec<EvaluationBody>>,
    options: Option<Options>,
}

#[derive(Debug, Default, Deserialize)]
struct Options {
    evaluations_semantic: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
struct SearchBody {
    subject: Option<Entity>,
    resource: Option<Entity>,
    action: Option<ActionBody>,
    page: Option<PageBody>,
}

#[derive(Debug, Default, Deserialize)]
struct PageBody {
    token: Option<String>,
    /// Drafts of the specification sent the token back under this name.
    next_token: Option<String>,
    limit: Option<u32>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Semantic {
    ExecuteAll,
    DenyOnFirstDeny,
    PermitOnFirstPermit,
}

/// An answer other than 200: its status and message (naming the field).
#[derive(Debug)]
struct Problem {
    status: StatusCode,
    message: String,
}

impl Problem {
    fn bad(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
        }
    }

    fn json(&self) -> Value {
        json!({ "status": self.status.as_u16(), "message": self.message })
    }

    /// The outcome and reason a refused request or item is logged and
    /// counted under.
    fn outcome(&self) -> (&'static str, &'static str) {
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

fn respond(headers: &HeaderMap, outcome: Result<Value, Problem>) -> Response {
    respond_decided(headers, outcome, None)
}

/// The answer, with what was decided for the request's log line (a refused
/// request's own outcome when it was refused).
fn respond_decided(
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

fn parse<T: for<'de> Deserialize<'de>>(body: &Bytes) -> Result<T, Problem> {
    serde_json::from_slice(body)
        .map_err(|e| Problem::bad(format!("body: not the expected JSON: {e}")))
}

fn request_id(headers: &HeaderMap) -> Option<&str> {
    headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|id| !id.is_empty() && id.len() <= 128)
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

/// The tenant of a request: `<field>.properties.tenant_id`, else the
/// caller's own; whether the caller may ask about it is the domain's rule.
fn tenant_of(entity: &Entity, field: &str, caller: &Principal) -> Result<TenantId, Problem> {
    let tenant: TenantId = match entity.properties.get("tenant_id") {
        Some(Value::String(raw)) => raw
            .parse()
            .map_err(|e| Problem::bad(format!("{field}.properties.tenant_id: {e}")))?,
        Some(_) => {
            return Err(Problem::bad(format!(
                "{field}.properties.tenant_id: must be a string"
            )));
        }
        None => caller.tenant_id().map(TenantId::from).ok_or_else(|| {
            Problem::bad(format!(
                "{field}.properties.tenant_id: required for a service not bound to a tenant"
            ))
        })?,
    };
    Ok(tenant)
}

fn expect_type(entity: &Entity, field: &str, expected: &str) -> Result<(), Problem> {
    match entity.kind.as_deref() {
        Some(kind) if kind == expected => Ok(()),
        Some(_) => Err(Problem::bad(format!(
            "{field}.type: must be \"{expected}\""
        ))),
        None => Err(Problem::bad(format!("{field}.type: required"))),
    }
}

fn required<'a, T>(value: Option<&'a T>, field: &str) -> Result<&'a T, Problem> {
    value.ok_or_else(|| Problem::bad(format!("{field}: required")))
}

fn id_of<T>(entity: &Entity, field: &str) -> Result<T, Problem>
where
    T: std::str::FromStr<Err = crate::names::NameError>,
{
    let raw = entity
        .id
        .as_deref()
        .ok_or_else(|| Problem::bad(format!("{field}.id: required")))?;
    raw.parse()
        .map_err(|e| Problem::bad(format!("{field}.id: {e}")))
}

fn capability_of(action: Option<&ActionBody>) -> Result<CapabilityKey, Problem> {
    let name = required(action, "action")?
        .name
        .as_deref()
        .ok_or_else(|| Problem::bad("action.name: required"))?;
    CapabilityKey::parse(name).map_err(|e| Problem::bad(format!("action.name: {e}")))
}

/// The user a request's subject names.
fn subject_of(entity: Option<&Entity>, caller: &Principal) -> Result<Subject, Problem> {
    let entity = required(entity, "subject")?;
    expect_type(entity, "subject", "user")?;
    let user_id: UserId = id_of(entity, "subject")?;
    let tenant_id = tenant_of(entity, "subject", caller)?;
    authz::may_ask_about_tenant(caller, tenant_id, "subject.properties.tenant_id")?;
    Ok(Subject { tenant_id, user_id })
}

/// One evaluation, parsed: the subject and the check.
fn parsed(item: &EvaluationBody, caller: &Principal) -> Result<(Subject, Check), Problem> {
    let subject = subject_of(item.subject.as_ref(), caller)?;
    let resource = required(item.resource.as_ref(), "resource")?;
    expect_type(resource, "resource", "org_node")?;
    let org_node_id: OrgNodeId = id_of(resource, "resource")?;
    Ok((
        subject,
        Check {
            capability: capability_of(item.action.as_ref())?,
            org_node_id,
        },
    ))
}

fn decision(allowed: bool, reason: &str) -> Value {
    json!({ "decision": allowed, "context": { "reason": reason } })
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

fn page_of(body: &SearchBody) -> PageRequest {
    let page = body.page.as_ref();
    PageRequest {
        size: page
            .and_then(|p| p.limit)
            .filter(|l| *l > 0)
            .unwrap_or(authz::DEFAULT_PAGE_SIZE)
            .min(authz::MAX_PAGE_SIZE),
        token: page
            .and_then(|p| p.token.clone().or_else(|| p.next_token.clone()))
            .filter(|t| !t.is_empty()),
    }
}

fn search_answer(results: Vec<Value>, next: Option<String>) -> Value {
    json!({
        "results": results.clone(),
        "page": { "next_token": next.unwrap_or_default(), "count": results.len() },
    })
}

async fn search_subject(
    State(api): State<Arc<AuthZen>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let outcome = async {
        let caller = api.caller(&headers, "AuthZen/SearchSubject")?;
        let search: SearchBody = parse(&body)?;
        let subject = required(search.subject.as_ref(), "subject")?;
        expect_type(subject, "subject", "user")?;
        let resource = required(search.resource.as_ref(), "resource")?;
        expect_type(resource, "resource", "org_node")?;
        let tenant = tenant_of(subject, "subject", &caller)?;
        authz::may_ask_about_tenant(&caller, tenant, "subject.properties.tenant_id")?;
        let page = page_of(&search);
        let query = HoldersQuery {
            tenant_id: tenant,
            capability: capability_of(search.action.as_ref())?,
            org_node_id: id_of(resource, "resource")?,
            page_size: page.size,
            page_token: page.token,
        };
        let context = RlsContext::anonymous()
            .with_service(caller.actor().1)
            .with_request_id(request_id(&headers));
        let holders =
            authz::list_holders(&api.db, api.tokens.keys(), context, &query, Utc::now()).await?;
        let results = holders
            .users
            .iter()
            .map(|h| json!({ "type": "user", "id": h.user_id, "properties": { "tenant_id": tenant.get() } }))
            .collect();
        Ok(search_answer(results, holders.next_page_token))
    }
    .await;
    respond(&headers, outcome)
}

async fn search_resource(
    State(api): State<Arc<AuthZen>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let outcome = async {
        let caller = api.caller(&headers, "AuthZen/SearchResource")?;
        let search: SearchBody = parse(&body)?;
        let subject = subject_of(search.subject.as_ref(), &caller)?;
        expect_type(
            required(search.resource.as_ref(), "resource")?,
            "resource",
            "org_node",
        )?;
        let capability = capability_of(search.action.as_ref())?;
        let found = authz::nodes_with_capability(
            &api.db,
            api.tokens.keys(),
            subject,
            &capability,
            &page_of(&search),
            request_id(&headers),
            Utc::now(),
        )
        .await?;
        let results = found
            .items
            .iter()
            .map(|id| json!({ "type": "org_node", "id": id }))
            .collect();
        Ok(search_answer(results, found.next_page_token))
    }
    .await;
    respond(&headers, outcome)
}

async fn search_action(
    State(api): State<Arc<AuthZen>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let outcome = async {
        let caller = api.caller(&headers, "AuthZen/SearchAction")?;
        let search: SearchBody = parse(&body)?;
        let subject = subject_of(search.subject.as_ref(), &caller)?;
        let resource = required(search.resource.as_ref(), "resource")?;
        expect_type(resource, "resource", "org_node")?;
        let node: OrgNodeId = id_of(resource, "resource")?;
        let found = authz::capabilities_at(
            &api.db,
            api.tokens.keys(),
            subject,
            node,
            &page_of(&search),
            request_id(&headers),
            Utc::now(),
        )
        .await?;
        let results = found
            .items
            .iter()
            .map(|name| json!({ "name": name }))
            .collect();
        Ok(search_answer(results, found.next_page_token))
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
