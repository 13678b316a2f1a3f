//! Running the service: provisioning, the server process and its TLS, its
//! logs, metrics and traces, and how it behaves when the database fails.

mod faults;
mod logs;
pub(crate) mod metrics;
pub(crate) mod otel_traces;
mod provision;
mod server;
mod tls;
