//! The one place where errors become `tonic::Status`.

use std::borrow::Cow;

use tonic::{Code, Status};

use super::error_details::detailed;

use crate::admin::{AdminError, Item, invitations};
use crate::authn::{AuthnError, IdTokenError, PasswordError};
use crate::authz::AuthzError;
use crate::db::DbError;
use crate::service_accounts::ServiceError;

/// `RESOURCE_EXHAUSTED` with a retry hint, in the message and in the
/// `retry-after` trailer (seconds).
fn exhausted(message: String, reason: &str, retry_after: std::time::Duration) -> Status {
    let mut status = detailed(
        Code::ResourceExhausted,
        message,
        reason,
        &[],
        Some(retry_after),
    );
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
                    Code::Unavailable,
                    "the database is unavailable; retry later",
                    "DATABASE_UNAVAILABLE",
                    &[],
                    None,
                )
            }
            DbError::Timeout => {
                tracing::warn!("a database statement timed out");
                detailed(
                    Code::DeadlineExceeded,
                    "the database did not answer in time",
                    "DATABASE_TIMEOUT",
                    &[],
                    None,
                )
            }
            DbError::Conflict => {
                tracing::warn!("a database transaction conflicted with another");
                detailed(
                    Code::Aborted,
                    "the call conflicted with a concurrent one and was rolled back; retry it",
                    "TRANSACTION_CONFLICT",
                    &[],
                    None,
                )
            }
            DbError::Query(cause) => {
                // The cause may quote SQL or data: log it, never return it.
                tracing::error!(%cause, "database error");
                detailed(Code::Internal, "internal error", "INTERNAL", &[], None)
            }
        }
    }
}

impl From<ServiceError> for Status {
    fn from(error: ServiceError) -> Self {
        match error {
            ServiceError::InvalidCredentials => detailed(
                Code::Unauthenticated,
                error.to_string(),
                "INVALID_CREDENTIALS",
                &[],
                None,
            ),
            ServiceError::PermissionNotGranted(_) => detailed(
                Code::PermissionDenied,
                error.to_string(),
                "PERMISSION_NOT_GRANTED",
                &[],
                None,
            ),
            ServiceError::UnknownSession
            | ServiceError::UnknownService(_)
            | ServiceError::UnknownSecret => {
                detailed(Code::NotFound, error.to_string(), "NOT_FOUND", &[], None)
            }
            ServiceError::DuplicateKey(_) => detailed(
                Code::AlreadyExists,
                error.to_string(),
                "ALREADY_EXISTS",
                &[],
                None,
            ),
            ServiceError::Token(cause) => {
                tracing::error!(%cause, "cannot sign a token");
                detailed(Code::Internal, "internal error", "INTERNAL", &[], None)
            }
            ServiceError::Db(cause) => cause.into(),
        }
    }
}

impl From<AuthzError> for Status {
    fn from(error: AuthzError) -> Self {
        match error {
            AuthzError::InvalidSubjectToken => detailed(
                Code::Unauthenticated,
                error.to_string(),
                "SUBJECT_TOKEN_INVALID",
                &[],
                None,
            ),
            AuthzError::RevocationUnknown => detailed(
                Code::Unavailable,
                "cannot confirm that the subject token is not revoked; retry shortly",
                "REVOCATION_UNKNOWN",
                &[],
                None,
            ),
            AuthzError::Forbidden(message) => {
                detailed(Code::PermissionDenied, message, "FORBIDDEN", &[], None)
            }
            AuthzError::TenantForbidden { .. } => detailed(
                Code::PermissionDenied,
                error.to_string(),
                "TENANT_FORBIDDEN",
                &[],
                None,
            ),
            AuthzError::BadPageToken => detailed(
                Code::InvalidArgument,
                "page_token: not a token of this listing",
                "BAD_PAGE_TOKEN",
                &[],
                None,
            ),
            AuthzError::UnknownCapability => detailed(
                Code::NotFound,
                "capability: no such capability",
                "UNKNOWN_CAPABILITY",
                &[],
                None,
            ),
            AuthzError::UnknownOrgNode => detailed(
                Code::NotFound,
                "org_node_id: no such node in the tenant",
                "UNKNOWN_ORG_NODE",
                &[],
                None,
            ),
            AuthzError::Unexpected(cause) => {
                tracing::error!(%cause, "unexpected authorization answer");
                detailed(Code::Internal, "internal error", "INTERNAL", &[], None)
            }
            AuthzError::Db(cause) => cause.into(),
        }
    }
}

