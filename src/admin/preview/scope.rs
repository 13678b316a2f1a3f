//! Where a set of writes can have changed who may do what: read from the
//! audit rows the writes' own transaction wrote, so every write is covered
//! by the one record every write already makes.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use diesel::sql_types::{Jsonb, Nullable, Text, Uuid as SqlUuid};
use diesel_async::RunQueryDsl;
use scoped_futures::ScopedFutureExt;
use uuid::Uuid;

use crate::admin::AdminError;
use crate::db::{Db, RlsContext};

/// A set of users, nodes or capabilities, or all of them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Members<T: Ord> {
    All,
    Only(BTreeSet<T>),
}

impl<T: Ord + Clone> Members<T> {
    fn one(item: T) -> Self {
        Self::Only(BTreeSet::from([item]))
    }

    fn union(&mut self, other: &Self) {
        match (&mut *self, other) {
            (Self::All, _) => {}
            (_, Self::All) => *self = Self::All,
            (Self::Only(mine), Self::Only(theirs)) => mine.extend(theirs.iter().cloned()),
        }
    }

    fn covers(&self, other: &Self) -> bool {
        match (self, other) {
            (Self::All, _) => true,
            (Self::Only(_), Self::All) => false,
            (Self::Only(mine), Self::Only(theirs)) => theirs.is_subset(mine),
        }
    }

    /// The members, or `None` for all.
    pub fn only(&self) -> Option<&BTreeSet<T>> {
        match self {
            Self::All => None,
            Self::Only(members) => Some(members),
        }
    }
}

/// The part of a tenant where answers may differ: these users' holdings
/// of these capabilities in the subtrees of these nodes (in the tree as it
/// was or as it would be), at these times besides now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Scope {
    pub users: Members<Uuid>,
    pub subtrees: Members<Uuid>,
    pub capabilities: Members<String>,
    /// The time boundaries the writes set (an assignment's start or end):
    /// answers are compared at each still to come, besides now.
    pub times: BTreeSet<DateTime<Utc>>,
    /// Whether any write can change an answer at all.
    pub changes_access: bool,
}

impl Scope {
    fn nothing() -> Self {
        Self {
            users: Members::Only(BTreeSet::new()),
            subtrees: Members::Only(BTreeSet::new()),
            capabilities: Members::Only(BTreeSet::new()),
            times: BTreeSet::new(),
            changes_access: false,
        }
    }

    fn everything() -> Self {
        Self {
            users: Members::All,
            subtrees: Members::All,
            capabilities: Members::All,
            times: BTreeSet::new(),
            changes_access: true,
        }
    }

    /// The smallest scope holding both: a superset is always sound, since
    /// the difference is computed from the rows, the scope only bounds
    /// where it is looked for.
    pub fn union(&mut self, other: &Scope) {
        if !other.changes_access {
            return;
        }
        if !self.changes_access {
            *self = other.clone();
            return;
        }
        self.users.union(&other.users);
        self.subtrees.union(&other.subtrees);
        self.capabilities.union(&other.capabilities);
        self.times.extend(other.times.iter().copied());
    }

    /// Whether everything `other` may change is inside this scope (at
    /// any time: the times are each run's own, as its writes read the
    /// clock).
    pub fn covers(&self, other: &Scope) -> bool {
        !other.changes_access
            || (self.changes_access
                && self.users.covers(&other.users)
                && self.subtrees.covers(&other.subtrees)
                && self.capabilities.covers(&other.capabilities))
    }

