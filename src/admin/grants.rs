//! Visibility grants: a user may see a subtree (to read or to analyse) for
//! a time window, without any capability there. Revoking one sets
//! `end_utc`; nothing is deleted.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use scoped_futures::ScopedFutureExt;
use uuid::Uuid;

use super::assignments::{ListFilter, missing_reference, window_start};
use super::idempotency::{Attempt, IdempotencyKey, retry_conflicts};
use super::{AdminCapability, AdminError, Administrator, Item, Placed};
use crate::db::Db;
use crate::db::schema::auth::visibility_grants;
use crate::names::{OrgNodeId, UserId};

#[derive(
    Clone, Debug, PartialEq, Eq, Queryable, Selectable, serde::Serialize, serde::Deserialize,
)]
#[diesel(table_name = visibility_grants)]
pub struct VisibilityGrant {
    #[diesel(column_name = grant_id)]
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub user_id: Uuid,
    pub org_node_id: Uuid,
    /// `read` or `analyze`.
    #[diesel(column_name = access_scope_code)]
    pub scope: String,
    pub start_utc: DateTime<Utc>,
    pub end_utc: Option<DateTime<Utc>>,
}

pub struct NewGrant {
    pub user_id: UserId,
    pub org_node_id: OrgNodeId,
    pub scope: &'static str,
    pub start_utc: Option<DateTime<Utc>>,
    pub end_utc: Option<DateTime<Utc>>,
}

pub async fn grant(
    db: &Db,
    admin: &Administrator,
    new: &NewGrant,
    key: Option<&IdempotencyKey>,
) -> Result<VisibilityGrant, AdminError> {
    retry_conflicts(key, || grant_once(db, admin, new, key)).await
}

/// One attempt of [`grant`].
async fn grant_once(
    db: &Db,
    admin: &Administrator,
    new: &NewGrant,
    key: Option<&IdempotencyKey>,
) -> Result<VisibilityGrant, AdminError> {
    let start = window_start(new.start_utc, new.end_utc, admin.now())?;
    let tenant = admin.tenant_id;
    let attempt = Attempt {
        operation: "grant_visibility",
        key,
        request: format!(
            "{}|{}|{}|{:?}|{:?}",
            new.user_id, new.org_node_id, new.scope, new.start_utc, new.end_utc
        ),
    };
    db.write(&admin.context(), |conn| {
        async move {
            let node = new.org_node_id;
            admin
                .require_in(conn, AdminCapability::GrantsWrite, node, Item::OrgNode)
                .await?;
            attempt
                .once(conn, &admin.ledger(), |conn| {
                    async move {
                        let created: VisibilityGrant =
                            diesel::insert_into(visibility_grants::table)
                                .values((
                                    visibility_grants::tenant_id.eq(tenant),
                                    visibility_grants::user_id.eq(new.user_id),
                                    visibility_grants::org_node_id.eq(new.org_node_id),
                                    visibility_grants::access_scope_code.eq(new.scope),
                                    visibility_grants::start_utc.eq(start),
                                    visibility_grants::end_utc.eq(new.end_utc),
                                ))
                                .returning(VisibilityGrant::as_returning())
                                .get_result(conn)
                                .await
                                .map_err(missing_reference)?;
                        let entity = ("visibility_grant", created.id);
                        admin
                            .record_change(conn, "visibility.granted", entity, None, &created)
                            .await?;
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

/// Ends the grant now; a grant already ended changes nothing.
pub async fn revoke(
    db: &Db,
    admin: &Administrator,
    grant: Uuid,
) -> Result<VisibilityGrant, AdminError> {
    db.write(&admin.context(), |conn| {
        async move {
            admin
                .require_where(conn, AdminCapability::GrantsWrite, Placed::Grant(grant))
                .await?;
            let before: VisibilityGrant = visibility_grants::table
                .find(grant)
                .select(VisibilityGrant::as_select())
                .for_update()
                .first(conn)
                .await
                .optional()?
                .ok_or(AdminError::NotFound(Item::Grant))?;
            let now = admin.now();
            if before.end_utc.is_some_and(|end| end <= now) {
                return Ok(before);
            }
            // A grant that has not started yet ends before it begins: it
            // is closed at its start instead (the table requires end > start).
            let end = if before.start_utc >= now {
                before
                    .start_utc
                    .checked_add_signed(chrono::Duration::microseconds(1))
                    .ok_or_else(|| {
                        AdminError::Invalid(Item::Grant, "starts too late to be revoked".into())
                    })?
            } else {
                now
            };
            let after: VisibilityGrant = diesel::update(visibility_grants::table.find(grant))
                .set(visibility_grants::end_utc.eq(Some(end)))
                .returning(VisibilityGrant::as_returning())
                .get_result(conn)
                .await?;
            let entity = ("visibility_grant", grant);
            admin
                .record_change(conn, "visibility.revoked", entity, Some(&before), &after)
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
) -> Result<Vec<VisibilityGrant>, AdminError> {
    admin
        .require_listing(db, AdminCapability::GrantsRead, &filter)
        .await?;
    db.read(&admin.context(), |conn| {
        async move {
            let query = visibility_grants::table
                .select(VisibilityGrant::as_select())
                .order((visibility_grants::start_utc, visibility_grants::grant_id))
                .into_boxed();
            let query = match filter {
                ListFilter::User(user) => query.filter(visibility_grants::user_id.eq(user)),
                ListFilter::Node(node) => query.filter(visibility_grants::org_node_id.eq(node)),
            };
            Ok(query.load(conn).await?)
        }
        .scope_boxed()
    })
    .await
}
