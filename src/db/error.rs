use diesel::result::{DatabaseErrorKind, Error as DieselError};

/// What can go wrong at the database door. Domain errors wrap this; the gRPC
/// layer maps `Unavailable` to `UNAVAILABLE` and the rest to an opaque
/// `INTERNAL` (the cause is logged, never returned).
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// No connection could be had in time: the pool is exhausted or the
    /// database does not answer.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// A statement ran past `statement_timeout`.
    #[error("database statement timed out")]
    Timeout,
    #[error("database query failed: {0}")]
    Query(DieselError),
}

impl DbError {
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
            DieselError::DatabaseError(_, info) if info.message().contains("statement timeout") => {
                Self::Timeout
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
