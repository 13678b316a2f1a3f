//! The database as the last fence: the schema contract, the migrations,
//! row-level security, the scoped transaction, the closure table, the SQL
//! decisions other services' policies ask, pooling, replicas and TLS.

mod closure;
mod database_tls;
mod migrations;
mod pooled_isolation;
mod replica_freshness;
mod replication;
mod rls;
mod schema_contract;
mod scoped_transaction;
pub(crate) mod sql_decisions;
