//! Who is changing things: a caller with a verified token, or operator
//! tooling; the transaction context and the audit author of their changes.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::author::Author;
use super::idempotency::Ledger;
use super::{AdminError, Item};
use crate::audit::Actor;
use crate::db::RlsContext;
use crate::names::TenantId;
use crate::tokens::Principal;

/// Someone acting in one tenant. The transport's rule table has already
/// checked a service's permission; users are checked here, node by node.
#[derive(Clone, Debug)]
pub struct Administrator {
    acting: Acting,
    pub tenant_id: Uuid,
    request_id: Option<String>,
    /// When the change is asked for: read once at the edge, so the domain
    /// never reads the clock (and tests choose the time).
    now: DateTime<Utc>,
}

#[derive(Clone, Debug)]
enum Acting {
    /// A network caller with a verified token.
    Caller(Principal),
    /// Operator tooling on the machine (the CLI): trusted, audited as
    /// `system`, still fenced to the tenant by RLS.
    Operator,
}

impl Administrator {
    /// `Err(NotFound)` when the caller may not act in `tenant_id` at all:
    /// the answer for a node of another tenant is the answer for no node.
    pub fn in_tenant(
        principal: Principal,
        tenant_id: TenantId,
        request_id: Option<String>,
        now: DateTime<Utc>,
    ) -> Result<Self, AdminError> {
        let tenant_id = tenant_id.get();
        if !principal.may_act_in(tenant_id) {
            return Err(AdminError::NotFound(Item::Tenant));
        }
        Ok(Self {
            acting: Acting::Caller(principal),
            tenant_id,
            request_id,
            now,
        })
    }
    /// Operator tooling (the CLI) in `tenant_id`. Never built from a
    /// network request.
    pub fn operator(tenant_id: TenantId, now: DateTime<Utc>) -> Self {
        Self {
            acting: Acting::Operator,
            tenant_id: tenant_id.get(),
            request_id: None,
            now,
        }
    }
    /// When the change is asked for.
    pub fn now(&self) -> DateTime<Utc> {
        self.now
    }
    pub fn actor(&self) -> Actor {
        match &self.acting {
            Acting::Caller(Principal::Service(service)) => Actor::Service(service.service_id),
            Acting::Caller(Principal::User(user)) => Actor::User(user.user_id),
            Acting::Operator => Actor::System,
        }
    }
    /// Where this caller's idempotency keys are kept: in the tenant, as
    /// `service:<id>`, `user:<id>` or `system`.
    pub(super) fn ledger(&self) -> Ledger {
        Ledger::tenant(
            self.tenant_id,
            match &self.acting {
                Acting::Caller(Principal::Service(service)) => {
                    format!("service:{}", service.service_id)
                }
                Acting::Caller(Principal::User(user)) => format!("user:{}", user.user_id),
                Acting::Operator => "system".to_owned(),
            },
        )
    }
    /// The user acting, if a user is.
    pub(super) fn user(&self) -> Option<&crate::tokens::UserPrincipal> {
        match &self.acting {
            Acting::Caller(Principal::User(user)) => Some(user),
            _ => None,
        }
    }
    /// The acting user's id, if a user acts.
    pub(super) fn user_id(&self) -> Option<Uuid> {
        self.user().map(|user| user.user_id)
    }
    pub fn request_id(&self) -> Option<&str> {
        self.request_id.as_deref()
    }
    /// The transaction context of the change: the tenant, and the caller.
    pub fn context(&self) -> RlsContext {
        let ctx = RlsContext::tenant(self.tenant_id);
        let ctx = match &self.acting {
            Acting::Caller(Principal::Service(service)) => ctx.with_service(service.service_id),
            Acting::Caller(Principal::User(user)) => ctx.with_user(user.user_id),
            Acting::Operator => ctx,
        };
        ctx.with_request_id(self.request_id())
    }
    /// Writes the audit row of a change to one entity, with its value
    /// before (none for a creation) and after, in the caller's transaction.
    pub(super) async fn record_change<T: serde::Serialize>(
        &self,
        conn: &mut diesel_async::AsyncPgConnection,
        action: &str,
        entity: (&str, Uuid),
        before: Option<&T>,
        after: &T,
    ) -> Result<(), AdminError> {
        self.author()
            .record_change(conn, action, entity, before, after)
            .await
    }
    /// Whom the audit rows of this caller's changes name.
    pub(super) fn author(&self) -> Author<'_> {
        Author {
            tenant_id: Some(self.tenant_id),
            actor: self.actor(),
            request_id: self.request_id(),
        }
    }
}
