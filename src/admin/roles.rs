//! Roles: a tenant's named sets of capabilities from the global catalogue.
//! Tenant-wide, so only services manage them (the rule table refuses users).

use std::collections::BTreeSet;

use diesel::prelude::*;
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use scoped_futures::ScopedFutureExt;
use uuid::Uuid;

use super::idempotency::{Attempt, IdempotencyKey, retry_conflicts};
use super::{AdminError, Administrator, Item, Label, RoleKey};
use crate::authz::CapabilityKey;
use crate::db::Db;
use crate::db::schema::auth::{capabilities, role_capabilities, roles};

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Role {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub key: String,
    pub label: String,
    /// Sorted capability keys.
    pub capabilities: Vec<String>,
}

/// Creates a role; with an idempotency key, a repeat of the same request
/// returns the first answer.
pub async fn create(
    db: &Db,
    admin: &Administrator,
    key: &RoleKey,
    label: &Label,
    granted: &[CapabilityKey],
    idempotency_key: Option<&IdempotencyKey>,
) -> Result<Role, AdminError> {
    retry_conflicts(idempotency_key, || {
        create_once(db, admin, key, label, granted, idempotency_key)
    })
    .await
}

/// One attempt of [`create`].
async fn create_once(
    db: &Db,
    admin: &Administrator,
    key: &RoleKey,
    label: &Label,
    granted: &[CapabilityKey],
    idempotency_key: Option<&IdempotencyKey>,
) -> Result<Role, AdminError> {
    let tenant = admin.tenant_id;
    let attempt = Attempt {
        operation: "create_role",
        key: idempotency_key,
        request: format!("{}|{}|{granted:?}", key.as_str(), label.as_str()),
    };
    db.write(&admin.context(), |conn| {
        async move {
            attempt
                .once(conn, &admin.ledger(), |conn| {
                    async move {
                        let id: Uuid = diesel::insert_into(roles::table)
                            .values((
                                roles::tenant_id.eq(tenant),
                                roles::role_key.eq(key.as_str()),
                                roles::role_label.eq(label.as_str()),
                            ))
                            .returning(roles::role_id)
                            .get_result(conn)
                            .await
                            .map_err(|e| match e {
                                DieselError::DatabaseError(
                                    DatabaseErrorKind::UniqueViolation,
                                    _,
                                ) => AdminError::AlreadyExists(
                                    Item::RoleKey,
                                    format!(
                                        "a role {} already exists in this tenant",
                                        key.as_str()
                                    ),
                                ),
                                other => other.into(),
                            })?;
                        replace_capabilities(conn, tenant, id, granted).await?;
                        let role = load(conn, id).await?;
                        admin
                            .record_change(conn, "role.created", ("role", role.id), None, &role)
                            .await?;
                        Ok(role)
                    }
                    .scope_boxed()
                })
                .await
        }
        .scope_boxed()
    })
    .await
}

