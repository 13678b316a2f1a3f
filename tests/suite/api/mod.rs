//! The gRPC API, call family by call family: who may call, what each call
//! answers, and how its errors read.

pub(crate) mod administration;
mod authentication;
mod authorization;
pub(crate) mod authz_model;
mod caller_auth;
mod consistency_tokens;
mod federated_login;
mod rich_errors;
mod service_credentials;
mod watch;
mod what_if;
