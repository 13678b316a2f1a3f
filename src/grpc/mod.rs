//! Transport: tonic services. Each file parses requests, calls the domain and
//! maps its errors through [`status`]; no business logic lives here.

// The edge: handlers read the clock once per request and pass `now` in.
#![allow(clippy::disallowed_methods)]

pub mod access;
pub mod administration;
pub mod authentication;
pub mod authorization;
pub mod caller_auth;
pub mod consistency;
pub mod endpoint_catalogue;
pub mod error_details;
pub mod ext_authz;
pub mod fields;
pub mod health;
pub mod reason;
pub mod request;
pub mod rpc_log;
pub mod service_credentials;
pub mod status;
pub mod watch;
