//! The edges other software calls on a user's behalf: `/forward-auth`,
//! Envoy's `Check`, the AuthZEN API, the endpoint catalogue behind them,
//! PostgREST trusting the tokens, and what every edge shares.

mod authzen;
mod consistency;
mod edges;
mod endpoints;
mod ext_authz;
pub(crate) mod forward_auth;
pub(crate) mod postgrest;
