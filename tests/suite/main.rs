//! One test binary (one link step) for the whole suite; each module is a
//! specification of one area. Every test runs against real PostgreSQL in a
//! database of its own.

// Tests choose their times, often from the clock.
#![allow(clippy::disallowed_methods)]
// A failed expectation in a test or its harness should panic loudly.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

mod administration;
mod authentication;
mod authorization;
mod authz_model;
mod authzen;
mod caller_auth;
mod closure;
mod database_tls;
mod edges;
mod endpoints;
mod ext_authz;
mod faults;
mod federated_login;
mod forward_auth;
mod logs;
mod metrics;
mod migrations;
mod otel_traces;
mod pooled_isolation;
mod postgrest;
mod provision;
mod read_replica;
mod rich_errors;
mod rls;
mod schema_contract;
mod scoped_transaction;
mod server;
mod service_credentials;
mod sql_decisions;
mod tls;
