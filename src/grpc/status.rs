//! The one place where errors become `tonic::Status`.

use tonic::Status;

use crate::authz::AuthzError;
use crate::db::DbError;
use crate::service_accounts::ServiceError;

/// The answer of an RPC whose issue has not landed yet.
pub fn not_implemented(rpc: &str) -> Status {
    Status::unimplemented(format!("{rpc} is not implemented yet"))
}

impl From<DbError> for Status {
    fn from(error: DbError) -> Self {
        match error {
            DbError::Unavailable(cause) => {
                tracing::warn!(%cause, "database unavailable");
                Status::unavailable("the database is unavailable; retry later")
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
