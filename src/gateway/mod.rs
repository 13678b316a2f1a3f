//! The HTTP listener (`--http-listen`): what API gateways call over HTTP
//! rather than gRPC. Thin like `grpc`: it parses, asks the domain, and maps
//! the answer.

// The HTTP edge reads the clock, as the gRPC one does.
#![allow(clippy::disallowed_methods)]

pub mod forward_auth;

use std::sync::Arc;

pub use forward_auth::{ForwardAuth, ForwardAuthSettings};

/// Serves the HTTP routes on `listener` until the task is aborted.
pub async fn serve(
    listener: tokio::net::TcpListener,
    forward_auth: Arc<ForwardAuth>,
    in_flight: tower_http::metrics::InFlightRequestsLayer,
) {
    let app = forward_auth::routes(forward_auth).layer(in_flight);
    if let Err(error) = axum::serve(listener, app).await {
        tracing::error!(%error, "the HTTP listener stopped");
    }
}
