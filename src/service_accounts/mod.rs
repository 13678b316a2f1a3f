//! Service accounts: managing them (CLI), exchanging a secret for a token,
//! revoking tokens.

mod exchange;
mod manage;
/// The names of service accounts, in [`crate::names`].
pub mod names {
    pub use crate::names::{NameError, Permission, ServiceKey};
}
mod revoke;

pub use exchange::{ExchangeRequest, Exchanged, exchange};
pub(crate) use manage::revoke_tenant_services;
pub use manage::{NewService, create, disable, issue_secret, revoke_secret, set_permissions};
pub use revoke::{revoke_by_token, revoke_session};

use crate::db::DbError;
use crate::tokens::TokenError;

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// The one answer to every failed exchange, whatever failed.
    #[error("invalid service credentials")]
    InvalidCredentials,
    #[error("permission {0} is not granted to this service")]
    PermissionNotGranted(String),
    #[error("no service account has the key {0}")]
    UnknownService(String),
    #[error("a service account with the key {0} exists already")]
    DuplicateKey(String),
    #[error("no such secret for this service account")]
    UnknownSecret,
    #[error("no such service session")]
    UnknownSession,
    #[error("cannot sign a token: {0}")]
    Token(#[from] TokenError),
    #[error(transparent)]
    Db(#[from] DbError),
}

impl From<diesel::result::Error> for ServiceError {
    fn from(error: diesel::result::Error) -> Self {
        Self::Db(DbError::from(error))
    }
}
