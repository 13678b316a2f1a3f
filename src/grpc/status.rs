//! The one place where errors become `tonic::Status`.

use tonic::Status;

use crate::db::DbError;

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
