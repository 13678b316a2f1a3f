//! Portcullis: a gRPC authorization service over PostgreSQL row-level security.
//!
//! Layers, outermost first: [`grpc`] (transport: parse requests, map errors to
//! `tonic::Status`), the domain modules (no tonic types), and [`db`], the only
//! door to the database: every access runs in an RLS-scoped transaction.

pub mod admin;
pub mod app;
pub mod assertions;
pub mod audit;
pub mod authn;
pub mod authz;
pub mod callers;
pub mod cli;
pub mod consistency;
pub mod db;
pub mod grpc;
pub mod http;
pub mod metrics;
pub mod names;
pub mod ops;
pub mod pagination;
pub mod proto;
pub mod secrets;
pub mod server;
pub mod service_accounts;
pub mod telemetry;
pub mod tls;
pub mod tokens;
pub mod watch;
