//! `CheckEndpoint`: which catalogue entry a request to a service matches,
//! which org node it names, and whether the subject may exercise the
//! entry's capability there. The catalogue is read on every call: a change
//! is effective on the next one, with nothing to restart.
//!
//! Matching: the routes of the request's own method first, then `ANY`
//! routes. Within one method the router decides (static segments before
//! parameters, parameters before a catch-all); routes it could not tell
//! apart are refused when they are written.

use std::collections::HashMap;

use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use scoped_futures::ScopedFutureExt;

use super::{AuthzError, CapabilityKey, Check, Decision, Subject, check};
use crate::admin::global::EndpointPolicy;
use crate::admin::global::endpoints;
use crate::db::Db;
use crate::db::schema::auth::endpoint_policy as ep;
use crate::names::{HttpMethod, NodeSource, OrgNodeId};

/// A request as a gateway sees it.
#[derive(Clone, Debug)]
pub struct EndpointRequest<'a> {
    pub service: &'a str,
    pub method: HttpMethod,
    /// The path, without its query string.
    pub path: &'a str,
    /// Header names in lower case.
    pub headers: &'a HashMap<String, String>,
    pub fields: &'a HashMap<String, String>,
}

#[derive(Clone, Debug)]
pub enum EndpointDecision {
    /// No entry of the catalogue matches: denied.
    NoMatchingEndpoint,
    /// The entry matched, but the request does not name a node where the
    /// entry says it does (or not as a node id): denied.
    OrgNodeNotGiven(EndpointPolicy),
    Decided {
        policy: EndpointPolicy,
        org_node_id: OrgNodeId,
        decision: Decision,
        /// With `with_roles` and when allowed: the keys of the roles the
        /// subject holds at the node (assignments in force there or above).
        roles: Vec<String>,
    },
}

impl EndpointDecision {
    pub fn allowed(&self) -> bool {
        matches!(self, Self::Decided { decision, .. } if decision.allowed())
    }
}

pub async fn check_endpoint(
    db: &Db,
    subject: Subject,
    request: &EndpointRequest<'_>,
    with_roles: bool,
    request_id: Option<&str>,
) -> Result<EndpointDecision, AuthzError> {
    let methods = [request.method.as_str(), HttpMethod::Any.as_str()];
    let service = request.service;
    let rows: Vec<endpoints::Row> = db
        .read(&subject.rls_context(request_id), |conn| {
            async move {
                Ok::<_, AuthzError>(
                    ep::table
                        .filter(ep::service_key.eq(service))
                        .filter(ep::method_code.eq_any(methods))
                        .select(endpoints::COLUMNS)
                        .load(conn)
                        .await?,
                )
            }
            .scope_boxed()
        })
        .await?;
    let policies: Vec<EndpointPolicy> = rows.into_iter().map(EndpointPolicy::from_row).collect();
    let Some((policy, node)) = matched(&policies, request) else {
        return Ok(EndpointDecision::NoMatchingEndpoint);
    };
    let (Some(org_node_id), Ok(capability)) = (
        node.and_then(|raw| raw.parse::<OrgNodeId>().ok()),
        CapabilityKey::parse(&policy.capability),
    ) else {
        return Ok(EndpointDecision::OrgNodeNotGiven(policy.clone()));
    };
    let decision = check(
        db,
        subject,
        &[Check {
            capability,
            org_node_id,
        }],
        false,
        request_id,
    )
    .await?
    .pop()
    .ok_or_else(|| AuthzError::Unexpected("no answer to the endpoint's check".into()))?;
    let roles = if with_roles && decision.allowed() {
        roles_held_at(db, subject, org_node_id, request_id).await?
    } else {
        Vec::new()
    };
    Ok(EndpointDecision::Decided {
        policy: policy.clone(),
        org_node_id,
        decision,
        roles,
    })
}

/// The keys of the roles `subject` holds at `node`: assignments in force at
/// the node or above it.
async fn roles_held_at(
    db: &Db,
    subject: Subject,
    node: OrgNodeId,
    request_id: Option<&str>,
) -> Result<Vec<String>, AuthzError> {
    use crate::db::schema::auth::{org_assignments as oa, org_node_paths as p, roles as r};
    let (user, node) = (subject.user_id.get(), node.get());
    db.read(&subject.rls_context(request_id), |conn| {
        async move {
            let now = diesel::dsl::now;
            Ok::<_, AuthzError>(
                p::table
                    .inner_join(oa::table.on(oa::org_node_id.eq(p::ancestor_org_node_id)))
                    .inner_join(r::table.on(r::role_id.eq(oa::role_id)))
                    .filter(p::descendant_org_node_id.eq(node))
                    .filter(oa::user_id.eq(user))
                    .filter(oa::start_utc.le(now))
                    .filter(oa::end_utc.is_null().or(oa::end_utc.gt(now)))
                    .select(r::role_key)
                    .distinct()
                    .order(r::role_key)
                    .load(conn)
                    .await?,
            )
        }
        .scope_boxed()
    })
    .await
}

/// The entry the request matches (its own method's routes first, then
/// `ANY`), and the node id as the request gives it, if it does.
fn matched<'p>(
    policies: &'p [EndpointPolicy],
    request: &EndpointRequest<'_>,
) -> Option<(&'p EndpointPolicy, Option<String>)> {
    for method in [request.method, HttpMethod::Any] {
        let mut router = matchit::Router::new();
        for (index, policy) in policies.iter().enumerate() {
            if policy.method == method.as_str() {
                // Conflicting routes were refused when written.
                let _ = router.insert(policy.route_pattern.as_str(), index);
            }
        }
        if let Ok(found) = router.at(request.path) {
            let policy = &policies[*found.value];
            let node = match &policy.node_source {
                NodeSource::Path(name) => found.params.get(name.as_str()).map(str::to_owned),
                NodeSource::Header(name) => request.headers.get(name).cloned(),
                NodeSource::Field(name) => request.fields.get(name).cloned(),
            };
            return Some((policy, node));
        }
    }
    None
}
