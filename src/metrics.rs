//! Prometheus metrics: recorded with the `metrics` facade where things
//! happen, rendered in the text format on `GET /metrics` of a port of its own.

use std::net::SocketAddr;
use std::sync::OnceLock;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

use crate::authn::Passwords;
use crate::db::Db;

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Installs the process-wide recorder once; `None` if another recorder was
/// installed first (metrics are then simply not exported).
pub fn handle() -> Option<PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            PrometheusBuilder::new()
                .set_buckets(&[
                    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
                ])
                .ok()
                .and_then(|builder| builder.install_recorder().ok())
        })
        .clone()
}

/// One decision at an edge, in the one counter family every edge shares:
/// `portcullis_decisions_total{edge, outcome, reason}`. `outcome` is
/// `allowed`, `denied`, `unauthenticated`, `unavailable` or `error`;
/// `reason` is a code of ours, never a value a client chose.
pub fn decision(edge: &'static str, outcome: &'static str, reason: &str) {
    metrics::counter!(
        "portcullis_decisions_total",
        "edge" => edge,
        "outcome" => outcome,
        "reason" => reason.to_owned()
    )
    .increment(1);
}

/// Read at scrape time: the pool, the hashing queue and the round trips
/// to the database.
fn sample(db: &Db, passwords: &Passwords) {
    metrics::counter!("portcullis_db_round_trips_total").absolute(crate::db::round_trips::total());
    let pool = db.status();
    metrics::gauge!("portcullis_db_pool_connections").set(f64::from(pool.connections));
    metrics::gauge!("portcullis_db_pool_idle").set(f64::from(pool.idle));
    metrics::gauge!("portcullis_db_pool_in_use")
        .set(f64::from(pool.connections.saturating_sub(pool.idle)));
    metrics::gauge!("portcullis_db_pool_waiting").set(pool.waiting as f64);
    metrics::gauge!("portcullis_password_hashing_queue").set(passwords.queue_depth() as f64);
}

/// Serves `GET /metrics` on `listener` until the task is aborted.
pub async fn serve(
    listener: tokio::net::TcpListener,
    db: Db,
    passwords: std::sync::Arc<Passwords>,
) {
    let Some(handle) = handle() else {
        tracing::warn!("another metrics recorder is installed; /metrics is not served");
        return;
    };
    let app = axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let (handle, db, passwords) = (handle.clone(), db.clone(), passwords.clone());
            async move {
                sample(&db, &passwords);
                handle.render()
            }
        }),
    );
    if let Err(error) = axum::serve(listener, app).await {
        tracing::error!(%error, "the metrics endpoint stopped");
    }
}

pub async fn bind(addr: SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(addr).await
}
