//! `CheckCapability` and `CheckCapabilities`: one statement for a whole
//! batch, however long.

use diesel_async::RunQueryDsl;
use futures_util::FutureExt;
use scoped_futures::ScopedFutureExt;
use uuid::Uuid;

use super::queries::{BatchQuery, Checks, Explanations, UsersChecks};
use super::{AuthzError, CapabilityKey, Subject};
use crate::db::Db;
use crate::db::RlsContext;
use crate::names::{OrgNodeId, TenantId, UserId};

/// Why a check answered as it did.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Reason {
    Allowed,
    NoMatchingAssignment,
    UnknownCapability,
    UnknownOrgNode,
    NodeInactive,
    UserInactive,
    TenantSuspended,
    UnknownUser,
}

impl Reason {
    fn from_db(value: &str) -> Option<Self> {
        Some(match value {
            "ALLOWED" => Self::Allowed,
            "NO_MATCHING_ASSIGNMENT" => Self::NoMatchingAssignment,
            "UNKNOWN_CAPABILITY" => Self::UnknownCapability,
            "UNKNOWN_ORG_NODE" => Self::UnknownOrgNode,
            "NODE_INACTIVE" => Self::NodeInactive,
            "USER_INACTIVE" => Self::UserInactive,
            "TENANT_SUSPENDED" => Self::TenantSuspended,
            "UNKNOWN_USER" => Self::UnknownUser,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Allowed => "allowed",
            Self::NoMatchingAssignment => "no_matching_assignment",
            Self::UnknownCapability => "unknown_capability",
            Self::UnknownOrgNode => "unknown_org_node",
            Self::NodeInactive => "node_inactive",
            Self::UserInactive => "user_inactive",
            Self::TenantSuspended => "tenant_suspended",
            Self::UnknownUser => "unknown_user",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Check {
    pub capability: CapabilityKey,
    pub org_node_id: OrgNodeId,
}

/// An assignment that allows a check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GrantExplanation {
    pub assignment_id: Uuid,
    pub role_id: Uuid,
    pub role_label: String,
    /// The node holding the assignment.
    pub org_node_id: Uuid,
    /// Distance from that node down to the node checked.
    pub depth: i32,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    pub reason: Reason,
    /// Filled only when explaining an allowed check.
    pub grants: Vec<GrantExplanation>,
}

impl Decision {
    pub fn allowed(&self) -> bool {
        self.reason == Reason::Allowed
    }
}

/// Answers every check for `subject`, in order, in one read-only transaction
/// and (without `explain`) one statement.
pub async fn check(
    db: &Db,
    subject: Subject,
    checks: &[Check],
    explain: bool,
    request_id: Option<&str>,
) -> Result<Vec<Decision>, AuthzError> {
    if checks.is_empty() {
        return Ok(Vec::new());
    }
    let capabilities: Vec<String> = checks.iter().map(|c| c.capability.to_string()).collect();
    let nodes: Vec<Uuid> = checks.iter().map(|c| c.org_node_id.get()).collect();
    let ctx = subject.rls_context(request_id);
    if !explain {
        // The hot path: one statement that sets its own context.
        let rows: Vec<(i32, String)> = db
            .read_statement(&ctx, move |conn, context| {
                let mut conn = conn;
                async move {
                    context
                        .wrap(BatchQuery::<Checks>::new(
                            subject.user_id.get(),
                            &capabilities,
                            &nodes,
                        ))
                        .load(&mut conn)
                        .await
                }
                .boxed()
            })
            .await?;
        return decisions_in_order(rows, checks.len());
    }
    let (capabilities, nodes) = (&capabilities, &nodes);
    db.read(&ctx, |conn| {
        async move {
            let rows: Vec<(i32, String)> =
                BatchQuery::<Checks>::new(subject.user_id.get(), capabilities, nodes)
                    .load(conn)
                    .await?;
            let mut decisions = decisions_in_order(rows, checks.len())?;
            if decisions.iter().any(Decision::allowed) {
                let rows: Vec<(i32, Uuid, Uuid, String, Uuid, i32)> =
                    BatchQuery::<Explanations>::new(subject.user_id.get(), capabilities, nodes)
                        .load(conn)
                        .await?;
                for (ordinal, assignment_id, role_id, role_label, org_node_id, depth) in rows {
                    let Some(decision) =
                        ordinal_index(ordinal, checks.len()).map(|i| &mut decisions[i])
                    else {
                        return Err(AuthzError::Unexpected(format!(
                            "explanation for check #{ordinal}"
                        )));
                    };
                    if decision.allowed() {
                        decision.grants.push(GrantExplanation {
                            assignment_id,
                            role_id,
                            role_label,
                            org_node_id,
                            depth,
                        });
                    }
                }
            }
            Ok(decisions)
        }
        .scope_boxed()
    })
    .await
}

/// Answers the checks of several users of `tenant`, in order, in one
/// statement (one transaction, one round trip) however many users there are.
pub async fn check_users(
    db: &Db,
    tenant: TenantId,
    checks: &[(UserId, Check)],
    request_id: Option<&str>,
) -> Result<Vec<Decision>, AuthzError> {
    if checks.is_empty() {
        return Ok(Vec::new());
    }
    let users: Vec<Uuid> = checks.iter().map(|(user, _)| user.get()).collect();
    let capabilities: Vec<String> = checks
        .iter()
        .map(|(_, c)| c.capability.to_string())
        .collect();
    let nodes: Vec<Uuid> = checks.iter().map(|(_, c)| c.org_node_id.get()).collect();
    let ctx = RlsContext::tenant(tenant.get()).with_request_id(request_id);
    let rows: Vec<(i32, String)> = db
        .read_statement(&ctx, move |conn, context| {
            let mut conn = conn;
            async move {
                context
                    .wrap(UsersChecks {
                        users: &users,
                        capabilities: &capabilities,
                        nodes: &nodes,
                    })
                    .load(&mut conn)
                    .await
            }
            .boxed()
        })
        .await?;
    decisions_in_order(rows, checks.len())
}

/// 1-based ordinal from the database → index into the request.
fn ordinal_index(ordinal: i32, len: usize) -> Option<usize> {
    usize::try_from(ordinal)
        .ok()
        .filter(|o| (1..=len).contains(o))
        .map(|o| o - 1)
}

pub(super) fn decisions_in_order(
    rows: Vec<(i32, String)>,
    len: usize,
) -> Result<Vec<Decision>, AuthzError> {
    if rows.len() != len {
        return Err(AuthzError::Unexpected(format!(
            "{} answers to {len} checks",
            rows.len()
        )));
    }
    rows.into_iter()
        .enumerate()
        .map(|(index, (ordinal, reason))| {
            if ordinal_index(ordinal, len) != Some(index) {
                return Err(AuthzError::Unexpected(format!(
                    "answer #{ordinal} out of order"
                )));
            }
            let reason =
                Reason::from_db(&reason).ok_or_else(|| AuthzError::Unexpected(reason.clone()))?;
            Ok(Decision {
                reason,
                grants: Vec::new(),
            })
        })
        .collect()
}
