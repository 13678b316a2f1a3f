//! The HTTP listener (`--http-listen`): what API gateways call over HTTP
//! rather than gRPC. Thin like `grpc`: it parses, asks the domain, and maps
//! the answer.

// The HTTP edge reads the clock, as the gRPC one does.
#![allow(clippy::disallowed_methods)]

mod decide;
pub mod forward_auth;

use std::sync::Arc;

pub use decide::{Allowed, Gatekeeper, GatewaySettings, OriginalRequest, Refusal, bearer};

/// Serves the HTTP routes on `listener` until the task is aborted.
pub async fn serve(
    listener: tokio::net::TcpListener,
    gate: Arc<Gatekeeper>,
    in_flight: tower_http::metrics::InFlightRequestsLayer,
) {
    let app = forward_auth::routes(gate).layer(in_flight);
    if let Err(error) = axum::serve(listener, app).await {
        tracing::error!(%error, "the HTTP listener stopped");
    }
}
