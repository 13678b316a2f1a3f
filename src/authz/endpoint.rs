//! `CheckEndpoint`: which catalogue entry a request to a service matches,
//! which org node it names, and whether the subject may exercise the
//! entry's capability there. The server keeps the catalogue in memory and
//! confirms it is current in the decision's own round trip
//! ([`super::catalogue`]): a change is effective on the next call, with
//! nothing to restart.
//!
//! Matching: the routes of the request's own method first, then `ANY`
//! routes. Within one method the router decides (static segments before
//! parameters, parameters before a catch-all); routes it could not tell
//! apart are refused when they are written.

use std::sync::Arc;

use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use futures_util::FutureExt;
use scoped_futures::ScopedFutureExt;
use uuid::Uuid;

use super::catalogue::{EndpointCatalogue, EndpointRequest, Snapshot, version_now};
use super::check::decisions_in_order;
use super::endpoint_policy::EndpointPolicy;
use super::queries::{BatchQuery, Checks};
use super::{AuthzError, CapabilityKey, Decision, Subject};
use crate::db::Db;
use crate::names::OrgNodeId;

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
    catalogue: &EndpointCatalogue,
    subject: Subject,
    request: &EndpointRequest<'_>,
    with_roles: bool,
    request_id: Option<&str>,
) -> Result<EndpointDecision, AuthzError> {
    let ctx = subject.rls_context(request_id);
    // The hot path: the copy in memory, confirmed current in the same
    // round trip as the check (and the roles, when asked for).
    if let Some(copy) = catalogue.current() {
        let resolved = Resolved::of(&copy, request);
        let question = resolved.question(subject, with_roles);
        let (version, answer) = db
            .read_pipelined(&ctx, move |conn| {
                let mut first = conn;
                async move { futures_util::try_join!(version_now(&mut first), ask(conn, question)) }
                    .boxed()
            })
            .await?;
        if version == copy.version {
            return resolved.decided(answer);
        }
    }
    // No copy yet, or a stale one: reload, and decide in the same
    // transaction, against the catalogue just read.
    let (fresh, resolved, answer) = db
        .read(&ctx, |conn| {
            async move {
                let fresh = Snapshot::load(conn).await?;
                let resolved = Resolved::of(&fresh, request);
                let answer = ask(conn, resolved.question(subject, with_roles)).await?;
                Ok::<_, AuthzError>((fresh, resolved, answer))
            }
            .scope_boxed()
        })
        .await?;
    catalogue.replace(Arc::new(fresh));
    resolved.decided(answer)
}

/// What the catalogue makes of a request.
enum Resolved {
    NoMatchingEndpoint,
    OrgNodeNotGiven(EndpointPolicy),
    Check {
        policy: EndpointPolicy,
        capability: CapabilityKey,
        org_node_id: OrgNodeId,
    },
}

/// What the database is asked for a matched entry.
struct Question {
    user: Uuid,
    capability: String,
    node: Uuid,
    with_roles: bool,
}

/// The check's answer row and, when asked for, the roles at the node.
#[derive(Default)]
struct Answer {
    reasons: Vec<(i32, String)>,
    roles: Vec<String>,
}

impl Resolved {
    fn of(catalogue: &Snapshot, request: &EndpointRequest<'_>) -> Self {
        let Some((policy, node)) = catalogue.matched(request) else {
            return Self::NoMatchingEndpoint;
        };
        match (
            node.and_then(|raw| raw.parse::<OrgNodeId>().ok()),
            CapabilityKey::parse(&policy.capability),
        ) {
            (Some(org_node_id), Ok(capability)) => Self::Check {
                policy: policy.clone(),
                capability,
                org_node_id,
            },
            _ => Self::OrgNodeNotGiven(policy.clone()),
        }
    }

    fn question(&self, subject: Subject, with_roles: bool) -> Option<Question> {
        match self {
            Self::Check {
                capability,
                org_node_id,
                ..
            } => Some(Question {
                user: subject.user_id.get(),
                capability: capability.to_string(),
                node: org_node_id.get(),
                with_roles,
            }),
            _ => None,
        }
    }

    fn decided(self, answer: Answer) -> Result<EndpointDecision, AuthzError> {
        Ok(match self {
            Self::NoMatchingEndpoint => EndpointDecision::NoMatchingEndpoint,
            Self::OrgNodeNotGiven(policy) => EndpointDecision::OrgNodeNotGiven(policy),
            Self::Check {
                policy,
                org_node_id,
                ..
            } => {
                let decision: Decision =
                    decisions_in_order(answer.reasons, 1)?
                        .pop()
                        .ok_or_else(|| {
                            AuthzError::Unexpected("no answer to the endpoint's check".into())
                        })?;
                let roles = if decision.allowed() {
                    answer.roles
                } else {
                    Vec::new()
                };
                EndpointDecision::Decided {
                    policy,
                    org_node_id,
                    decision,
                    roles,
                }
            }
        })
    }
}

/// The check and, when asked for, the roles the subject holds at the node
/// (assignments in force at the node or above it), sent together.
async fn ask(conn: &AsyncPgConnection, question: Option<Question>) -> QueryResult<Answer> {
    use crate::db::schema::auth::{org_assignments as oa, org_node_paths as p, roles as r};
    let Some(question) = question else {
        return Ok(Answer::default());
    };
    let (capabilities, nodes) = (vec![question.capability], vec![question.node]);
    let (mut for_check, mut for_roles) = (conn, conn);
    let check =
        BatchQuery::<Checks>::new(question.user, &capabilities, &nodes).load(&mut for_check);
    let roles = async {
        if !question.with_roles {
            return Ok(Vec::new());
        }
        let now = diesel::dsl::now;
        p::table
            .inner_join(oa::table.on(oa::org_node_id.eq(p::ancestor_org_node_id)))
            .inner_join(r::table.on(r::role_id.eq(oa::role_id)))
            .filter(p::descendant_org_node_id.eq(question.node))
            .filter(oa::user_id.eq(question.user))
            .filter(oa::start_utc.le(now))
            .filter(oa::end_utc.is_null().or(oa::end_utc.gt(now)))
            .select(r::role_key)
            .distinct()
            .order(r::role_key)
            .load(&mut for_roles)
            .await
    };
    let (reasons, roles) = futures_util::try_join!(check, roles)?;
    Ok(Answer { reasons, roles })
}
