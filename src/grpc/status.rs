//! The one place where errors become `tonic::Status`.

use std::borrow::Cow;

use tonic::Status;

use crate::admin::{AdminError, Subject, invitations};
use crate::authn::{AuthnError, IdTokenError, PasswordError};
use crate::authz::AuthzError;
use crate::db::DbError;
use crate::service_accounts::ServiceError;

/// `RESOURCE_EXHAUSTED` with a retry hint, in the message and in the
/// `retry-after` trailer (seconds).
fn exhausted(message: String, retry_after: std::time::Duration) -> Status {
    let mut status = Status::resource_exhausted(message);
    if let Ok(value) = retry_after.as_secs().max(1).to_string().parse() {
        status.metadata_mut().insert("retry-after", value);
    }
    status
}

impl From<DbError> for Status {
    fn from(error: DbError) -> Self {
        match error {
            DbError::Unavailable(cause) => {
                tracing::warn!(%cause, "database unavailable");
                Status::unavailable("the database is unavailable; retry later")
            }
            DbError::Timeout => {
                tracing::warn!("a database statement timed out");
                Status::deadline_exceeded("the database did not answer in time")
            }
            DbError::Query(cause) => {
                // The cause may quote SQL or data: log it, never return it.
                tracing::error!(%cause, "database error");
                Status::internal("internal error")
            }
        }
    }
}

impl From<ServiceError> for Status {
    fn from(error: ServiceError) -> Self {
        match error {
            ServiceError::InvalidCredentials => Status::unauthenticated(error.to_string()),
            ServiceError::PermissionNotGranted(_) => Status::permission_denied(error.to_string()),
            ServiceError::UnknownSession
            | ServiceError::UnknownService(_)
            | ServiceError::UnknownSecret => Status::not_found(error.to_string()),
            ServiceError::DuplicateKey(_) => Status::already_exists(error.to_string()),
            ServiceError::Token(cause) => {
                tracing::error!(%cause, "cannot sign a token");
                Status::internal("internal error")
            }
            ServiceError::Db(cause) => cause.into(),
        }
    }
}

impl From<AuthzError> for Status {
    fn from(error: AuthzError) -> Self {
        match error {
            AuthzError::InvalidSubjectToken => Status::unauthenticated(error.to_string()),
            AuthzError::RevocationUnknown => Status::unavailable(
                "cannot confirm that the subject token is not revoked; retry shortly",
            ),
            AuthzError::Forbidden(message) => Status::permission_denied(message),
            AuthzError::BadPageToken => {
                Status::invalid_argument("page_token: not a token of this listing")
            }
            AuthzError::UnknownCapability => Status::not_found("capability: no such capability"),
            AuthzError::UnknownOrgNode => {
                Status::not_found("org_node_id: no such node in the tenant")
            }
            AuthzError::Unexpected(cause) => {
                tracing::error!(%cause, "unexpected authorization answer");
                Status::internal("internal error")
            }
            AuthzError::Db(cause) => cause.into(),
        }
    }
}

impl From<AuthnError> for Status {
    fn from(error: AuthnError) -> Self {
        match error {
            AuthnError::InvalidCredentials | AuthnError::InvalidRefreshToken => {
                Status::unauthenticated(error.to_string())
            }
            AuthnError::Locked { retry_after } | AuthnError::TooManyCodes { retry_after } => {
                exhausted(error.to_string(), retry_after)
            }
            AuthnError::IdToken(IdTokenError::ProviderUnavailable) => Status::unavailable(format!(
                "oidc.id_token: {}",
                IdTokenError::ProviderUnavailable
            )),
            AuthnError::IdToken(reason) => {
                Status::unauthenticated(format!("oidc.id_token: {reason}"))
            }
            AuthnError::Unlinked(reason) => Status::unauthenticated(reason.to_string()),
            AuthnError::UnknownSession | AuthnError::UnknownLogin(_) => {
                Status::not_found(error.to_string())
            }
            AuthnError::Forbidden(message) => Status::permission_denied(message),
            AuthnError::LoginTaken(_) => Status::already_exists(error.to_string()),
            AuthnError::Password(PasswordError::Busy) => Status::unavailable(error.to_string()),
            AuthnError::Password(cause) => {
                tracing::error!(%cause, "password hashing failed");
                Status::internal("internal error")
            }
            AuthnError::Token(cause) => {
                tracing::error!(%cause, "cannot sign a token");
                Status::internal("internal error")
            }
            AuthnError::Db(cause) => cause.into(),
        }
    }
}

impl From<AdminError> for Status {
    fn from(error: AdminError) -> Self {
        match error {
            AdminError::NotFound(subject) => {
                Status::not_found(format!("{}: not found", field(subject)))
            }
            AdminError::Forbidden(None, reason) => Status::permission_denied(reason),
            AdminError::Forbidden(Some(subject), reason) => {
                Status::permission_denied(about(subject, &reason))
            }
            AdminError::Conflict(subject, reason) => {
                Status::failed_precondition(about(subject, &reason))
            }
            AdminError::Invalid(subject, reason) => {
                Status::invalid_argument(about(subject, &reason))
            }
            AdminError::AlreadyExists(subject, reason) => {
                Status::already_exists(about(subject, &reason))
            }
            AdminError::UnusableInvitation => {
                Status::unauthenticated(about(Subject::InviteToken, invitations::UNUSABLE))
            }
            AdminError::TooManyAttempts { retry_after } => {
                exhausted(error.to_string(), retry_after)
            }
            AdminError::Hashing(PasswordError::Busy) => Status::unavailable(error.to_string()),
            AdminError::Hashing(cause) => {
                tracing::error!(%cause, "password hashing failed");
                Status::internal("internal error")
            }
            AdminError::Internal(cause) => {
                tracing::error!(%cause, "administration failed");
                Status::internal("internal error")
            }
            AdminError::Db(db) => db.into(),
        }
    }
}

/// `field: reason`, naming the request field that carried `subject`.
fn about(subject: Subject, reason: &str) -> String {
    format!("{}: {reason}", field(subject))
}

/// The Administration request field that carries `subject`.
fn field(subject: Subject) -> Cow<'static, str> {
    Cow::Borrowed(match subject {
        Subject::Tenant => "tenant_id",
        Subject::TenantSlug => "slug",
        Subject::User => "user_id",
        Subject::OrgNode => "org_node_id",
        Subject::Parent => "parent_org_node_id",
        Subject::NewParent => "new_parent_org_node_id",
        Subject::Role => "role_id",
        Subject::RoleKey | Subject::Capability => "key",
        Subject::RoleCapability(index) => return Cow::Owned(format!("capabilities[{index}]")),
        Subject::CapabilityDescription => "description",
        Subject::Assignment => "assignment_id",
        Subject::AssignmentEnd => "end_utc",
        Subject::Grant => "grant_id",
        Subject::Invitation => "invitation_id",
        Subject::InviteToken => "invite_token",
        Subject::InvitationExpiry => "expires_at",
        Subject::Email => "email",
        Subject::Phone => "phone",
        Subject::Password => "password",
        Subject::IdempotencyKey => "idempotency_key",
        Subject::PageToken => "page_token",
        Subject::Endpoint => "endpoint_id",
        Subject::EndpointService => "service_key",
        Subject::EndpointMethod => "method",
        Subject::RoutePattern => "route_pattern",
        Subject::EndpointCapability => "capability",
        Subject::NodeSource => "node_source.name",
    })
}
