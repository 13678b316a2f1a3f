//! What only global administrators change: tenants and the capability
//! catalogue. A global administrator is a service bound to no tenant (the
//! rule table has checked its permission); anyone else is refused.

use diesel::prelude::*;
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use scoped_futures::ScopedFutureExt;
use uuid::Uuid;

use super::author::Author;
use super::idempotency::{Attempt, IdempotencyKey, Ledger};
use super::{AdminError, Label};
use crate::audit::Actor;
use crate::authn::sessions::{self, SessionsOf};
use crate::authz::CapabilityKey;
use crate::db::schema::auth::{capabilities, global_idempotency_keys, tenants};
use crate::db::{Db, RlsContext};
use crate::tokens::Principal;

/// A service bound to no tenant, or operator tooling, acting on global rows.
#[derive(Clone, Debug)]
pub struct GlobalAdministrator {
    /// `None`: operator tooling (the CLI), audited as `system`.
    service_id: Option<Uuid>,
    request_id: Option<String>,
    /// When the change is asked for, read at the edge.
    now: chrono::DateTime<chrono::Utc>,
}

impl GlobalAdministrator {
    pub fn from_principal(
        principal: &Principal,
        request_id: Option<String>,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<Self, AdminError> {
        match principal {
            Principal::Service(service) if service.tenant_id.is_none() => Ok(Self {
                service_id: Some(service.service_id),
                request_id,
                now,
            }),
            _ => Err(AdminError::Forbidden(
                "only a service bound to no tenant may change tenants or the catalogue".into(),
            )),
        }
    }

    /// Operator tooling on the machine (the CLI). Never built from a
    /// network request.
    pub fn operator(now: chrono::DateTime<chrono::Utc>) -> Self {
        Self {
            service_id: None,
            request_id: None,
            now,
        }
    }

    /// The caller as idempotency keys record it (`service:<id>`).
    pub(super) fn caller_ref(&self) -> String {
        match self.service_id {
            Some(service) => format!("service:{service}"),
            None => "system".to_owned(),
        }
    }

    fn context(&self) -> RlsContext {
        let ctx = match self.service_id {
            Some(service) => RlsContext::global_administrator(service),
            None => RlsContext::operator(),
        };
        ctx.with_request_id(self.request_id.as_deref())
    }

    /// Who the audit row of a change names, in `tenant` (none for the
    /// catalogue).
    fn author(&self, tenant: Option<Uuid>) -> Author<'_> {
        Author {
            tenant_id: tenant,
            actor: self.service_id.map_or(Actor::System, Actor::Service),
            request_id: self.request_id.as_deref(),
        }
    }
}

/// A tenant's short name in URLs and logs: lowercase letters, digits and
/// `-`, at most 63 characters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TenantSlug(String);

impl TenantSlug {
    pub fn parse(raw: &str) -> Result<Self, &'static str> {
        let mut chars = raw.chars();
        let valid = chars
            .next()
            .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
            && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            && raw.len() <= 63;
        if valid {
            Ok(Self(raw.to_owned()))
        } else {
            Err("must be lowercase letters, digits and -, at most 63")
        }
    }
}

#[derive(
    Clone, Debug, PartialEq, Eq, Queryable, Selectable, serde::Serialize, serde::Deserialize,
)]
#[diesel(table_name = tenants)]
pub struct Tenant {
    pub id: Uuid,
    pub slug: String,
    pub name: String,
    pub status: String,
}

#[derive(
    Clone, Debug, PartialEq, Eq, Queryable, Selectable, serde::Serialize, serde::Deserialize,
)]
#[diesel(table_name = capabilities)]
pub struct Capability {
    pub id: Uuid,
    pub key: String,
    pub description: String,
}

fn exists(error: DieselError, field: &str, what: &str) -> AdminError {
    match error {
        DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, _) => {
            AdminError::AlreadyExists(format!("{field}: {what} already exists"))
        }
        other => other.into(),
    }
}

/// Creates a tenant; with an idempotency key, a repeat of the same request
/// returns the first answer (without one, a repeat finds the slug taken).
pub async fn create_tenant(
    db: &Db,
    admin: &GlobalAdministrator,
    slug: &TenantSlug,
    name: &Label,
    key: Option<&IdempotencyKey>,
) -> Result<Tenant, AdminError> {
    let attempt = Attempt {
        operation: "create_tenant",
        key,
        request: format!("{}|{}", slug.0, name.as_str()),
    };
    db.write(&admin.context(), |conn| {
        async move {
            if let Some(first) = attempt.replay(conn, admin).await? {
                return Ok(first);
            }
            let tenant: Tenant = diesel::insert_into(tenants::table)
                .values((tenants::slug.eq(&slug.0), tenants::name.eq(name.as_str())))
                .returning(Tenant::as_returning())
                .get_result(conn)
                .await
                .map_err(|e| exists(e, "slug", "a tenant with this slug"))?;
            let entity = ("tenant", tenant.id);
            admin
                .author(Some(tenant.id))
                .record_change(conn, "tenant.created", entity, None, &tenant)
                .await?;
            attempt.store(conn, admin, &tenant).await?;
            Ok(tenant)
        }
        .scope_boxed()
    })
    .await
}

/// What a tenant change sets.
pub enum TenantChange<'a> {
    Name(&'a Label),
    Active(bool),
}

