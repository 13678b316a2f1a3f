//! Operator tasks on service accounts, run from the CLI (and the demo
//! seed) through the application role with the operator context.

use diesel::prelude::*;
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use scoped_futures::ScopedFutureExt;
use secrecy::SecretString;
use serde_json::json;
use uuid::Uuid;

use super::ServiceError;
use super::names::{Permission, ServiceKey};
use crate::audit::{self, Actor, AuditEvent, Entity};
use crate::db::schema::auth::{
    service_permissions as sp, service_secrets as ss, service_sessions as sess, services as s,
};
use crate::db::{Db, RlsContext};
use crate::secrets::{self, SecretKind};
use crate::tokens::revocation::{self, SessionKind, still_accepted_after};

pub struct NewService {
    pub key: ServiceKey,
    pub label: String,
    /// `None`: the service may act in any tenant.
    pub tenant_id: Option<Uuid>,
    pub permissions: Vec<Permission>,
}

/// `(id, tenant)` of the service named `key`.
async fn find(
    conn: &mut AsyncPgConnection,
    key: &ServiceKey,
) -> Result<(Uuid, Option<Uuid>), ServiceError> {
    s::table
        .filter(s::svc_key.eq(key.as_str()))
        .select((s::svc_id, s::tenant_id))
        .first(conn)
        .await
        .optional()?
        .ok_or_else(|| ServiceError::UnknownService(key.to_string()))
}

fn event<'a>(
    tenant_id: Option<Uuid>,
    action: &'a str,
    entity_kind: &'a str,
    entity_id: Uuid,
    payload: serde_json::Value,
) -> AuditEvent<'a> {
    AuditEvent {
        tenant_id,
        actor: Actor::System,
        action,
        entity_kind,
        entity: Some(Entity::Id(entity_id)),
        request_id: None,
        payload,
    }
}

pub async fn create(db: &Db, new: &NewService) -> Result<Uuid, ServiceError> {
    db.write(&RlsContext::operator(), |conn| {
        async move {
            let id = Uuid::new_v4();
            let inserted = diesel::insert_into(s::table)
                .values((
                    s::svc_id.eq(id),
                    s::tenant_id.eq(new.tenant_id),
                    s::svc_key.eq(new.key.as_str()),
                    s::svc_label.eq(&new.label),
                ))
                .execute(conn)
                .await;
            match inserted {
                Err(DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, _)) => {
                    return Err(ServiceError::DuplicateKey(new.key.to_string()));
                }
                other => other?,
            };
            let rows: Vec<_> = new
                .permissions
                .iter()
                .map(|p| (sp::svc_id.eq(id), sp::perm_key.eq(p.as_str())))
                .collect();
            diesel::insert_into(sp::table).values(&rows).execute(conn).await?;
            let permissions: Vec<&str> = new.permissions.iter().map(Permission::as_str).collect();
            audit::record(
                conn,
                event(
                    new.tenant_id,
                    "service.created",
                    "service",
                    id,
                    json!({ "key": new.key.as_str(), "label": &new.label, "permissions": permissions }),
                ),
            )
            .await?;
            Ok(id)
        }
        .scope_boxed()
    })
    .await
}

/// Issues a new secret; with `revoke_others`, every other active secret of
/// the service is revoked in the same transaction.
pub async fn issue_secret(
    db: &Db,
    key: &ServiceKey,
    revoke_others: bool,
) -> Result<(Uuid, SecretString), ServiceError> {
    db.write(&RlsContext::operator(), |conn| {
        async move {
            let (service_id, tenant_id) = find(conn, key).await?;
            let revoked: Vec<Uuid> = if revoke_others {
                diesel::update(
                    ss::table
                        .filter(ss::svc_id.eq(service_id))
                        .filter(ss::revoked_utc.is_null()),
                )
                .set(ss::revoked_utc.eq(diesel::dsl::now))
                .returning(ss::secret_id)
                .get_results(conn)
                .await?
            } else {
                Vec::new()
            };
            let new = secrets::generate(SecretKind::ServiceSecret, Uuid::new_v4());
            diesel::insert_into(ss::table)
                .values((
                    ss::secret_id.eq(new.id),
                    ss::svc_id.eq(service_id),
                    ss::secret_hash_text.eq(&new.hash),
                ))
                .execute(conn)
                .await?;
            audit::record(
                conn,
                event(
                    tenant_id,
                    "service.secret_issued",
                    "service_secret",
                    new.id,
                    json!({ "service_id": service_id, "revoked_secret_ids": revoked }),
                ),
            )
            .await?;
            Ok((new.id, new.shown_once))
        }
        .scope_boxed()
    })
    .await
}

