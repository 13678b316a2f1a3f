//! The one place where errors become `tonic::Status`.

use std::borrow::Cow;

use tonic::Status;

use super::error_details::detailed;
use super::reason::Reason;

use crate::admin::{AdminError, Item, invitations};
use crate::authn::{AuthnError, IdTokenError, PasswordError};
use crate::authz::AuthzError;
use crate::db::DbError;
use crate::service_accounts::ServiceError;
use crate::watch::WatchError;

/// `RESOURCE_EXHAUSTED` with a retry hint, in the message and in the
/// `retry-after` trailer (seconds).
fn exhausted(message: String, reason: Reason, retry_after: std::time::Duration) -> Status {
    let mut status = detailed(message, reason, &[], Some(retry_after));
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
                detailed(
                    "the database is unavailable; retry later",
                    Reason::DatabaseUnavailable,
                    &[],
                    None,
                )
            }
            DbError::Timeout => {
                tracing::warn!("a database statement timed out");
                detailed(
                    "the database did not answer in time",
                    Reason::DatabaseTimeout,
                    &[],
                    None,
                )
            }
            DbError::Conflict => {
                tracing::warn!("a database transaction conflicted with another");
                detailed(
                    "the call conflicted with a concurrent one and was rolled back; retry it",
                    Reason::TransactionConflict,
                    &[],
                    None,
                )
            }
            DbError::Query(cause) => {
                // The cause may quote SQL or data: log it, never return it.
                tracing::error!(%cause, "database error");
                detailed("internal error", Reason::Internal, &[], None)
            }
        }
    }
}

impl From<ServiceError> for Status {
    fn from(error: ServiceError) -> Self {
        match error {
            ServiceError::InvalidCredentials => {
                detailed(error.to_string(), Reason::InvalidCredentials, &[], None)
            }
            ServiceError::PermissionNotGranted(_) => {
                detailed(error.to_string(), Reason::PermissionNotGranted, &[], None)
            }
            ServiceError::UnknownSession
            | ServiceError::UnknownService(_)
            | ServiceError::UnknownSecret => {
                detailed(error.to_string(), Reason::NotFound, &[], None)
            }
            ServiceError::DuplicateKey(_) => {
                detailed(error.to_string(), Reason::AlreadyExists, &[], None)
            }
            ServiceError::Token(cause) => {
                tracing::error!(%cause, "cannot sign a token");
                detailed("internal error", Reason::Internal, &[], None)
            }
            ServiceError::Db(cause) => cause.into(),
        }
    }
}

impl From<AuthzError> for Status {
    fn from(error: AuthzError) -> Self {
        match error {
            AuthzError::InvalidSubjectToken => {
                detailed(error.to_string(), Reason::SubjectTokenInvalid, &[], None)
            }
            AuthzError::RevocationUnknown => detailed(
                "cannot confirm that the subject token is not revoked; retry shortly",
                Reason::RevocationUnknown,
                &[],
                None,
            ),
            AuthzError::Forbidden(message) => detailed(message, Reason::Forbidden, &[], None),
            AuthzError::TenantForbidden { .. } => {
                detailed(error.to_string(), Reason::TenantForbidden, &[], None)
            }
            AuthzError::BadPageToken => detailed(
                "page_token: not a token of this listing",
                Reason::BadPageToken,
                &[],
                None,
            ),
            AuthzError::UnknownCapability => detailed(
                "capability: no such capability",
                Reason::UnknownCapability,
                &[],
                None,
            ),
            AuthzError::UnknownOrgNode => detailed(
                "org_node_id: no such node in the tenant",
                Reason::UnknownOrgNode,
                &[],
                None,
            ),
            AuthzError::Unexpected(cause) => {
                tracing::error!(%cause, "unexpected authorization answer");
                detailed("internal error", Reason::Internal, &[], None)
            }
            AuthzError::Db(cause) => cause.into(),
        }
    }
}

impl From<AuthnError> for Status {
    fn from(error: AuthnError) -> Self {
        match error {
            AuthnError::InvalidCredentials => {
                detailed(error.to_string(), Reason::InvalidCredentials, &[], None)
            }
            AuthnError::InvalidRefreshToken => {
                detailed(error.to_string(), Reason::InvalidRefreshToken, &[], None)
            }
            AuthnError::Locked { retry_after } => {
                exhausted(error.to_string(), Reason::LoginLocked, retry_after)
            }
            AuthnError::TooManyCodes { retry_after } => {
                exhausted(error.to_string(), Reason::TooManyCodes, retry_after)
            }
            AuthnError::IdToken(IdTokenError::ProviderUnavailable) => detailed(
                format!("oidc.id_token: {}", IdTokenError::ProviderUnavailable),
                Reason::IdentityProviderUnavailable,
                &[],
                None,
            ),
            AuthnError::IdToken(reason) => detailed(
                format!("oidc.id_token: {reason}"),
                Reason::IdTokenRefused,
                &[],
                None,
            ),
            AuthnError::Unlinked(reason) => {
                detailed(reason.to_string(), Reason::IdentityNotLinked, &[], None)
            }
            AuthnError::UnknownSession | AuthnError::UnknownLogin(_) => {
                detailed(error.to_string(), Reason::NotFound, &[], None)
            }
            AuthnError::Forbidden(message) => detailed(message, Reason::Forbidden, &[], None),
            AuthnError::LoginTaken(_) => detailed(error.to_string(), Reason::LoginTaken, &[], None),
            AuthnError::Password(PasswordError::Busy) => {
                detailed(error.to_string(), Reason::HashingBusy, &[], None)
            }
            AuthnError::Password(cause) => {
                tracing::error!(%cause, "password hashing failed");
                detailed("internal error", Reason::Internal, &[], None)
            }
            AuthnError::Token(cause) => {
                tracing::error!(%cause, "cannot sign a token");
                detailed("internal error", Reason::Internal, &[], None)
            }
            AuthnError::Db(cause) => cause.into(),
        }
    }
}

