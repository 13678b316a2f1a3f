//! Where the CPU of a measured window goes, read from `/proc`: the server
//! process, every PostgreSQL process, and the load client (this process
//! and its reaped children, such as pgbench), plus the bench database's
//! committed and rolled-back transactions from `pg_stat_database`, the
//! cluster's WAL flushes from `pg_stat_wal` and the server's round trips to
//! PostgreSQL from its `/metrics`.
//!
//! PostgreSQL's figure sums every process named `postgres` (backends,
//! WAL writer, checkpointer, autovacuum) and the postmaster's reaped
//! children, so backends that exit inside the window still count. It is the
//! whole cluster's: nothing else should run against it during a bench.

use std::collections::HashSet;

use procfs::process::{FDTarget, Process};
use serde::Serialize;

use portcullis::ops::admin::AdminConnection;

/// CPU-seconds consumed so far, per process group.
#[derive(Clone, Debug, Default)]
pub struct CpuSample {
    pub server: f64,
    pub postgres: f64,
    pub client: f64,
    /// Committed plus rolled-back transactions of the bench database.
    pub transactions: Option<i64>,
    /// Times the cluster flushed its WAL to disk (`pg_stat_wal.wal_sync`).
    pub wal_flushes: Option<i64>,
    /// The server's round trips to PostgreSQL (its
    /// `portcullis_db_round_trips_total`), when its metrics are reachable.
    pub round_trips: Option<u64>,
    /// The postmasters' process ids: when they differ between two samples
    /// PostgreSQL restarted, and its processes' CPU cannot be compared.
    pub postmasters: Vec<i32>,
}

/// What a window cost, per 1,000 requests (CPU-seconds per 1,000 requests
/// read as milliseconds per request).
#[derive(Clone, Debug, Serialize)]
pub struct CpuCost {
    pub requests: u64,
    pub server_seconds_per_1k_requests: f64,
    pub postgres_seconds_per_1k_requests: f64,
    pub client_seconds_per_1k_requests: f64,
    /// The same per 1,000 decisions, for the requests that make decisions.
    pub server_seconds_per_1k_decisions: Option<f64>,
    pub postgres_seconds_per_1k_decisions: Option<f64>,
    pub postgres_transactions_per_request: Option<f64>,
    /// WAL flushes to disk per request: below 1 where commits share a
    /// flush (group commit), 0 for read-only requests.
    pub wal_flushes_per_request: Option<f64>,
    /// The server's round trips to PostgreSQL per request: statements sent
    /// together (pipelined) count once.
    pub round_trips_per_request: Option<f64>,
    /// Cores busy on average over the window, all three together.
    pub cores_busy: f64,
}

impl CpuCost {
    pub fn between(
        before: &CpuSample,
        after: &CpuSample,
        seconds: f64,
        requests: u64,
        decisions: u64,
    ) -> Option<Self> {
        if requests == 0 {
            return None;
        }
        if before.postmasters != after.postmasters {
            tracing::warn!("PostgreSQL restarted during the window: its CPU is not accounted");
            return None;
        }
        let (server, postgres, client) = (
            after.server - before.server,
            after.postgres - before.postgres,
            after.client - before.client,
        );
        let per_1k = |cpu: f64, count: u64| cpu * 1000.0 / count as f64;
        let per_decision = |cpu: f64| (decisions > 0).then(|| per_1k(cpu, decisions));
        Some(Self {
            requests,
            server_seconds_per_1k_requests: per_1k(server, requests),
            postgres_seconds_per_1k_requests: per_1k(postgres, requests),
            client_seconds_per_1k_requests: per_1k(client, requests),
            server_seconds_per_1k_decisions: per_decision(server),
            postgres_seconds_per_1k_decisions: per_decision(postgres),
            postgres_transactions_per_request: before
                .transactions
                .zip(after.transactions)
                .map(|(b, a)| (a - b) as f64 / requests as f64),
            wal_flushes_per_request: before
                .wal_flushes
                .zip(after.wal_flushes)
                .map(|(b, a)| (a - b) as f64 / requests as f64),
            round_trips_per_request: before
                .round_trips
                .zip(after.round_trips)
                .map(|(b, a)| a.saturating_sub(b) as f64 / requests as f64),
            cores_busy: if seconds > 0.0 {
                (server + postgres + client) / seconds
            } else {
                0.0
            },
        })
    }
}