/// Makes the role's capabilities exactly `granted`; the same set again
/// changes nothing and records nothing.
pub async fn set_capabilities(
    db: &Db,
    admin: &Administrator,
    role: Uuid,
    granted: &[CapabilityKey],
) -> Result<Role, AdminError> {
    let tenant = admin.tenant_id;
    db.write(&admin.context(), |conn| {
        async move {
            let before = lock(conn, role).await?;
            let wanted: BTreeSet<&str> = granted.iter().map(CapabilityKey::as_str).collect();
            let had: BTreeSet<&str> = before.capabilities.iter().map(String::as_str).collect();
            if wanted == had {
                return Ok(before);
            }
            replace_capabilities(conn, tenant, role, granted).await?;
            let after = load(conn, role).await?;
            admin
                .record_change(
                    conn,
                    "role.capabilities_set",
                    ("role", role),
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

/// Renames the role: its label; the key stays, since checks and scripts
/// name roles by it. The same label again changes nothing.
pub async fn rename(
    db: &Db,
    admin: &Administrator,
    role: Uuid,
    label: &Label,
) -> Result<Role, AdminError> {
    db.write(&admin.context(), |conn| {
        async move {
            let before = lock(conn, role).await?;
            if before.label == label.as_str() {
                return Ok(before);
            }
            diesel::update(roles::table.find(role))
                .set((
                    roles::role_label.eq(label.as_str()),
                    roles::updated_utc.eq(diesel::dsl::now),
                ))
                .execute(conn)
                .await?;
            let after = load(conn, role).await?;
            admin
                .record_change(conn, "role.renamed", ("role", role), Some(&before), &after)
                .await?;
            Ok(after)
        }
        .scope_boxed()
    })
    .await
}

pub async fn list(db: &Db, admin: &Administrator) -> Result<Vec<Role>, AdminError> {
    db.read(&admin.context(), |conn| {
        async move {
            let rows: Vec<(Uuid, Uuid, String, String)> = roles::table
                .order(roles::role_key)
                .select((
                    roles::role_id,
                    roles::tenant_id,
                    roles::role_key,
                    roles::role_label,
                ))
                .load(conn)
                .await?;
            let grants: Vec<(Uuid, String)> = role_capabilities::table
                .inner_join(capabilities::table)
                .select((role_capabilities::role_id, capabilities::cap_key))
                .order(capabilities::cap_key)
                .load(conn)
                .await?;
            Ok(rows
                .into_iter()
                .map(|(id, tenant_id, key, label)| Role {
                    capabilities: grants
                        .iter()
                        .filter(|(role, _)| *role == id)
                        .map(|(_, key)| key.clone())
                        .collect(),
                    id,
                    tenant_id,
                    key,
                    label,
                })
                .collect())
        }
        .scope_boxed()
    })
    .await
}

/// The role, locked until the transaction ends, so concurrent changes of
/// it apply one after the other.
async fn lock(conn: &mut AsyncPgConnection, id: Uuid) -> Result<Role, AdminError> {
    roles::table
        .find(id)
        .select(roles::role_id)
        .for_update()
        .first::<Uuid>(conn)
        .await
        .optional()?
        .ok_or(AdminError::NotFound(Item::Role))?;
    load(conn, id).await
}

async fn load(conn: &mut AsyncPgConnection, id: Uuid) -> Result<Role, AdminError> {
    let (tenant_id, key, label): (Uuid, String, String) = roles::table
        .find(id)
        .select((roles::tenant_id, roles::role_key, roles::role_label))
        .first(conn)
        .await
        .optional()?
        .ok_or(AdminError::NotFound(Item::Role))?;
    let capabilities: Vec<String> = role_capabilities::table
        .inner_join(capabilities::table)
        .filter(role_capabilities::role_id.eq(id))
        .select(capabilities::cap_key)
        .order(capabilities::cap_key)
        .load(conn)
        .await?;
    Ok(Role {
        id,
        tenant_id,
        key,
        label,
        capabilities,
    })
}

/// Deletes and inserts the link rows; a key missing from the catalogue is
/// named by its position in the request.
async fn replace_capabilities(
    conn: &mut AsyncPgConnection,
    tenant: Uuid,
    role: Uuid,
    granted: &[CapabilityKey],
) -> Result<(), AdminError> {
    let keys: Vec<&str> = granted.iter().map(CapabilityKey::as_str).collect();
    let found: Vec<(Uuid, String)> = capabilities::table
        .filter(capabilities::cap_key.eq_any(&keys))
        .select((capabilities::cap_id, capabilities::cap_key))
        .load(conn)
        .await?;
    if let Some(index) = keys
        .iter()
        .position(|key| !found.iter().any(|(_, k)| k == key))
    {
        return Err(AdminError::Invalid(
            Item::RoleCapability(index),
            format!("no capability {} in the catalogue", keys[index]),
        ));
    }
    diesel::delete(role_capabilities::table.filter(role_capabilities::role_id.eq(role)))
        .execute(conn)
        .await?;
    let rows: Vec<_> = found
        .iter()
        .map(|(capability, _)| {
            (
                role_capabilities::tenant_id.eq(tenant),
                role_capabilities::role_id.eq(role),
                role_capabilities::cap_id.eq(*capability),
            )
        })
        .collect();
    diesel::insert_into(role_capabilities::table)
        .values(rows)
        .on_conflict_do_nothing()
        .execute(conn)
        .await?;
    Ok(())
}
