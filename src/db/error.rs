use diesel::result::{DatabaseErrorKind, Error as DieselError};
use tokio_postgres::error::SqlState;

use super::sqlstate::{Class, classify};

/// What can go wrong at the database door. Domain errors wrap this; the gRPC
/// layer maps `Unavailable` to `UNAVAILABLE`, `Timeout` to
/// `DEADLINE_EXCEEDED`, `Conflict` to `ABORTED` and `Query` to an opaque
/// `INTERNAL` (the cause is logged, never returned).
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// No connection could be had in time: the pool is exhausted or the
    /// database does not answer.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// A statement was cancelled: it ran past `statement_timeout` (or an
    /// operator cancelled it). SQLSTATE 57014.
    #[error("database statement timed out")]
    Timeout,
    /// The transaction lost a race with another (a serialization failure
    /// or a deadlock, SQLSTATE 40001/40P01) and was rolled back; the same
    /// call again may well succeed.
    #[error("database transaction conflicted with another and was rolled back")]
    Conflict,
    #[error("database query failed: {0}")]
    Query(DieselError),
}

impl DbError {
    /// Whether the same call again may well succeed: the database did not
    /// answer, a statement ran out of time, or a transaction lost a race.
    /// The one answer every edge gives for "retry later".
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Unavailable(_) | Self::Timeout | Self::Conflict)
    }

    /// What the SQLSTATE the server sent says this failure was, when that
    /// is something a caller can act on (retry, wait); else `self`. The
    /// message text is never looked at: it follows `lc_messages`.
    pub(super) fn by_sqlstate(self, code: Option<SqlState>) -> Self {
        code.and_then(|code| Self::actionable(&code, &self))
            .unwrap_or(self)
    }

    /// The failure `code` names, if a caller can act on it; `cause`
    /// describes it for the log.
    pub(super) fn actionable(code: &SqlState, cause: impl std::fmt::Display) -> Option<Self> {
        match classify(code) {
            Class::Unavailable => Some(Self::Unavailable(format!(
                "SQLSTATE {}: {cause}",
                code.code()
            ))),
            Class::Cancelled => Some(Self::Timeout),
            Class::Conflict => Some(Self::Conflict),
            Class::Other => None,
        }
    }

    /// A transaction that heard nothing back within `limit`: the
    /// connection is presumed dead (a half-open socket, a hung peer).
    pub(super) fn silent(limit: std::time::Duration) -> Self {
        Self::Unavailable(format!("the database did not answer within {limit:?}"))
    }
}

impl From<DieselError> for DbError {
    fn from(error: DieselError) -> Self {
        match error {
            DieselError::DatabaseError(
                DatabaseErrorKind::ClosedConnection | DatabaseErrorKind::UnableToSendCommand,
                info,
            ) => Self::Unavailable(format!("connection closed: {}", info.message())),
            DieselError::DatabaseError(DatabaseErrorKind::SerializationFailure, _) => {
                Self::Conflict
            }
            other => Self::Query(other),
        }
    }
}

impl<E: std::fmt::Display> From<bb8::RunError<E>> for DbError {
    fn from(error: bb8::RunError<E>) -> Self {
        match error {
            bb8::RunError::TimedOut => {
                Self::Unavailable("timed out waiting for a pooled connection".into())
            }
            bb8::RunError::User(cause) => Self::Unavailable(cause.to_string()),
        }
    }
}
