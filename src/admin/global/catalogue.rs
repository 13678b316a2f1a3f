//! The capability catalogue: every capability a role may grant.

use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use scoped_futures::ScopedFutureExt;
use uuid::Uuid;

use super::{GlobalAdministrator, exists};
use crate::admin::AdminError;
use crate::admin::Item;
use crate::admin::idempotency::{Attempt, IdempotencyKey, retry_conflicts};
use crate::authz::CapabilityKey;
use crate::db::schema::auth::capabilities;
use crate::db::{Db, RlsContext};

#[derive(
    Clone, Debug, PartialEq, Eq, Queryable, Selectable, serde::Serialize, serde::Deserialize,
)]
#[diesel(table_name = capabilities)]
pub struct Capability {
    #[diesel(column_name = cap_id)]
    pub id: Uuid,
    #[diesel(column_name = cap_key)]
    pub key: String,
    #[diesel(column_name = cap_description)]
    pub description: String,
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
    retry_conflicts(idempotency_key, || {
        create_capability_once(db, admin, key, description, idempotency_key)
    })
    .await
}

/// One attempt of [`create_capability`].
async fn create_capability_once(
    db: &Db,
    admin: &GlobalAdministrator,
    key: &CapabilityKey,
    description: &str,
    idempotency_key: Option<&IdempotencyKey>,
) -> Result<Capability, AdminError> {
    if description.chars().count() > 1000 {
        return Err(AdminError::Invalid(
            Item::CapabilityDescription,
            "must be at most 1000 characters".into(),
        ));
    }
    let attempt = Attempt {
        operation: "create_capability",
        key: idempotency_key,
        request: format!("{}|{description}", key.as_str()),
    };
    db.write(&admin.context(), |conn| {
        async move {
            attempt
                .once(conn, &admin.ledger(), |conn| {
                    async move {
                        let capability: Capability = diesel::insert_into(capabilities::table)
                            .values((
                                capabilities::cap_key.eq(key.as_str()),
                                capabilities::cap_description.eq(description),
                            ))
                            .returning(Capability::as_returning())
                            .get_result(conn)
                            .await
                            .map_err(|e| exists(e, Item::Capability, "this capability"))?;
                        let entity = ("capability", capability.id);
                        admin
                            .author(None)
                            .record_change(conn, "capability.created", entity, None, &capability)
                            .await?;
                        Ok(capability)
                    }
                    .scope_boxed()
                })
                .await
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
                .order(capabilities::cap_key)
                .select(Capability::as_select())
                .load(conn)
                .await?)
        }
        .scope_boxed()
    })
    .await
}
