//! What only global administrators change: tenants, the capability
//! catalogue and the endpoint catalogue. A global administrator is a service bound to no tenant (the
//! rule table has checked its permission); anyone else is refused.

mod catalogue;
pub(crate) mod endpoints;
mod tenants;

pub use crate::authz::endpoint_policy::EndpointPolicy;
pub use crate::names::TenantSlug;
pub use catalogue::{Capability, create_capability, list_capabilities};
pub use endpoints::{
    EndpointRule, create_endpoint_policy, delete_endpoint_policy, list_endpoint_policies,
    update_endpoint_policy,
};
pub use tenants::{Tenant, TenantChange, change_tenant, create_tenant};

use diesel::result::{DatabaseErrorKind, Error as DieselError};
use uuid::Uuid;

use super::AdminError;
use super::author::Author;
use super::idempotency::Ledger;
use crate::admin::Item;
use crate::audit::Actor;
use crate::db::RlsContext;
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

    /// The service acting; `None` for operator tooling.
    pub fn service_id(&self) -> Option<Uuid> {
        self.service_id
    }

    pub fn request_id(&self) -> Option<&str> {
        self.request_id.as_deref()
    }

    /// Where this caller's idempotency keys are kept (as `service:<id>`).
    pub(super) fn ledger(&self) -> Ledger {
        Ledger::global(match self.service_id {
            Some(service) => format!("service:{service}"),
            None => "system".to_owned(),
        })
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

fn exists(error: DieselError, item: Item, what: &str) -> AdminError {
    match error {
        DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, _) => {
            AdminError::AlreadyExists(item, format!("{what} already exists"))
        }
        other => other.into(),
    }
}
