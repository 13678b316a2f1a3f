//! Whose permissions a call is about, and whether the caller may ask.

use chrono::{DateTime, Utc};

use super::AuthzError;
use crate::db::RlsContext;
use crate::names::{TenantId, UserId};
use crate::tokens::{Principal, TokenError, Tokens};

/// A user, in their tenant.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Subject {
    pub tenant_id: TenantId,
    pub user_id: UserId,
}

impl Subject {
    /// The transaction context of a call about this subject.
    pub fn rls_context(&self, request_id: Option<&str>) -> RlsContext {
        let ctx = RlsContext::tenant(self.tenant_id.get()).with_user(self.user_id.get());
        ctx.with_request_id(request_id)
    }
}

/// The subject as the request names it.
pub enum SubjectRef<'a> {
    AccessToken(&'a str),
    User(Subject),
}

/// Whether `caller` may ask about `tenant`, which the request names in
/// `field`: a tenant-bound caller only about its own, a global service
/// about any. The one rule for every edge (gRPC, AuthZEN).
pub fn may_ask_about_tenant(
    caller: &Principal,
    tenant: TenantId,
    field: &'static str,
) -> Result<(), AuthzError> {
    if caller.may_act_in(tenant.get()) {
        Ok(())
    } else {
        Err(AuthzError::TenantForbidden { field })
    }
}

/// Turns the request's subject into a user and checks, before any SQL, that
/// the caller may ask about them: a user only about themselves, a
/// tenant-bound service only within its tenant.
pub fn resolve_subject(
    tokens: &Tokens,
    caller: &Principal,
    subject: SubjectRef<'_>,
    now: DateTime<Utc>,
) -> Result<Subject, AuthzError> {
    let subject = match subject {
        SubjectRef::User(subject) => subject,
        SubjectRef::AccessToken(token) => match tokens.verify(token, now) {
            Ok(verified) => match verified.principal {
                Principal::User(user) => Subject {
                    tenant_id: user.tenant_id.into(),
                    user_id: user.user_id.into(),
                },
                Principal::Service(_) => return Err(AuthzError::InvalidSubjectToken),
            },
            Err(TokenError::RevocationUnknown) => return Err(AuthzError::RevocationUnknown),
            Err(_) => return Err(AuthzError::InvalidSubjectToken),
        },
    };
    match caller {
        Principal::User(user)
            if subject.user_id != user.user_id || subject.tenant_id != user.tenant_id =>
        {
            Err(AuthzError::Forbidden(
                "a user token may ask about its own user only".into(),
            ))
        }
        Principal::Service(_) => {
            may_ask_about_tenant(caller, subject.tenant_id, "subject.user.tenant_id")
                .map(|()| subject)
        }
        _ => Ok(subject),
    }
}
