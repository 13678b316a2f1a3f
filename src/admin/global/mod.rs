//! What only global administrators change: tenants and the capability
//! catalogue. A global administrator is a service bound to no tenant (the
//! rule table has checked its permission); anyone else is refused.

mod catalogue;
mod tenants;

pub use crate::names::TenantSlug;
pub use catalogue::{Capability, create_capability, list_capabilities};
pub use tenants::{Tenant, TenantChange, change_tenant, create_tenant};

use diesel::prelude::*;
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use super::AdminError;
use super::author::Author;
use super::idempotency::Ledger;
use crate::admin::Subject;
use crate::audit::Actor;
use crate::db::RlsContext;
use crate::db::schema::auth::global_idempotency_keys;
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
                None,
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

fn exists(error: DieselError, subject: Subject, what: &str) -> AdminError {
    match error {
        DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, _) => {
            AdminError::AlreadyExists(subject, format!("{what} already exists"))
        }
        other => other.into(),
    }
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
