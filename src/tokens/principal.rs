//! Who is calling: established from a verified token.

use uuid::Uuid;

use super::{Claims, TokenError, TokenType};
use crate::db::RlsContext;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServicePrincipal {
    pub service_id: Uuid,
    /// `None`: the service may act in any tenant.
    pub tenant_id: Option<Uuid>,
    pub session_id: Uuid,
    pub permissions: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserPrincipal {
    pub user_id: Uuid,
    pub tenant_id: Uuid,
    pub session_id: Uuid,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Principal {
    Service(ServicePrincipal),
    User(UserPrincipal),
}

impl Principal {
    pub(crate) fn from_claims(claims: &Claims) -> Result<Self, TokenError> {
        let uuid = |value: &str| Uuid::parse_str(value).map_err(|_| TokenError::Malformed);
        let tenant = claims.tid.as_deref().map(uuid).transpose()?;
        Ok(match claims.typ {
            TokenType::Service => Self::Service(ServicePrincipal {
                service_id: uuid(&claims.sub)?,
                tenant_id: tenant,
                session_id: uuid(&claims.sid)?,
                permissions: claims.perms.clone(),
            }),
            TokenType::User => Self::User(UserPrincipal {
                user_id: uuid(&claims.sub)?,
                tenant_id: tenant.ok_or(TokenError::Malformed)?,
                session_id: uuid(&claims.sid)?,
            }),
        })
    }

    pub fn session_id(&self) -> Uuid {
        match self {
            Self::Service(s) => s.session_id,
            Self::User(u) => u.session_id,
        }
    }

    pub fn tenant_id(&self) -> Option<Uuid> {
        match self {
            Self::Service(s) => s.tenant_id,
            Self::User(u) => Some(u.tenant_id),
        }
    }

    /// Whether the caller may act on data of `tenant`: a tenant-bound
    /// caller only in its own tenant, a global service anywhere.
    pub fn may_act_in(&self, tenant: Uuid) -> bool {
        self.tenant_id().is_none_or(|own| own == tenant)
    }

    /// Whether this caller may learn about a token of `holder`
    /// (introspection): a tenant-bound caller only of its own tenant's, a
    /// global one only of tenant-less holders.
    pub fn may_inspect(&self, holder: &Principal) -> bool {
        match holder.tenant_id() {
            Some(tenant) => self.may_act_in(tenant),
            None => self.tenant_id().is_none(),
        }
    }

    pub fn has_permission(&self, permission: &str) -> bool {
        match self {
            Self::Service(s) => s.permissions.iter().any(|p| p == permission),
            Self::User(_) => false,
        }
    }

    /// The RLS context of a request made by this caller, before it names a
    /// tenant: its identity, and its tenant if it is bound to one.
    pub fn rls_context(&self) -> RlsContext {
        let base = match self {
            Self::Service(s) => RlsContext::anonymous().with_service(s.service_id),
            Self::User(u) => RlsContext::anonymous().with_user(u.user_id),
        };
        match self.tenant_id() {
            Some(tenant) => base.with_tenant(tenant),
            None => base,
        }
    }

    /// For audit rows: `(actor_kind, actor_id)`.
    pub fn actor(&self) -> (&'static str, Uuid) {
        match self {
            Self::Service(s) => ("service", s.service_id),
            Self::User(u) => ("user", u.user_id),
        }
    }
}
