//! The database layer. [`Db`] is the only door for requests: every access runs
//! in a transaction scoped by an [`RlsContext`]. [`admin`] connections exist
//! for operator tasks (provisioning, migrations) and never serve a request.

pub mod admin;
pub mod cluster;
mod connect;
mod context;
mod error;
pub mod migrate;
mod pool;
pub mod provision;
pub mod schema;
mod scope;

pub use connect::DatabaseUrlError;
pub use context::RlsContext;
pub use error::DbError;
pub use pool::{PoolSettings, PoolStatus};
pub use scope::{Db, Work, authenticated_service};