/// Reads the samples: which server, which database.
pub struct CpuProbe {
    server_pid: Option<i32>,
    /// A connection to the bench database, for its transaction counters.
    database: Option<tokio::sync::Mutex<AdminConnection>>,
    /// The server's `/metrics`, for its round trips.
    metrics: Option<(reqwest::Client, String)>,
}

impl CpuProbe {
    /// `database_url` may be any role's: `pg_stat_database` is readable by
    /// all. Without it, transactions are not counted.
    pub async fn new(server_pid: Option<u32>, database_url: Option<&url::Url>) -> Self {
        let database = match database_url {
            Some(url) => match AdminConnection::connect(url).await {
                Ok(connection) => Some(tokio::sync::Mutex::new(connection)),
                Err(error) => {
                    eprintln!("transactions per request not counted: {error}");
                    None
                }
            },
            None => None,
        };
        Self {
            server_pid: server_pid.and_then(|pid| i32::try_from(pid).ok()),
            database,
            metrics: None,
        }
    }

    /// Also counts the server's round trips to PostgreSQL, read from its
    /// metrics listener at `addr` (`host:port`).
    pub fn with_server_metrics(mut self, addr: &str) -> Self {
        let client = portcullis::tls::http_client()
            .timeout(std::time::Duration::from_secs(2))
            .build();
        match client {
            Ok(client) => self.metrics = Some((client, format!("http://{addr}/metrics"))),
            Err(error) => eprintln!("round trips not counted: {error}"),
        }
        self
    }

    async fn round_trips(&self) -> Option<u64> {
        let (client, url) = self.metrics.as_ref()?;
        let response = client.get(url).send().await.ok()?.error_for_status().ok()?;
        counter_value(
            &response.text().await.ok()?,
            "portcullis_db_round_trips_total",
        )
    }

    pub async fn sample(&self) -> CpuSample {
        let transactions = self
            .count(
                "SELECT (xact_commit + xact_rollback)::text AS value
                   FROM pg_stat_database WHERE datname = current_database()",
            )
            .await;
        let wal_flushes = self
            .count("SELECT wal_sync::text AS value FROM pg_stat_wal")
            .await;
        let round_trips = self.round_trips().await;
        let (postgres, postmasters) = postgres_seconds();
        CpuSample {
            server: self
                .server_pid
                .and_then(|pid| own_seconds(&Process::new(pid).ok()?))
                .unwrap_or_default(),
            postgres,
            postmasters,
            client: Process::myself()
                .ok()
                .and_then(|me| with_children_seconds(&me))
                .unwrap_or_default(),
            transactions,
            wal_flushes,
            round_trips,
        }
    }

    /// A counter of the bench database's statistics views.
    async fn count(&self, sql: &str) -> Option<i64> {
        let rows = self
            .database
            .as_ref()?
            .lock()
            .await
            .query_strings(sql, &[])
            .await
            .ok()?;
        rows.first()?.parse().ok()
    }
}

/// A counter's value in Prometheus's text format.
fn counter_value(exposition: &str, name: &str) -> Option<u64> {
    exposition.lines().find_map(|line| {
        let value = line.strip_prefix(name)?.strip_prefix(' ')?;
        value.trim().parse::<f64>().ok().map(|v| v as u64)
    })
}

fn ticks() -> f64 {
    procfs::ticks_per_second() as f64
}

/// The process's own CPU (all its threads).
fn own_seconds(process: &Process) -> Option<f64> {
    let stat = process.stat().ok()?;
    Some((stat.utime + stat.stime) as f64 / ticks())
}

/// Its own CPU and that of the children it has reaped.
fn with_children_seconds(process: &Process) -> Option<f64> {
    let stat = process.stat().ok()?;
    let children = (stat.cutime + stat.cstime).max(0) as u64;
    Some((stat.utime + stat.stime + children) as f64 / ticks())
}

