//! The API's JSON, as it arrives, and how a request's parts are read:
//! subjects, resources, actions, tenants and pages, each refused naming
//! its field.

use serde::Deserialize;
use serde_json::{Value, json};

use super::problem::Problem;
use crate::authz::{self, CapabilityKey, Check, PageRequest, Subject};
use crate::names::{OrgNodeId, TenantId, UserId};
use crate::tokens::Principal;

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(expecting = "an entity: an object with type, id and properties")]
pub(super) struct EntityBody {
    #[serde(rename = "type")]
    pub(super) kind: Option<String>,
    pub(super) id: Option<String>,
    #[serde(default)]
    pub(super) properties: serde_json::Map<String, Value>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(expecting = "an action: an object with a name")]
pub(super) struct ActionBody {
    pub(super) name: Option<String>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(expecting = "an evaluation: an object with subject, resource and action")]
pub(super) struct EvaluationBody {
    pub(super) subject: Option<EntityBody>,
    pub(super) resource: Option<EntityBody>,
    pub(super) action: Option<ActionBody>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(expecting = "an object with subject, resource, action, evaluations and options")]
pub(super) struct EvaluationsBody {
    pub(super) subject: Option<EntityBody>,
    pub(super) resource: Option<EntityBody>,
    pub(super) action: Option<ActionBody>,
    pub(super) evaluations: Option<Vec<EvaluationBody>>,
    pub(super) options: Option<Options>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(expecting = "an object of options")]
pub(super) struct Options {
    pub(super) evaluations_semantic: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(expecting = "an object with subject, resource, action and page")]
pub(super) struct SearchBody {
    pub(super) subject: Option<EntityBody>,
    pub(super) resource: Option<EntityBody>,
    pub(super) action: Option<ActionBody>,
    pub(super) page: Option<PageBody>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(expecting = "a page: an object with token and limit")]
pub(super) struct PageBody {
    pub(super) token: Option<String>,
    /// Drafts of the specification sent the token back under this name.
    pub(super) next_token: Option<String>,
    pub(super) limit: Option<u32>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Semantic {
    ExecuteAll,
    DenyOnFirstDeny,
    PermitOnFirstPermit,
}

/// The tenant of a request: `<field>.properties.tenant_id`, else the
/// caller's own; whether the caller may ask about it is the domain's rule.
pub(super) fn tenant_of(
    entity: &EntityBody,
    field: &str,
    caller: &Principal,
) -> Result<TenantId, Problem> {
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

pub(super) fn expect_type(entity: &EntityBody, field: &str, expected: &str) -> Result<(), Problem> {
    match entity.kind.as_deref() {
        Some(kind) if kind == expected => Ok(()),
        Some(_) => Err(Problem::bad(format!(
            "{field}.type: must be \"{expected}\""
        ))),
        None => Err(Problem::bad(format!("{field}.type: required"))),
    }
}

pub(super) fn required<'a, T>(value: Option<&'a T>, field: &str) -> Result<&'a T, Problem> {
    value.ok_or_else(|| Problem::bad(format!("{field}: required")))
}

pub(super) fn id_of<T>(entity: &EntityBody, field: &str) -> Result<T, Problem>
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

pub(super) fn capability_of(action: Option<&ActionBody>) -> Result<CapabilityKey, Problem> {
    let name = required(action, "action")?
        .name
        .as_deref()
        .ok_or_else(|| Problem::bad("action.name: required"))?;
    CapabilityKey::parse(name).map_err(|e| Problem::bad(format!("action.name: {e}")))
}

/// The user a request's subject names.
pub(super) fn subject_of(
    entity: Option<&EntityBody>,
    caller: &Principal,
) -> Result<Subject, Problem> {
    let entity = required(entity, "subject")?;
    expect_type(entity, "subject", "user")?;
    let user_id: UserId = id_of(entity, "subject")?;
    let tenant_id = tenant_of(entity, "subject", caller)?;
    authz::may_ask_about_tenant(caller, tenant_id, "subject.properties.tenant_id")?;
    Ok(Subject { tenant_id, user_id })
}

/// One evaluation, parsed: the subject and the check.
pub(super) fn parsed(
    item: &EvaluationBody,
    caller: &Principal,
) -> Result<(Subject, Check), Problem> {
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

pub(super) fn decision(allowed: bool, reason: &str) -> Value {
    json!({ "decision": allowed, "context": { "reason": reason } })
}

pub(super) fn page_of(body: &SearchBody) -> PageRequest {
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

pub(super) fn search_answer(results: Vec<Value>, next: Option<String>) -> Value {
    json!({
        "results": results.clone(),
        "page": { "next_token": next.unwrap_or_default(), "count": results.len() },
    })
}
