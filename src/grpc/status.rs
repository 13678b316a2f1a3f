//! The one place where errors become `tonic::Status`.

use tonic::Status;

use crate::admin::AdminError;
use crate::authn::{AuthnError, PasswordError};
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
            AuthzError::BadPageToken => Status::invalid_argument(error.to_string()),
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
            AdminError::NotFound(_) => Status::not_found(error.to_string()),
            AdminError::Forbidden(message) => Status::permission_denied(message),
            AdminError::Conflict(message) => Status::failed_precondition(message),
            AdminError::Invalid(message) => Status::invalid_argument(message),
            AdminError::AlreadyExists(message) => Status::already_exists(message),
            AdminError::Unauthenticated(message) => Status::unauthenticated(message),
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
