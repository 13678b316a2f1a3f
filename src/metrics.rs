//! Prometheus metrics: recorded with the `metrics` facade where things
//! happen, rendered in the text format on `GET /metrics` of a port of its own.

use std::net::SocketAddr;
use std::sync::OnceLock;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

use crate::authn::Passwords;
use crate::db::Db;

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// How often histogram samples are folded into their buckets between
/// scrapes.
const UPKEEP_INTERVAL: std::time::Duration = std::time::Duration::from_secs(5);

/// A Prometheus metric type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MetricKind {
    Counter,
    Gauge,
    Histogram,
}

impl MetricKind {
    pub fn as_str(self) -> &'static str {
        match self {
            MetricKind::Counter => "counter",
            MetricKind::Gauge => "gauge",
            MetricKind::Histogram => "histogram",
        }
    }
}

/// One metric the server exports: its `# HELP` line, and a row of the
/// book's metrics page (a test keeps both equal to what a server exports).
#[derive(Debug)]
pub struct MetricDoc {
    pub name: &'static str,
    pub kind: MetricKind,
    pub labels: &'static [&'static str],
    pub help: &'static str,
}

/// Every metric the server exports.
pub const CATALOGUE: &[MetricDoc] = &[
    MetricDoc {
        name: "portcullis_rpc_requests_total",
        kind: MetricKind::Counter,
        labels: &["method", "code"],
        help: "gRPC calls answered, by method (an RPC this server serves, or `unknown`) and gRPC status code.",
    },
    MetricDoc {
        name: "portcullis_rpc_duration_seconds",
        kind: MetricKind::Histogram,
        labels: &["method"],
        help: "Time from a gRPC call's arrival to its answer, by method.",
    },
    MetricDoc {
        name: "portcullis_decisions_total",
        kind: MetricKind::Counter,
        labels: &["edge", "outcome", "reason"],
        help: "Every decision at every edge. `edge`: `grpc_check`, `grpc_endpoint`, `forward_auth`, `ext_authz`, `authzen`; `outcome`: `allowed`, `denied`, `unauthenticated`, `unavailable` or `error`; `reason`: the decision reason in lower case.",
    },
    MetricDoc {
        name: "portcullis_token_exchanges_total",
        kind: MetricKind::Counter,
        labels: &["outcome"],
        help: "Service-credential exchanges: `issued` or `refused`.",
    },
    MetricDoc {
        name: "portcullis_login_lockouts_total",
        kind: MetricKind::Counter,
        labels: &[],
        help: "Logins or client addresses locked after too many failures (each also an audit row).",
    },
    MetricDoc {
        name: "portcullis_id_token_rejections_total",
        kind: MetricKind::Counter,
        labels: &["reason"],
        help: "OpenID Connect ID tokens refused at federated login, by why (a code of ours).",
    },
    MetricDoc {
        name: "portcullis_audit_refusals_unrecorded_total",
        kind: MetricKind::Counter,
        labels: &[],
        help: "Refused exchanges for a real service key past 20 an hour, counted here instead of audited so nobody can flood a tenant's trail.",
    },
    MetricDoc {
        name: "portcullis_db_round_trips_total",
        kind: MetricKind::Counter,
        labels: &[],
        help: "Flushes of written messages on a database connection: statements pipelined together count once.",
    },
    MetricDoc {
        name: "portcullis_db_pool_connections",
        kind: MetricKind::Gauge,
        labels: &[],
        help: "Open pooled connections, read at scrape time.",
    },
    MetricDoc {
        name: "portcullis_db_pool_idle",
        kind: MetricKind::Gauge,
        labels: &[],
        help: "Idle pooled connections, read at scrape time.",
    },
    MetricDoc {
        name: "portcullis_db_pool_in_use",
        kind: MetricKind::Gauge,
        labels: &[],
        help: "Pooled connections lent to a call, read at scrape time.",
    },
    MetricDoc {
        name: "portcullis_db_pool_waiting",
        kind: MetricKind::Gauge,
        labels: &[],
        help: "Calls waiting for a pooled connection, read at scrape time.",
    },
    MetricDoc {
        name: "portcullis_password_hashing_queue",
        kind: MetricKind::Gauge,
        labels: &[],
        help: "Passwords waiting for a hashing thread, read at scrape time.",
    },
    MetricDoc {
        name: "portcullis_replica_reads_total",
        kind: MetricKind::Counter,
        labels: &["target"],
        help: "Reads routed by their consistency requirement, by where they went: `primary` or a replica (`replica-1`, ...).",
    },
    MetricDoc {
        name: "portcullis_replica_fallbacks_total",
        kind: MetricKind::Counter,
        labels: &["reason"],
        help: "Reads that could have gone to a replica but went to the primary: `not_fresh_enough` (none was, within --replica-wait) or `none_in_rotation`.",
    },
    MetricDoc {
        name: "portcullis_replica_wait_seconds",
        kind: MetricKind::Histogram,
        labels: &[],
        help: "How long reads waited for a replica fresh enough for them (only reads that waited).",
    },
    MetricDoc {
        name: "portcullis_replica_staleness_seconds",
        kind: MetricKind::Gauge,
        labels: &["replica"],
        help: "How far each replica may trail the primary, as of its last probe: the time since the moment whose primary state it had replayed.",
    },
    MetricDoc {
        name: "portcullis_replica_in_rotation",
        kind: MetricKind::Gauge,
        labels: &["replica"],
        help: "1 while a replica serves reads; 0 while it is down, lagging past --replica-max-lag, or promoted.",
    },
    MetricDoc {
        name: "portcullis_watch_streams",
        kind: MetricKind::Gauge,
        labels: &[],
        help: "Open `Watch` streams (gRPC and HTTP).",
    },
    MetricDoc {
        name: "portcullis_watch_changes_total",
        kind: MetricKind::Counter,
        labels: &["kind"],
        help: "Changes handed to `Watch` streams, by the kind of thing changed (`assignment`, `org_node`, ...).",
    },
    MetricDoc {
        name: "portcullis_watch_lag_seconds",
        kind: MetricKind::Histogram,
        labels: &[],
        help: "Time from a change's commit to its handing to a `Watch` stream's buffer.",
    },
    MetricDoc {
        name: "portcullis_watch_ended_total",
        kind: MetricKind::Counter,
        labels: &["reason"],
        help: "`Watch` streams ended: `consumer_gone`, `fell_behind` (a full buffer for --watch-stall), `shutting_down`, `out_of_range` (pruned under the consumer) or `error`.",
    },
];