/// Renames, suspends or reactivates; setting what is set records nothing.
///
/// Suspending revokes every session of the tenant's users and every token
/// of its services (listed for every replica), in the same transaction;
/// reactivating brings none back.
pub async fn change_tenant(
    db: &Db,
    admin: &GlobalAdministrator,
    tenant: Uuid,
    change: TenantChange<'_>,
    access_lifetime: std::time::Duration,
) -> Result<Tenant, AdminError> {
    // In the tenant's context, so its users' sessions are in reach.
    db.write(&admin.context().with_tenant(tenant), |conn| {
        async move {
            let before: Tenant = tenants::table
                .find(tenant)
                .select(Tenant::as_select())
                .for_update()
                .first(conn)
                .await
                .optional()?
                .ok_or(AdminError::NotFound("tenant_id"))?;
            let target = diesel::update(tenants::table.find(tenant));
            let now = tenants::updated_at.eq(diesel::dsl::now);
            let (action, after): (&str, Tenant) = match change {
                TenantChange::Name(name) if before.name != name.as_str() => (
                    "tenant.renamed",
                    target
                        .set((tenants::name.eq(name.as_str()), now))
                        .returning(Tenant::as_returning())
                        .get_result(conn)
                        .await?,
                ),
                TenantChange::Active(active) if (before.status == "active") != active => (
                    if active {
                        "tenant.reactivated"
                    } else {
                        "tenant.suspended"
                    },
                    target
                        .set((
                            tenants::status.eq(if active { "active" } else { "suspended" }),
                            now,
                        ))
                        .returning(Tenant::as_returning())
                        .get_result(conn)
                        .await?,
                ),
                _ => return Ok(before),
            };
            admin
                .author(Some(tenant))
                .record_change(conn, action, ("tenant", tenant), Some(&before), &after)
                .await?;
            if action == "tenant.suspended" {
                let now = admin.now;
                let users = sessions::revoke_all(
                    conn,
                    access_lifetime,
                    SessionsOf::Tenant,
                    "tenant_suspended",
                    now,
                )
                .await?;
                let services =
                    crate::service_accounts::revoke_tenant_services(conn, tenant, now).await?;
                admin
                    .author(Some(tenant))
                    .record_change(
                        conn,
                        "auth.sessions_revoked",
                        ("tenant", tenant),
                        None::<&serde_json::Value>,
                        &serde_json::json!({
                            "reason": "tenant_suspended",
                            "sessions": users,
                            "service_sessions": services,
                        }),
                    )
                    .await?;
            }
            Ok(after)
        }
        .scope_boxed()
    })
    .await
}

/// Adds a capability to the catalogue; with an idempotency key, a repeat
/// of the same request returns the first answer.
pub async fn create_capability(
    db: &Db,
    admin: &GlobalAdministrator,
    key: &CapabilityKey,
    description: &str,
    idempotency_key: Option<&IdempotencyKey>,
) -> Result<Capability, AdminError> {
    if description.chars().count() > 1000 {
        return Err(AdminError::Invalid(
            "description: must be at most 1000 characters".into(),
        ));
    }
    let attempt = Attempt {
        operation: "create_capability",
        key: idempotency_key,
        request: format!("{}|{description}", key.as_str()),
    };
    db.write(&admin.context(), |conn| {
        async move {
            if let Some(first) = attempt.replay(conn, admin).await? {
                return Ok(first);
            }
            let capability: Capability = diesel::insert_into(capabilities::table)
                .values((
                    capabilities::key.eq(key.as_str()),
                    capabilities::description.eq(description),
                ))
                .returning(Capability::as_returning())
                .get_result(conn)
                .await
                .map_err(|e| exists(e, "key", "this capability"))?;
            let entity = ("capability", capability.id);
            admin
                .author(None)
                .record_change(conn, "capability.created", entity, None, &capability)
                .await?;
            attempt.store(conn, admin, &capability).await?;
            Ok(capability)
        }
        .scope_boxed()
    })
    .await
}

/// The whole catalogue, by key (any caller with an identity may read it).
pub async fn list_capabilities(db: &Db, ctx: &RlsContext) -> Result<Vec<Capability>, AdminError> {
    db.read(ctx, |conn| {
        async move {
            Ok(capabilities::table
                .order(capabilities::key)
                .select(Capability::as_select())
                .load(conn)
                .await?)
        }
        .scope_boxed()
    })
    .await
}

/// A global administrator's keys live in the global table, which only a
/// global administrator's transaction sees.
impl Ledger for GlobalAdministrator {
    async fn claim(
        &self,
        conn: &mut AsyncPgConnection,
        operation: &'static str,
        key: &str,
        request_hash: &[u8],
    ) -> QueryResult<bool> {
        let claimed = diesel::insert_into(global_idempotency_keys::table)
            .values((
                global_idempotency_keys::caller.eq(self.caller_ref()),
                global_idempotency_keys::operation.eq(operation),
                global_idempotency_keys::key.eq(key),
                global_idempotency_keys::request_hash.eq(request_hash),
            ))
            .on_conflict_do_nothing()
            .execute(conn)
            .await?;
        Ok(claimed == 1)
    }

    async fn recorded(
        &self,
        conn: &mut AsyncPgConnection,
        operation: &'static str,
        key: &str,
    ) -> QueryResult<(Vec<u8>, Option<serde_json::Value>)> {
        global_idempotency_keys::table
            .find((self.caller_ref(), operation, key))
            .select((
                global_idempotency_keys::request_hash,
                global_idempotency_keys::response,
            ))
            .first(conn)
            .await
    }

    async fn answer(
        &self,
        conn: &mut AsyncPgConnection,
        operation: &'static str,
        key: &str,
        response: serde_json::Value,
    ) -> QueryResult<()> {
        diesel::update(global_idempotency_keys::table.find((self.caller_ref(), operation, key)))
            .set(global_idempotency_keys::response.eq(response))
            .execute(conn)
            .await?;
        Ok(())
    }
}