/// Revokes one secret at once: the next exchange with it is refused.
/// Tokens already issued with it live on until they expire or are revoked.
pub async fn revoke_secret(db: &Db, key: &ServiceKey, secret_id: Uuid) -> Result<(), ServiceError> {
    db.write(&RlsContext::operator(), |conn| {
        async move {
            let (service_id, tenant_id) = find(conn, key).await?;
            let updated = diesel::update(
                ss::table
                    .filter(ss::secret_id.eq(secret_id))
                    .filter(ss::svc_id.eq(service_id))
                    .filter(ss::revoked_utc.is_null()),
            )
            .set(ss::revoked_utc.eq(diesel::dsl::now))
            .execute(conn)
            .await?;
            if updated == 0 {
                return Err(ServiceError::UnknownSecret);
            }
            audit::record(
                conn,
                event(
                    tenant_id,
                    "service.secret_revoked",
                    "service_secret",
                    secret_id,
                    json!({ "service_id": service_id }),
                ),
            )
            .await?;
            Ok(())
        }
        .scope_boxed()
    })
    .await
}

/// Disables the service and revokes every token it holds: a disabled
/// service grants nothing.
pub async fn disable(
    db: &Db,
    key: &ServiceKey,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<usize, ServiceError> {
    db.write(&RlsContext::operator(), |conn| {
        async move {
            let (service_id, tenant_id) = find(conn, key).await?;
            diesel::update(s::table.find(service_id))
                .set((
                    s::svc_state_code.eq("disabled"),
                    s::updated_utc.eq(diesel::dsl::now),
                ))
                .execute(conn)
                .await?;
            let revoked = revoke_live_sessions(conn, &[service_id], now).await?;
            audit::record(
                conn,
                event(
                    tenant_id,
                    "service.disabled",
                    "service",
                    service_id,
                    json!({ "revoked_sessions": revoked }),
                ),
            )
            .await?;
            Ok(revoked)
        }
        .scope_boxed()
    })
    .await
}

/// Marks every unexpired, unrevoked session of the services revoked and
/// lists it for every replica. Returns how many.
pub(crate) async fn revoke_live_sessions(
    conn: &mut AsyncPgConnection,
    services: &[Uuid],
    now: chrono::DateTime<chrono::Utc>,
) -> Result<usize, ServiceError> {
    let sessions: Vec<(Uuid, chrono::DateTime<chrono::Utc>)> = diesel::update(
        sess::table
            .filter(sess::svc_id.eq_any(services))
            .filter(sess::revoked_utc.is_null())
            // Expired tokens are accepted for the leeway: revoke those too.
            .filter(sess::expiry_utc.gt(still_accepted_after(now))),
    )
    .set(sess::revoked_utc.eq(diesel::dsl::now))
    .returning((sess::svc_session_id, sess::expiry_utc))
    .get_results(conn)
    .await?;
    revocation::record(conn, SessionKind::Service, &sessions).await?;
    Ok(sessions.len())
}

/// Replaces the service's permissions with exactly `permissions`. Tokens
/// already issued keep the permissions they were issued with.
pub async fn set_permissions(
    db: &Db,
    key: &ServiceKey,
    permissions: &[Permission],
) -> Result<(), ServiceError> {
    db.write(&RlsContext::operator(), |conn| {
        async move {
            let (service_id, tenant_id) = find(conn, key).await?;
            let before: Vec<String> = diesel::delete(sp::table.filter(sp::svc_id.eq(service_id)))
                .returning(sp::perm_key)
                .get_results(conn)
                .await?;
            let rows: Vec<_> = permissions
                .iter()
                .map(|p| (sp::svc_id.eq(service_id), sp::perm_key.eq(p.as_str())))
                .collect();
            diesel::insert_into(sp::table)
                .values(&rows)
                .on_conflict_do_nothing()
                .execute(conn)
                .await?;
            let mut after: Vec<&str> = permissions.iter().map(Permission::as_str).collect();
            after.sort_unstable();
            after.dedup();
            audit::record(
                conn,
                event(
                    tenant_id,
                    "service.permissions_set",
                    "service",
                    service_id,
                    json!({ "before": before, "after": after }),
                ),
            )
            .await?;
            Ok(())
        }
        .scope_boxed()
    })
    .await
}

/// Revokes every live token of every service bound to `tenant` (a
/// suspended tenant's services act no more). Returns how many.
pub(crate) async fn revoke_tenant_services(
    conn: &mut AsyncPgConnection,
    tenant: Uuid,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<usize, ServiceError> {
    let services: Vec<Uuid> = s::table
        .filter(s::tenant_id.eq(tenant))
        .select(s::svc_id)
        .load(conn)
        .await?;
    revoke_live_sessions(conn, &services, now).await
}
