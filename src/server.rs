//! The gRPC server: services, health, reflection and graceful shutdown.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use envoy_types::ext_authz::v3::pb::AuthorizationServer as ExtAuthzServer;
use tokio::net::TcpListener;
use tonic::transport::Server;
use tonic::transport::server::TcpIncoming;
use tonic_health::ServingStatus;
use tower_http::metrics::InFlightRequestsLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};

use crate::app::App;
use crate::consistency::layer::ConsistencyLayer;
use crate::grpc::administration::AdministrationService;
use crate::grpc::authentication::AuthenticationService;
use crate::grpc::authorization::AuthorizationService;
use crate::grpc::caller_auth::CallerAuthLayer;
use crate::grpc::consistency::InvalidConsistency;
use crate::grpc::error_details::ErrorDetailsLayer;
use crate::grpc::ext_authz::ExtAuthzService;
use crate::grpc::health;
use crate::grpc::request::REQUEST_ID_HEADER;
use crate::grpc::rpc_log::RpcLogLayer;
use crate::grpc::service_credentials::ServiceCredentialsService;
use crate::grpc::watch::ChangesService;
use crate::http::edge::BadRequest;
use crate::proto;
use crate::proto::v1::administration_server::AdministrationServer;
use crate::proto::v1::authentication_server::AuthenticationServer;
use crate::proto::v1::authorization_server::AuthorizationServer;
use crate::proto::v1::changes_server::ChangesServer;
use crate::proto::v1::service_credentials_server::ServiceCredentialsServer;
use crate::tls::ServerTls;

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("cannot listen on {addr}: {cause}")]
    Bind {
        addr: SocketAddr,
        cause: std::io::Error,
    },
    #[error("cannot build the reflection service: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
    #[error("server failed: {0}")]
    Transport(#[from] tonic::transport::Error),
    #[error("{0}")]
    Settings(String),
}

pub async fn bind(addr: SocketAddr) -> Result<TcpListener, ServeError> {
    TcpListener::bind(addr)
        .await
        .map_err(|cause| ServeError::Bind { addr, cause })
}