impl From<AuthnError> for Status {
    fn from(error: AuthnError) -> Self {
        match error {
            AuthnError::InvalidCredentials => detailed(
                Code::Unauthenticated,
                error.to_string(),
                "INVALID_CREDENTIALS",
                &[],
                None,
            ),
            AuthnError::InvalidRefreshToken => detailed(
                Code::Unauthenticated,
                error.to_string(),
                "INVALID_REFRESH_TOKEN",
                &[],
                None,
            ),
            AuthnError::Locked { retry_after } => {
                exhausted(error.to_string(), "LOGIN_LOCKED", retry_after)
            }
            AuthnError::TooManyCodes { retry_after } => {
                exhausted(error.to_string(), "TOO_MANY_CODES", retry_after)
            }
            AuthnError::IdToken(IdTokenError::ProviderUnavailable) => detailed(
                Code::Unavailable,
                format!("oidc.id_token: {}", IdTokenError::ProviderUnavailable),
                "IDENTITY_PROVIDER_UNAVAILABLE",
                &[],
                None,
            ),
            AuthnError::IdToken(reason) => detailed(
                Code::Unauthenticated,
                format!("oidc.id_token: {reason}"),
                "ID_TOKEN_REFUSED",
                &[],
                None,
            ),
            AuthnError::Unlinked(reason) => detailed(
                Code::Unauthenticated,
                reason.to_string(),
                "IDENTITY_NOT_LINKED",
                &[],
                None,
            ),
            AuthnError::UnknownSession | AuthnError::UnknownLogin(_) => {
                detailed(Code::NotFound, error.to_string(), "NOT_FOUND", &[], None)
            }
            AuthnError::Forbidden(message) => {
                detailed(Code::PermissionDenied, message, "FORBIDDEN", &[], None)
            }
            AuthnError::LoginTaken(_) => detailed(
                Code::AlreadyExists,
                error.to_string(),
                "LOGIN_TAKEN",
                &[],
                None,
            ),
            AuthnError::Password(PasswordError::Busy) => detailed(
                Code::Unavailable,
                error.to_string(),
                "HASHING_BUSY",
                &[],
                None,
            ),
            AuthnError::Password(cause) => {
                tracing::error!(%cause, "password hashing failed");
                detailed(Code::Internal, "internal error", "INTERNAL", &[], None)
            }
            AuthnError::Token(cause) => {
                tracing::error!(%cause, "cannot sign a token");
                detailed(Code::Internal, "internal error", "INTERNAL", &[], None)
            }
            AuthnError::Db(cause) => cause.into(),
        }
    }
}

impl From<AdminError> for Status {
    fn from(error: AdminError) -> Self {
        match error {
            AdminError::NotFound(item) => detailed(
                Code::NotFound,
                format!("{}: not found", field(item)),
                "NOT_FOUND",
                &[],
                None,
            ),
            AdminError::Forbidden(None, reason) => {
                detailed(Code::PermissionDenied, reason, "FORBIDDEN", &[], None)
            }
            AdminError::Forbidden(Some(item), reason) => detailed(
                Code::PermissionDenied,
                about(item, &reason),
                "FORBIDDEN",
                &[],
                None,
            ),
            AdminError::Conflict(item, reason) => detailed(
                Code::FailedPrecondition,
                about(item, &reason),
                "CONFLICT",
                &[],
                None,
            ),
            AdminError::Invalid(item, reason) => detailed(
                Code::InvalidArgument,
                about(item, &reason),
                "INVALID_ARGUMENT",
                &[],
                None,
            ),
            AdminError::AlreadyExists(item, reason) => detailed(
                Code::AlreadyExists,
                about(item, &reason),
                "ALREADY_EXISTS",
                &[],
                None,
            ),
            AdminError::UnusableInvitation => detailed(
                Code::Unauthenticated,
                about(Item::InviteToken, invitations::UNUSABLE),
                "INVITATION_UNUSABLE",
                &[],
                None,
            ),
            AdminError::TooManyAttempts { retry_after } => {
                exhausted(error.to_string(), "TOO_MANY_ATTEMPTS", retry_after)
            }
            AdminError::Hashing(PasswordError::Busy) => detailed(
                Code::Unavailable,
                error.to_string(),
                "HASHING_BUSY",
                &[],
                None,
            ),
            AdminError::Hashing(cause) => {
                tracing::error!(%cause, "password hashing failed");
                detailed(Code::Internal, "internal error", "INTERNAL", &[], None)
            }
            AdminError::Internal(cause) => {
                tracing::error!(%cause, "administration failed");
                detailed(Code::Internal, "internal error", "INTERNAL", &[], None)
            }
            AdminError::Db(db) => db.into(),
        }
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
