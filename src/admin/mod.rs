//! Administration: changes to the data every check reads, each guarded by
//! the caller's permission or capability and recorded in the audit trail in
//! the same transaction.

mod actor;
pub mod assignments;
pub mod audit_trail;
mod author;
mod cursor;
pub mod global;
pub mod grants;
mod guard;
pub mod idempotency;
pub mod invitations;
mod item;
pub mod org;
pub mod preview;
pub mod roles;
pub mod users;

pub use crate::names::{Label, NodeType, RoleKey};
pub use actor::Administrator;
pub use cursor::Cursor;
pub use guard::{AdminCapability, Placed};
pub use item::Item;

use crate::authz::AuthzError;
use crate::db::DbError;

#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// Absent, or in a tenant the caller may not see: the same answer, so a
    /// caller learns nothing about other tenants.
    #[error("{0}: not found")]
    NotFound(Item),
    /// A value that is not acceptable here, and why.
    #[error("{0}: {1}")]
    Invalid(Item, String),
    #[error("{0}: {1}")]
    AlreadyExists(Item, String),
    /// The caller is known but may not do this (to the thing named, when
    /// one is).
    #[error("{}", about(*.0, .1))]
    Forbidden(Option<Item>, String),
    /// The change would break an invariant (a cycle in the tree), or the
    /// thing is no longer in a state that allows it (a used invitation).
    #[error("{0}: {1}")]
    Conflict(Item, String),
    /// Too many attempts from this client; retry after the lock.
    #[error("too many failed attempts; retry in {} s", retry_after.as_secs().max(1))]
    TooManyAttempts { retry_after: std::time::Duration },
    /// An invite token that cannot be used (unknown, expired, revoked or
    /// already accepted): one answer for all, so a guesser learns nothing.
    #[error("{}: {}", Item::InviteToken, invitations::UNUSABLE)]
    UnusableInvitation,
    #[error(transparent)]
    Db(#[from] DbError),
    /// Password hashing failed, or its threads are all busy.
    #[error(transparent)]
    Hashing(crate::authn::PasswordError),
    /// A failure of ours, logged and answered opaquely.
    #[error("{0}")]
    Internal(String),
}

/// `item: reason`, or the reason alone.
fn about(item: Option<Item>, reason: &str) -> String {
    match item {
        Some(item) => format!("{item}: {reason}"),
        None => reason.to_owned(),
    }
}

impl From<crate::authn::AuthnError> for AdminError {
    fn from(error: crate::authn::AuthnError) -> Self {
        match error {
            crate::authn::AuthnError::Db(db) => Self::Db(db),
            other => Self::Internal(other.to_string()),
        }
    }
}

impl From<crate::service_accounts::ServiceError> for AdminError {
    fn from(error: crate::service_accounts::ServiceError) -> Self {
        match error {
            crate::service_accounts::ServiceError::Db(db) => Self::Db(db),
            other => Self::Internal(other.to_string()),
        }
    }
}

impl From<diesel::result::Error> for AdminError {
    fn from(error: diesel::result::Error) -> Self {
        Self::Db(DbError::from(error))
    }
}

impl From<AuthzError> for AdminError {
    fn from(error: AuthzError) -> Self {
        match error {
            AuthzError::Db(db) => Self::Db(db),
            other => Self::Forbidden(None, other.to_string()),
        }
    }
}