/// Gives every catalogued metric its `# HELP` line.
fn describe() {
    for metric in CATALOGUE {
        match metric.kind {
            MetricKind::Counter => metrics::describe_counter!(metric.name, metric.help),
            MetricKind::Gauge => metrics::describe_gauge!(metric.name, metric.help),
            MetricKind::Histogram => metrics::describe_histogram!(metric.name, metric.help),
        }
    }
}

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
                .inspect(|_| describe())
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

/// A `Watch` stream opened (`1`) or ended (`-1`).
pub fn watch_streams(delta: f64) {
    metrics::gauge!("portcullis_watch_streams").increment(delta);
}

/// A change handed to a `Watch` stream, committed at `committed_at`.
#[allow(clippy::disallowed_methods)] // the lag is measured against the clock
pub fn watch_event(kind: &str, committed_at: chrono::DateTime<chrono::Utc>) {
    metrics::counter!("portcullis_watch_changes_total", "kind" => kind.to_owned()).increment(1);
    let lag = (chrono::Utc::now() - committed_at)
        .to_std()
        .unwrap_or_default();
    metrics::histogram!("portcullis_watch_lag_seconds").record(lag.as_secs_f64());
}

/// A `Watch` stream ended, and why.
pub fn watch_ended(reason: &'static str) {
    metrics::counter!("portcullis_watch_ended_total", "reason" => reason).increment(1);
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
    let upkeep_handle = handle.clone();
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
    // Histogram samples wait in the recorder until a scrape or an upkeep
    // folds them into buckets: with no scrape (Prometheus down, a
    // listener nobody reads) they would pile up, a few bytes per request.
    // The upkeep runs in this task, so it ends with the endpoint.
    let upkeep = async {
        let mut every = tokio::time::interval(UPKEEP_INTERVAL);
        loop {
            every.tick().await;
            upkeep_handle.run_upkeep();
        }
    };
    tokio::select! {
        served = axum::serve(listener, app) => {
            if let Err(error) = served {
                tracing::error!(%error, "the metrics endpoint stopped");
            }
        }
        () = upkeep => {}
    }
}

pub async fn bind(addr: SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(addr).await
}
