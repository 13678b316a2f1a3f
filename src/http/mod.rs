//! The HTTP edge: `/forward-auth` for API gateways (`--forward-auth-listen`) and
//! the OpenID AuthZEN API (`--authzen-listen`), each with the layers every
//! listener shares ([`edge`]). Thin like `grpc`: the edges parse, ask the
//! domain (forward-auth asks the gateway decision it shares with Envoy's
//! gRPC `Check`, `authz::gatekeeper`), and map the answer.

// The HTTP edge reads the clock, as the gRPC one does.
#![allow(clippy::disallowed_methods)]

pub mod authzen;
pub mod edge;
pub mod forward_auth;
pub mod watch;

use std::sync::Arc;

use crate::consistency::layer::ConsistencyLayer;

pub use forward_auth::{ForwardAuth, ForwardAuthMode, ForwardAuthSettings};

/// Serves `/forward-auth` on `listener` until the task is aborted.
pub async fn serve(
    listener: tokio::net::TcpListener,
    forward_auth: Arc<ForwardAuth>,
    in_flight: tower_http::metrics::InFlightRequestsLayer,
    consistency: ConsistencyLayer<edge::BadRequest>,
    tls: Option<Arc<rustls::ServerConfig>>,
) {
    let routes = edge::layered(
        forward_auth::routes(forward_auth),
        forward_auth::EDGE,
        in_flight,
        consistency,
    );
    serve_routes(listener, routes, tls).await;
}

/// Serves the AuthZEN API, and the change stream's HTTP form
/// (`/v1/watch`), on `listener` until the task is aborted.
pub async fn serve_authzen(
    listener: tokio::net::TcpListener,
    api: Arc<authzen::AuthZen>,
    changes: Arc<watch::WatchEdge>,
    in_flight: tower_http::metrics::InFlightRequestsLayer,
    consistency: ConsistencyLayer<edge::BadRequest>,
    tls: Option<Arc<rustls::ServerConfig>>,
) {
    let routes = edge::layered(
        authzen::routes(api).merge(watch::routes(changes)),
        authzen::EDGE,
        in_flight,
        consistency,
    );
    serve_routes(listener, routes, tls).await;
}

/// How long a client may take over its TLS handshake.
const HANDSHAKE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

async fn serve_routes(
    listener: tokio::net::TcpListener,
    routes: axum::Router,
    tls: Option<Arc<rustls::ServerConfig>>,
) {
    let Some(tls) = tls else {
        if let Err(error) = axum::serve(listener, routes).await {
            tracing::error!(%error, "an HTTP listener stopped");
        }
        return;
    };
    // HTTPS: axum::serve speaks plain TCP only, so each connection is
    // handshaken here and served by hyper.
    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(error) => {
                tracing::warn!(%error, "accepting an HTTPS connection failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let (acceptor, routes) = (acceptor.clone(), routes.clone());
        tokio::spawn(async move {
            let Ok(Ok(stream)) =
                tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await
            else {
                return;
            };
            let service = hyper_util::service::TowerToHyperService::new(routes);
            let connection = hyper::server::conn::http1::Builder::new()
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service);
            if let Err(error) = connection.await {
                tracing::debug!(%error, "an HTTPS connection ended with an error");
            }
        });
    }
}
