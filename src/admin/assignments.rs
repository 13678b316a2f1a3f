//! Assignments: a role held by a user at an org node for a time window.
//! Ending one sets `end_utc`; nothing is ever deleted, so the audit trail
//! and the table agree on who could do what, when.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use scoped_futures::ScopedFutureExt;
use uuid::Uuid;

use super::author::Author;
use super::idempotency::{Attempt, IdempotencyKey, retry_conflicts};
use super::{AdminCapability, AdminError, Administrator, Item, Placed};
use crate::db::Db;
use crate::db::schema::auth::org_assignments;
use crate::names::{OrgNodeId, UserId};

#[derive(
    Clone, Debug, PartialEq, Eq, Queryable, Selectable, serde::Serialize, serde::Deserialize,
)]
#[diesel(table_name = org_assignments)]
pub struct Assignment {
    #[diesel(column_name = assignment_id)]
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub user_id: Uuid,
    pub role_id: Uuid,
    pub org_node_id: Uuid,
    pub start_utc: DateTime<Utc>,
    pub end_utc: Option<DateTime<Utc>>,
}

pub struct NewAssignment {
    pub user_id: UserId,
    pub role_id: Uuid,
    pub org_node_id: OrgNodeId,
    pub start_utc: Option<DateTime<Utc>>,
    pub end_utc: Option<DateTime<Utc>>,
}

/// Which assignments or grants to list: a user's, or those at a node.
pub enum ListFilter {
    User(UserId),
    Node(OrgNodeId),
}

/// Assigns a role; with an idempotency key, a repeat of the same request
/// returns the first answer.
pub async fn assign(
    db: &Db,
    admin: &Administrator,
    new: &NewAssignment,
    key: Option<&IdempotencyKey>,
) -> Result<Assignment, AdminError> {
    retry_conflicts(key, || assign_once(db, admin, new, key)).await
}

/// One attempt of [`assign`].
async fn assign_once(
    db: &Db,
    admin: &Administrator,
    new: &NewAssignment,
    key: Option<&IdempotencyKey>,
) -> Result<Assignment, AdminError> {
    let start = window_start(new.start_utc, new.end_utc, admin.now())?;
    let tenant = admin.tenant_id;
    let attempt = Attempt {
        operation: "assign_role",
        key,
        request: format!(
            "{}|{}|{}|{:?}|{:?}",
            new.user_id, new.role_id, new.org_node_id, new.start_utc, new.end_utc
        ),
    };
    db.write(&admin.context(), |conn| {
        async move {
            // In the write's own transaction: nothing changes in between.
            let (role, node) = (new.role_id, new.org_node_id);
            admin
                .require_to_hand_out(conn, AdminCapability::AssignmentsWrite, role, node)
                .await?;
            attempt
                .once(conn, &admin.ledger(), |conn| {
                    async move {
                        let created = insert(conn, &admin.author(), tenant, new, start).await?;
                        Ok(created)
                    }
                    .scope_boxed()
                })
                .await
        }
        .scope_boxed()
    })
    .await
}

/// Inserts an assignment starting at `start` and records it as
/// `assignment.created` by `author`, in the caller's transaction: the one
/// insert behind `AssignRole`, the CLI and accepted invitations.
pub(super) async fn insert(
    conn: &mut AsyncPgConnection,
    author: &Author<'_>,
    tenant: Uuid,
    new: &NewAssignment,
    start: DateTime<Utc>,
) -> Result<Assignment, AdminError> {
    let created: Assignment = diesel::insert_into(org_assignments::table)
        .values((
            org_assignments::tenant_id.eq(tenant),
            org_assignments::user_id.eq(new.user_id),
            org_assignments::role_id.eq(new.role_id),
            org_assignments::org_node_id.eq(new.org_node_id),
            org_assignments::start_utc.eq(start),
            org_assignments::end_utc.eq(new.end_utc),
        ))
        .returning(Assignment::as_returning())
        .get_result(conn)
        .await
        .map_err(missing_reference)?;
    let entity = ("assignment", created.id);
    author
        .record_change(conn, "assignment.created", entity, None, &created)
        .await?;
    Ok(created)
}

/// Ends the assignment at `at` (now by default). Ending it again, or at a
/// time after it already ends, changes nothing.
pub async fn end(
    db: &Db,
    admin: &Administrator,
    assignment: Uuid,
    at: Option<DateTime<Utc>>,
) -> Result<Assignment, AdminError> {
    let at = at.unwrap_or(admin.now());
    db.write(&admin.context(), |conn| {
        async move {
            let placed = Placed::Assignment(assignment);
            admin
                .require_where(conn, AdminCapability::AssignmentsWrite, placed)
                .await?;
            let before: Assignment = org_assignments::table
                .find(assignment)
                .select(Assignment::as_select())
                .for_update()
                .first(conn)
                .await
                .optional()?
                .ok_or(AdminError::NotFound(Item::Assignment))?;
            if before.end_utc.is_some_and(|end| end <= at) {
                return Ok(before);
            }
            if at <= before.start_utc {
                return Err(AdminError::Invalid(
                    Item::AssignmentEnd,
                    "must be after the assignment's start".into(),
                ));
            }
            let after: Assignment = diesel::update(org_assignments::table.find(assignment))
                .set(org_assignments::end_utc.eq(Some(at)))
                .returning(Assignment::as_returning())
                .get_result(conn)
                .await?;
            admin
                .record_change(
                    conn,
                    "assignment.ended",
                    ("assignment", after.id),
                    Some(&before),
                    &after,
                )
                .await?;
            Ok(after)
        }
        .scope_boxed()
    })
    .await
}

pub async fn list(
    db: &Db,
    admin: &Administrator,
    filter: ListFilter,
) -> Result<Vec<Assignment>, AdminError> {
    admin
        .require_listing(db, AdminCapability::AssignmentsRead, &filter)
        .await?;
    db.read(&admin.context(), |conn| {
        async move {
            let query = org_assignments::table
                .select(Assignment::as_select())
                .order((org_assignments::start_utc, org_assignments::assignment_id))
                .into_boxed();
            let query = match filter {
                ListFilter::User(user) => query.filter(org_assignments::user_id.eq(user)),
                ListFilter::Node(node) => query.filter(org_assignments::org_node_id.eq(node)),
            };
            Ok(query.load(conn).await?)
        }
        .scope_boxed()
    })
    .await
}

/// The start of a time window (now when not given), after checking the
/// end, if any, comes after it.
pub(super) fn window_start(
    start: Option<DateTime<Utc>>,
    end: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Result<DateTime<Utc>, AdminError> {
    let start = start.unwrap_or(now);
    if end.is_some_and(|end| end <= start) {
        return Err(AdminError::Invalid(
            Item::AssignmentEnd,
            "must be after its start".into(),
        ));
    }
    Ok(start)
}

/// A user, role or node that is absent or another tenant's: the foreign
/// key names which, and the caller hears "not found" for that one.
pub(super) fn missing_reference(error: DieselError) -> AdminError {
    if let DieselError::DatabaseError(DatabaseErrorKind::ForeignKeyViolation, info) = &error {
        let constraint = info.constraint_name().unwrap_or_default();
        let missing = if constraint.contains("user") {
            Item::User
        } else if constraint.contains("role") {
            Item::Role
        } else {
            Item::OrgNode
        };
        return AdminError::NotFound(missing);
    }
    AdminError::from(error)
}