impl From<AdminError> for Status {
    fn from(error: AdminError) -> Self {
        match error {
            AdminError::NotFound(item) => detailed(
                format!("{}: not found", field(item)),
                Reason::NotFound,
                &[],
                None,
            ),
            AdminError::Forbidden(None, reason) => detailed(reason, Reason::Forbidden, &[], None),
            AdminError::Forbidden(Some(item), reason) => {
                detailed(about(item, &reason), Reason::Forbidden, &[], None)
            }
            AdminError::Conflict(item, reason) => {
                detailed(about(item, &reason), Reason::Conflict, &[], None)
            }
            AdminError::Invalid(item, reason) => {
                detailed(about(item, &reason), Reason::InvalidArgument, &[], None)
            }
            AdminError::AlreadyExists(item, reason) => {
                detailed(about(item, &reason), Reason::AlreadyExists, &[], None)
            }
            AdminError::UnusableInvitation => detailed(
                about(Item::InviteToken, invitations::UNUSABLE),
                Reason::InvitationUnusable,
                &[],
                None,
            ),
            AdminError::TooManyAttempts { retry_after } => {
                exhausted(error.to_string(), Reason::TooManyAttempts, retry_after)
            }
            AdminError::Hashing(PasswordError::Busy) => {
                detailed(error.to_string(), Reason::HashingBusy, &[], None)
            }
            AdminError::Hashing(cause) => {
                tracing::error!(%cause, "password hashing failed");
                detailed("internal error", Reason::Internal, &[], None)
            }
            AdminError::Internal(cause) => {
                tracing::error!(%cause, "administration failed");
                detailed("internal error", Reason::Internal, &[], None)
            }
            AdminError::Db(db) => db.into(),
        }
    }
}

/// The trailer that repeats where to resume a `Watch` stream that ended.
pub const WATCH_RESUME_TOKEN: &str = "x-watch-resume-token";

impl From<WatchError> for Status {
    fn from(error: WatchError) -> Self {
        let resume = error.resume_token().map(str::to_owned);
        let message = error.to_string();
        let mut status = match error {
            WatchError::Db(db) => return db.into(),
            WatchError::BadToken | WatchError::BadKind(..) => {
                detailed(message, Reason::InvalidArgument, &[], None)
            }
            WatchError::TenantNotFound => detailed(message, Reason::NotFound, &[], None),
            WatchError::OutOfRange { oldest, .. } => detailed(
                message,
                Reason::WatchOutOfRange,
                &[("oldest_token", &oldest)],
                None,
            ),
            WatchError::FellBehind { resume, .. } => detailed(
                message,
                Reason::WatchConsumerBehind,
                &[("resume_token", &resume)],
                None,
            ),
            WatchError::ShuttingDown { resume } => detailed(
                message,
                Reason::ServerShuttingDown,
                &[("resume_token", &resume)],
                None,
            ),
        };
        if let Some(Ok(token)) = resume.as_deref().map(str::parse) {
            status.metadata_mut().insert(WATCH_RESUME_TOKEN, token);
        }
        status
    }
}

/// `field: reason`, naming the request field that carried `item`.
fn about(item: Item, reason: &str) -> String {
    format!("{}: {reason}", field(item))
}

/// The Administration request field that carries `item`.
fn field(item: Item) -> Cow<'static, str> {
    Cow::Borrowed(match item {
        Item::Tenant => "tenant_id",
        Item::TenantSlug => "slug",
        Item::User => "user_id",
        Item::OrgNode => "org_node_id",
        Item::Parent => "parent_org_node_id",
        Item::NewParent => "new_parent_org_node_id",
        Item::Role => "role_id",
        Item::RoleKey | Item::Capability => "key",
        Item::RoleCapability(index) => return Cow::Owned(format!("capabilities[{index}]")),
        Item::CapabilityDescription => "description",
        Item::Assignment => "assignment_id",
        Item::AssignmentEnd => "end_utc",
        Item::Grant => "grant_id",
        Item::Invitation => "invitation_id",
        Item::InviteToken => "invite_token",
        Item::InvitationExpiry => "expires_at",
        Item::Email => "email",
        Item::Phone => "phone",
        Item::Password => "password",
        Item::IdempotencyKey => "idempotency_key",
        Item::PageToken => "page_token",
        Item::Endpoint => "endpoint_id",
        Item::EndpointService => "service_key",
        Item::EndpointMethod => "method",
        Item::RoutePattern => "route_pattern",
        Item::EndpointCapability => "capability",
        Item::NodeSource => "node_source.name",
    })
}