/// Serves until `shutdown` completes, then stops accepting calls, reports
/// `NOT_SERVING`, and lets in-flight calls finish within the grace period.
pub async fn serve(
    app: App,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), ServeError> {
    let settings = app.settings.server.clone();
    settings.check().map_err(ServeError::Settings)?;
    let (db, tokens) = (app.db.clone(), app.tokens.clone());
    let (reporter, health_service) = tonic_health::server::health_reporter();
    // Not serving until the first database probe answers.
    health::set_all(&reporter, ServingStatus::NotServing).await;
    let watcher = tokio::spawn(health::watch_database(
        db.clone(),
        reporter.clone(),
        settings.health_interval,
    ));

    // The primary's clock and the replicas' positions, for routing reads.
    let replica_monitor = tokio::spawn(db.monitor_replicas());
    let http_consistency = ConsistencyLayer::new(tokens.clone(), db.clone(), BadRequest);
    // The change stream: where it ends, followed for every Watch stream.
    let changes = crate::watch::Hub::new(db.clone(), tokens.clone(), settings.watch.clone());
    let change_follower = tokio::spawn(changes.clone().run());

    let metrics = match settings.metrics_listen {
        Some(addr) => {
            let listener = bind(addr).await?;
            tracing::info!(%addr, "serving Prometheus metrics on /metrics");
            Some(tokio::spawn(crate::metrics::serve(
                listener,
                db.clone(),
                app.passwords.clone(),
            )))
        }
        None => None,
    };
    // Calls still running, gRPC and HTTP: what a shutdown past its grace cuts.
    let (in_flight_layer, in_flight) = InFlightRequestsLayer::pair();
    // One copy of the endpoint catalogue for CheckEndpoint and forward-auth.
    let catalogue = Arc::new(crate::authz::EndpointCatalogue::default());
    // The gateway decision, for /forward-auth and Envoy's ext_authz.
    let gate = Arc::new(crate::authz::gatekeeper::Gatekeeper {
        db: db.for_reads(),
        tokens: tokens.clone(),
        catalogue: catalogue.clone(),
        settings: settings.gateway.clone(),
    });
    let forward_auth = match settings.forward_auth_listen {
        Some(addr) => {
            let listener = bind(addr).await?;
            tracing::info!(%addr, "serving /forward-auth over HTTP");
            let edge = crate::http::ForwardAuth {
                gate: gate.clone(),
                settings: settings.forward_auth.clone(),
            };
            Some(tokio::spawn(crate::http::serve(
                listener,
                Arc::new(edge),
                in_flight_layer.clone(),
                http_consistency.clone(),
                settings.tls.as_ref().map(ServerTls::http_config),
            )))
        }
        None => None,
    };
    let authzen = match settings.authzen_listen {
        Some(addr) => {
            let listener = bind(addr).await?;
            tracing::info!(%addr, "serving the AuthZEN API over HTTP");
            let api = crate::http::authzen::AuthZen {
                db: db.for_reads(),
                tokens: tokens.clone(),
                // Set: checked above.
                base_url: settings.authzen_base_url.clone().unwrap_or_default(),
            };
            Some(tokio::spawn(crate::http::serve_authzen(
                listener,
                Arc::new(api),
                Arc::new(crate::http::watch::WatchEdge {
                    hub: changes.clone(),
                    tokens: tokens.clone(),
                }),
                in_flight_layer.clone(),
                http_consistency.clone(),
                settings.tls.as_ref().map(ServerTls::http_config),
            )))
        }
        None => None,
    };
    // The SQL decision functions count PostgREST's claims of recorded
    // issuers only: recorded before serving when the database answers,
    // else as soon as it does.
    let issuer = match crate::tokens::record_issuer(&db, tokens.issuer()).await {
        Ok(()) => None,
        Err(_) => Some(tokio::spawn(crate::tokens::keep_recording_issuer(
            db.clone(),
            tokens.issuer().to_owned(),
        ))),
    };
    let revocations = tokens.revocations().clone();
    let revocation_db = db.clone();
    let revocation_sync = tokio::spawn(async move {
        revocations
            .run(revocation_db, settings.revocation_poll_interval)
            .await;
    });

    let reflection = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(proto::ENVOY_FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
    };

    // Outermost first: the in-flight count, the details of any error that
    // lacks them, request id, the per-RPC log line, then the caller's
    // authentication.
    let layers = tower::ServiceBuilder::new()
        .layer(in_flight_layer)
        .layer(ErrorDetailsLayer)
        .layer(SetRequestIdLayer::new(
            http::HeaderName::from_static(REQUEST_ID_HEADER),
            MakeRequestUuid,
        ))
        .layer(PropagateRequestIdLayer::new(http::HeaderName::from_static(
            REQUEST_ID_HEADER,
        )))
        .layer(RpcLogLayer)
        .layer(CallerAuthLayer::new(tokens.clone()))
        .layer(ConsistencyLayer::new(
            tokens.clone(),
            db.clone(),
            InvalidConsistency,
        ))
        .into_inner();
    let proxy_hops = settings.proxy_hops();
    let mut builder = Server::builder();
    if let Some(tls) = &settings.tls {
        builder = builder.tls_config(tls.config())?;
    }
    let router = builder
        .trace_fn(rpc_span)
        .layer(layers)
        .add_service(health_service)
        .add_service(reflection().build_v1()?)
        .add_service(reflection().build_v1alpha()?)
        .add_service(AdministrationServer::new(AdministrationService::new(
            db.clone(),
            app.passwords.clone(),
            app.settings.authn.clone(),
            proxy_hops,
        )))
        .add_service(AuthenticationServer::new(AuthenticationService::new(
            Arc::new(app.authenticator()),
            proxy_hops,
        )))
        .add_service(AuthorizationServer::new(AuthorizationService::new(
            db.for_reads(),
            tokens.clone(),
            settings.max_batch_checks,
            catalogue,
        )))
        .add_service(ExtAuthzServer::new(ExtAuthzService::new(
            gate,
            settings.ext_authz.clone(),
        )))
        .add_service(ChangesServer::new(ChangesService::new(
            changes.clone(),
            tokens.clone(),
        )))
        .add_service(ServiceCredentialsServer::new(
            ServiceCredentialsService::new(db.clone(), tokens, settings.service_token_lifetime),
        ));

    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    // Small gRPC responses must not wait for Nagle's algorithm (a 40 ms stall
    // against delayed ACKs): set TCP_NODELAY on every accepted connection.
    let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
    let serving = router.serve_with_incoming_shutdown(incoming, async move {
        let _ = stop_rx.await;
    });
    tokio::pin!(serving);

    let result = tokio::select! {
        result = &mut serving => result.map_err(ServeError::from),
        () = shutdown => {
            tracing::info!(grace = ?settings.shutdown_grace, "shutting down: letting in-flight calls finish");
            watcher.abort();
            health::set_all(&reporter, ServingStatus::NotServing).await;
            // Watch streams end now, each with its token, rather than
            // holding the shutdown for its whole grace.
            changes.close();
            let _ = stop_tx.send(());
            match tokio::time::timeout(settings.shutdown_grace, &mut serving).await {
                Ok(result) => {
                    tracing::info!(cut_calls = in_flight.get(), "stopped");
                    result.map_err(ServeError::from)
                }
                Err(_) => {
                    tracing::warn!(
                        cut_calls = in_flight.get(),
                        "grace period over; cutting the calls still running"
                    );
                    Ok(())
                }
            }
        }
    };
    watcher.abort();
    replica_monitor.abort();
    change_follower.abort();
    revocation_sync.abort();
    if let Some(issuer) = issuer {
        issuer.abort();
    }
    if let Some(metrics) = metrics {
        metrics.abort();
    }
    for listener in [forward_auth, authzen].into_iter().flatten() {
        listener.abort();
    }
    result
}