/// Every `postgres` process, and for a postmaster (whose parent is not
/// `postgres`) the backends it has reaped; and the postmasters.
fn postgres_seconds() -> (f64, Vec<i32>) {
    let Ok(processes) = procfs::process::all_processes() else {
        return (0.0, Vec::new());
    };
    let stats: Vec<_> = processes
        .filter_map(|p| p.ok()?.stat().ok())
        .filter(|stat| stat.comm == "postgres")
        .collect();
    let pids: HashSet<i32> = stats.iter().map(|s| s.pid).collect();
    let ticks_used: u64 = stats
        .iter()
        .map(|s| {
            let reaped = if pids.contains(&s.ppid) {
                0
            } else {
                (s.cutime + s.cstime).max(0) as u64
            };
            s.utime + s.stime + reaped
        })
        .sum();
    let mut postmasters: Vec<i32> = stats
        .iter()
        .filter(|s| !pids.contains(&s.ppid))
        .map(|s| s.pid)
        .collect();
    postmasters.sort_unstable();
    (ticks_used as f64 / ticks(), postmasters)
}

/// The process listening on TCP `port` (any address), for `portcullis-load load`
/// against a server it did not start.
pub fn listening_pid(port: u16) -> Option<u32> {
    let listening: HashSet<u64> = procfs::net::tcp()
        .into_iter()
        .chain(procfs::net::tcp6())
        .flatten()
        .filter(|entry| {
            entry.state == procfs::net::TcpState::Listen && entry.local_address.port() == port
        })
        .map(|entry| entry.inode)
        .collect();
    procfs::process::all_processes()
        .ok()?
        .flatten()
        .find(|process| {
            process.fd().is_ok_and(|mut fds| {
                fds.any(|fd| {
                    fd.is_ok_and(|fd| {
                        matches!(fd.target, FDTarget::Socket(inode) if listening.contains(&inode))
                    })
                })
            })
        })
        .and_then(|process| u32::try_from(process.pid).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cost_is_cpu_seconds_per_thousand_requests() {
        let before = CpuSample {
            server: 1.0,
            postgres: 2.0,
            client: 0.5,
            transactions: Some(100),
            wal_flushes: Some(10),
            round_trips: Some(1_000),
            postmasters: vec![7],
        };
        let after = CpuSample {
            server: 3.0,
            postgres: 5.0,
            client: 1.0,
            transactions: Some(20_100),
            wal_flushes: Some(5_010),
            round_trips: Some(11_000),
            postmasters: vec![7],
        };
        let cost = CpuCost::between(&before, &after, 10.0, 10_000, 10_000).unwrap();
        assert!((cost.server_seconds_per_1k_requests - 0.2).abs() < 1e-9);
        assert!((cost.postgres_seconds_per_1k_requests - 0.3).abs() < 1e-9);
        assert!((cost.client_seconds_per_1k_requests - 0.05).abs() < 1e-9);
        assert_eq!(cost.postgres_transactions_per_request, Some(2.0));
        assert_eq!(cost.round_trips_per_request, Some(1.0));
        assert_eq!(cost.wal_flushes_per_request, Some(0.5));
        assert!((cost.cores_busy - 0.55).abs() < 1e-9);
    }

    #[test]
    fn a_window_across_a_postgres_restart_has_no_cost() {
        let before = CpuSample {
            postgres: 9.0,
            postmasters: vec![7],
            ..CpuSample::default()
        };
        let after = CpuSample {
            postgres: 1.0,
            postmasters: vec![8],
            ..CpuSample::default()
        };
        assert!(CpuCost::between(&before, &after, 1.0, 10, 10).is_none());
    }

    #[test]
    fn a_window_without_requests_has_no_cost() {
        let sample = CpuSample::default();
        assert!(CpuCost::between(&sample, &sample, 1.0, 0, 0).is_none());
    }

    #[test]
    fn reads_a_counter_from_the_metrics_text() {
        let text = "# TYPE portcullis_db_round_trips_total counter\n\
                    portcullis_db_round_trips_total_other 5\n\
                    portcullis_db_round_trips_total 12345\n";
        assert_eq!(
            counter_value(text, "portcullis_db_round_trips_total"),
            Some(12_345)
        );
        assert_eq!(counter_value(text, "portcullis_missing_total"), None);
    }

    #[test]
    fn finds_the_process_listening_on_a_port() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        assert_eq!(listening_pid(port), Some(std::process::id()));
    }
}
