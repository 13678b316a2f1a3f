//! The HTTP listener (`--http-listen`): what API gateways call over HTTP
//! rather than gRPC. Thin like `grpc`: it parses, asks the domain, and maps
//! the answer.

// The HTTP edge reads the clock, as the gRPC one does.
#![allow(clippy::disallowed_methods)]

pub mod authzen;
mod decide;
pub mod forward_auth;

use std::sync::Arc;

pub use decide::{Allowed, Gatekeeper, GatewaySettings, OriginalRequest, Refusal, bearer};

/// Serves `/forward-auth` on `listener` until the task is aborted.
pub async fn serve(
    listener: tokio::net::TcpListener,
    gate: Arc<Gatekeeper>,
    in_flight: tower_http::metrics::InFlightRequestsLayer,
) {
    serve_routes(listener, forward_auth::routes(gate).layer(in_flight)).await;
}

/// Serves the AuthZEN API on `listener` until the task is aborted.
pub async fn serve_authzen(
    listener: tokio::net::TcpListener,
    api: Arc<authzen::AuthZen>,
    in_flight: tower_http::metrics::InFlightRequestsLayer,
) {
    serve_routes(listener, authzen::routes(api).layer(in_flight)).await;
}

async fn serve_routes(listener: tokio::net::TcpListener, routes: axum::Router) {
    if let Err(error) = axum::serve(listener, routes).await {
        tracing::error!(%error, "an HTTP listener stopped");
    }
}