/// The span of one RPC, a child of the caller's trace when the request
/// carries W3C `traceparent`. The RPC log layer fills in the outcome.
fn rpc_span(request: &http::Request<()>) -> tracing::Span {
    use tracing_opentelemetry::OpenTelemetrySpanExt;
    let method = request.uri().path();
    let span = tracing::info_span!(
        "rpc",
        otel.name = %method,
        otel.kind = "server",
        rpc.system = "grpc",
        method = %method,
        caller = tracing::field::Empty,
        rpc.grpc.status_code = tracing::field::Empty,
        decision = tracing::field::Empty,
    );
    let _ = span.set_parent(crate::telemetry::caller_context(request.headers()));
    span
}

/// Completes on SIGINT or SIGTERM, and from then on holds the process to
/// `grace` (plus half a second to log and flush): whatever still runs after
/// that (a blocking task, an exporter's flush, a call that ignored the
/// grace) does not keep the process alive. For the `serve` and `dev`
/// processes only: it ends the process, so never in a test's server.
pub async fn shutdown_signal_within(grace: std::time::Duration) {
    shutdown_signal().await;
    let bound = grace + std::time::Duration::from_millis(500);
    let watchdog = std::thread::Builder::new()
        .name("shutdown-bound".into())
        .spawn(move || {
            std::thread::sleep(bound);
            tracing::error!(
                bound = ?bound,
                "still running past the shutdown grace; exiting now"
            );
            std::process::exit(1);
        });
    if let Err(error) = watchdog {
        tracing::error!(%error, "cannot bound the shutdown");
    }
}

/// Completes on SIGINT (Ctrl-C) or SIGTERM.
pub async fn shutdown_signal() {
    let interrupt = async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::error!(%error, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::error!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => tracing::info!("received SIGINT"),
        () = terminate => tracing::info!("received SIGTERM"),
    }
}
