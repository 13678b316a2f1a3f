//! The database door for requests. [`Db`] is the only way in: every access
//! runs in a transaction scoped by an [`RlsContext`]. Operator connections
//! (provisioning, migrations) live in [`crate::ops`] and never serve a
//! request.

pub(crate) mod connect;
mod context;
mod error;
mod pipeline;
mod pool;
mod rehearsal;
mod replicas;
pub mod round_trips;
pub mod schema;
mod scope;
mod socket;
mod sqlstate;
mod statement;
mod wal;

pub use connect::DatabaseUrlError;
pub use context::RlsContext;
pub use error::DbError;
pub use pool::{PoolSettings, PoolStatus};
pub use replicas::{ReplicaHealth, ReplicaSettings, ReplicaStatus};
pub use scope::{Db, Work, authenticated_service};
pub use statement::InContext;
pub use wal::{TransactionPoint, insert_position_sql};
