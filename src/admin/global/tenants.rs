//! Tenants: create, rename, suspend (which ends every session of its users
//! and every token of its services), reactivate.

use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use scoped_futures::ScopedFutureExt;
use uuid::Uuid;

use super::{GlobalAdministrator, exists};
use crate::admin::Item;
use crate::admin::idempotency::{Attempt, IdempotencyKey, retry_conflicts};
use crate::admin::{AdminError, Label};
use crate::authn::sessions::{self, SessionsOf};
use crate::db::Db;
use crate::db::schema::auth::tenants;
use crate::names::TenantId;
use crate::names::TenantSlug;

#[derive(
    Clone, Debug, PartialEq, Eq, Queryable, Selectable, serde::Serialize, serde::Deserialize,
)]
#[diesel(table_name = tenants)]
pub struct Tenant {
    #[diesel(column_name = tenant_id)]
    pub id: Uuid,
    #[diesel(column_name = tenant_slug)]
    pub slug: String,
    #[diesel(column_name = tenant_label)]
    pub name: String,
    #[diesel(column_name = tenant_state_code)]
    pub status: String,
    /// A first federated login may link to the user with its verified email.
    /// (Answers stored for idempotency before this existed read as `false`.)
    #[diesel(column_name = federated_email_link_flag)]
    #[serde(default)]
    pub federated_email_linking: bool,
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
    retry_conflicts(key, || create_tenant_once(db, admin, slug, name, key)).await
}

/// One attempt of [`create_tenant`].
async fn create_tenant_once(
    db: &Db,
    admin: &GlobalAdministrator,
    slug: &TenantSlug,
    name: &Label,
    key: Option<&IdempotencyKey>,
) -> Result<Tenant, AdminError> {
    let attempt = Attempt {
        operation: "create_tenant",
        key,
        request: format!("{}|{}", slug.as_str(), name.as_str()),
    };
    db.write(&admin.context(), |conn| {
        async move {
            attempt
                .once(conn, &admin.ledger(), |conn| {
                    async move {
                        let tenant: Tenant = diesel::insert_into(tenants::table)
                            .values((
                                tenants::tenant_slug.eq(slug.as_str()),
                                tenants::tenant_label.eq(name.as_str()),
                            ))
                            .returning(Tenant::as_returning())
                            .get_result(conn)
                            .await
                            .map_err(|e| exists(e, Item::TenantSlug, "a tenant with this slug"))?;
                        let entity = ("tenant", tenant.id);
                        admin
                            .author(Some(tenant.id))
                            .record_change(conn, "tenant.created", entity, None, &tenant)
                            .await?;
                        Ok(tenant)
                    }
                    .scope_boxed()
                })
                .await
        }
        .scope_boxed()
    })
    .await
}

/// What a tenant change sets.
pub enum TenantChange<'a> {
    Name(&'a Label),
    Active(bool),
    FederatedEmailLinking(bool),
}

/// Renames, suspends, reactivates, or allows or stops federated logins
/// linking by email; setting what is set records nothing.
///
/// Suspending revokes every session of the tenant's users and every token
/// of its services (listed for every replica), in the same transaction;
/// reactivating brings none back.
pub async fn change_tenant(
    db: &Db,
    admin: &GlobalAdministrator,
    tenant: TenantId,
    change: TenantChange<'_>,
    access_lifetime: std::time::Duration,
) -> Result<Tenant, AdminError> {
    let tenant = tenant.get();
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
                .ok_or(AdminError::NotFound(Item::Tenant))?;
            let target = diesel::update(tenants::table.find(tenant));
            let now = tenants::updated_utc.eq(diesel::dsl::now);
            let (action, after): (&str, Tenant) = match change {
                TenantChange::Name(name) if before.name != name.as_str() => (
                    "tenant.renamed",
                    target
                        .set((tenants::tenant_label.eq(name.as_str()), now))
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
                            tenants::tenant_state_code.eq(if active {
                                "active"
                            } else {
                                "suspended"
                            }),
                            now,
                        ))
                        .returning(Tenant::as_returning())
                        .get_result(conn)
                        .await?,
                ),
                TenantChange::FederatedEmailLinking(allowed)
                    if before.federated_email_linking != allowed =>
                {
                    (
                        if allowed {
                            "tenant.federated_email_linking_allowed"
                        } else {
                            "tenant.federated_email_linking_stopped"
                        },
                        target
                            .set((tenants::federated_email_link_flag.eq(allowed), now))
                            .returning(Tenant::as_returning())
                            .get_result(conn)
                            .await?,
                    )
                }
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