    /// What one audited change may change. Visibility grants, renames,
    /// new roles, users and capabilities, invitations and the endpoint
    /// catalogue change no `CheckCapability` answer.
    fn of_change(action: &str, entity: Option<Uuid>, payload: &serde_json::Value) -> Self {
        let after = &payload["after"];
        let before = &payload["before"];
        let changed = if after.is_object() { after } else { before };
        let uuid = |value: &serde_json::Value| value.as_str().and_then(|s| s.parse::<Uuid>().ok());
        match action {
            "assignment.created" | "assignment.ended" => {
                let (Some(user), Some(node)) =
                    (uuid(&changed["user_id"]), uuid(&changed["org_node_id"]))
                else {
                    return Self::everything();
                };
                let times = [before, after]
                    .iter()
                    .flat_map(|row| [&row["start_utc"], &row["end_utc"]])
                    .filter_map(|t| t.as_str()?.parse::<DateTime<Utc>>().ok())
                    .collect();
                Self {
                    users: Members::one(user),
                    subtrees: Members::one(node),
                    capabilities: Members::All,
                    times,
                    changes_access: true,
                }
            }
            "org.node_created"
            | "org.node_moved"
            | "org.node_deactivated"
            | "org.node_reactivated" => match entity {
                Some(node) => Self {
                    subtrees: Members::one(node),
                    ..Self::everything()
                },
                None => Self::everything(),
            },
            "role.capabilities_set" => {
                let keys = |row: &serde_json::Value| -> BTreeSet<String> {
                    row["capabilities"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(|key| key.as_str().map(str::to_owned))
                        .collect()
                };
                let moved: BTreeSet<String> = keys(before)
                    .symmetric_difference(&keys(after))
                    .cloned()
                    .collect();
                if moved.is_empty() {
                    return Self::nothing();
                }
                Self {
                    capabilities: Members::Only(moved),
                    ..Self::everything()
                }
            }
            "user.deactivated" | "user.reactivated" => match entity {
                Some(user) => Self {
                    users: Members::one(user),
                    ..Self::everything()
                },
                None => Self::everything(),
            },
            "tenant.suspended" | "tenant.reactivated" => Self::everything(),
            "visibility.granted"
            | "visibility.revoked"
            | "org.node_renamed"
            | "role.created"
            | "role.renamed"
            | "user.created"
            | "user.password_set"
            | "capability.created"
            | "invitation.created"
            | "invitation.revoked"
            | "invitation.accepted"
            | "tenant.created"
            | "tenant.renamed"
            | "tenant.federated_email_linking_allowed"
            | "tenant.federated_email_linking_stopped"
            | "endpoint_policy.created"
            | "endpoint_policy.updated"
            | "endpoint_policy.deleted" => Self::nothing(),
            // A change this list does not know yet: assume the worst.
            _ => Self::everything(),
        }
    }
}

#[derive(diesel::QueryableByName)]
struct AuditedChange {
    #[diesel(sql_type = Text)]
    action_key: String,
    #[diesel(sql_type = Nullable<SqlUuid>)]
    entity_id: Option<Uuid>,
    #[diesel(sql_type = Jsonb)]
    payload_json: serde_json::Value,
}

/// What the writes of the current rehearsal changed in `tenant`: the audit
/// rows its own transaction wrote (the `preview` purpose sees no other).
pub(super) async fn of_rehearsal(db: &Db, tenant: Uuid) -> Result<Scope, AdminError> {
    let rows: Vec<AuditedChange> = db
        .read(&RlsContext::purpose("preview"), |conn| {
            async move {
                diesel::sql_query(
                    "SELECT action_key, entity_id, payload_json \
                       FROM audit.audit_events WHERE tenant_id = $1 AND occurred_utc = now()",
                )
                .bind::<SqlUuid, _>(tenant)
                .load(conn)
                .await
                .map_err(AdminError::from)
            }
            .scope_boxed()
        })
        .await?;
    let mut scope = Scope::nothing();
    for row in &rows {
        scope.union(&Scope::of_change(
            &row.action_key,
            row.entity_id,
            &row.payload_json,
        ));
    }
    Ok(scope)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn an_assignment_reaches_its_user_under_its_node_at_its_boundaries() {
        let (user, node) = (Uuid::new_v4(), Uuid::new_v4());
        let payload = json!({"before": null, "after": {
            "user_id": user, "org_node_id": node,
            "start_utc": "2026-12-01T00:00:00Z", "end_utc": "2027-01-01T00:00:00Z"}});
        let scope = Scope::of_change("assignment.created", None, &payload);
        assert_eq!(scope.users, Members::one(user));
        assert_eq!(scope.subtrees, Members::one(node));
        assert_eq!(
            scope.times.into_iter().collect::<Vec<_>>(),
            ["2026-12-01T00:00:00Z", "2027-01-01T00:00:00Z"]
                .map(|t| t.parse::<DateTime<Utc>>().unwrap())
                .to_vec()
        );
    }

    #[test]
    fn a_role_change_reaches_only_the_capabilities_that_moved() {
        let payload =
            json!({"before": {"capabilities": ["a", "b"]}, "after": {"capabilities": ["b", "c"]}});
        let scope = Scope::of_change("role.capabilities_set", None, &payload);
        assert_eq!(
            scope.capabilities,
            Members::Only(["a".to_owned(), "c".to_owned()].into())
        );
        assert_eq!(scope.users, Members::All);
    }

    #[test]
    fn an_unknown_change_is_assumed_to_reach_everything() {
        let scope = Scope::of_change("org.something_new", None, &json!({}));
        assert_eq!(scope, Scope::everything());
    }

    #[test]
    fn a_union_covers_both_and_a_rename_changes_nothing() {
        let mut scope = Scope::of_change("org.node_renamed", None, &json!({}));
        assert!(!scope.changes_access);
        let moved = Scope::of_change("org.node_moved", Some(Uuid::new_v4()), &json!({}));
        scope.union(&moved);
        assert!(scope.covers(&moved));
        assert!(!moved.covers(&Scope::everything()));
    }
}
