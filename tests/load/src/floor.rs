//! The raw floor of CheckCapability: the service's own transaction as one
//! pipelined round trip (`floor.sql`), driven by pgbench as the
//! application role.

use std::time::Duration;

use anyhow::{Context, bail};
use serde::Serialize;
use tokio::process::Command;

use super::cpu::CpuProbe;
use super::dataset::Shape;

const FLOOR_SQL: &str = include_str!("floor.sql");

#[derive(Debug, Serialize)]
pub struct Floor {
    pub concurrency: usize,
    pub transactions_per_second: f64,
    pub latency_avg_ms: f64,
    pub transactions: Option<u64>,
    /// CPU-seconds per 1,000 floor transactions: PostgreSQL's, pgbench's.
    pub postgres_seconds_per_1k_transactions: Option<f64>,
    pub pgbench_seconds_per_1k_transactions: Option<f64>,
}

/// Runs the floor transaction with pgbench, `concurrency` clients for
/// `duration`, against `app_url` (the application role).
pub async fn floor(
    app_url: &str,
    concurrency: usize,
    duration: Duration,
    shape: Shape,
    probe: &CpuProbe,
) -> anyhow::Result<Floor> {
    let script = std::env::temp_dir().join(format!(
        "portcullis-floor-{}.sql",
        uuid::Uuid::new_v4().simple()
    ));
    std::fs::write(&script, FLOOR_SQL)?;
    let seconds = duration.as_secs().max(1);
    let before = probe.sample().await;
    let output = Command::new("pgbench")
        .args(["-n", "-M", "prepared", "-j", "2"])
        .arg("-c")
        .arg(concurrency.to_string())
        .arg("-T")
        .arg(seconds.to_string())
        .arg("-D")
        .arg(format!("tenants={}", shape.tenants))
        .arg("-D")
        .arg(format!("users={}", shape.users_per_tenant))
        .arg("-D")
        .arg(format!("nodes={}", shape.nodes_per_tenant))
        .arg("-D")
        .arg(format!("capabilities={}", shape.capabilities))
        .arg("-f")
        .arg(&script)
        .arg(app_url)
        .output()
        .await
        .context("running pgbench (install the Debian package postgresql-client)")?;
    // pgbench's backends have exited; let the postmaster reap them.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let after = probe.sample().await;
    let _ = std::fs::remove_file(&script);
    let text = String::from_utf8_lossy(&output.stdout).to_string();
    if !output.status.success() {
        bail!(
            "pgbench failed: {}{}",
            text,
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let number_after = |prefix: &str| {
        text.lines()
            .find_map(|line| line.trim().strip_prefix(prefix))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|n| n.parse::<f64>().ok())
    };
    let transactions = number_after("number of transactions actually processed: ")
        .map(|n| n as u64)
        .filter(|n| *n > 0);
    let per_1k = |cpu: f64| transactions.map(|n| cpu * 1000.0 / n as f64);
    let floor = Floor {
        concurrency,
        transactions_per_second: number_after("tps = ").context("no tps in pgbench's output")?,
        latency_avg_ms: number_after("latency average = ").unwrap_or_default(),
        transactions,
        postgres_seconds_per_1k_transactions: per_1k(after.postgres - before.postgres),
        pgbench_seconds_per_1k_transactions: per_1k(after.client - before.client),
    };
    println!(
        "floor (pgbench, pipelined): {:.0} tps, average latency {:.2} ms; CPU ms per transaction: \
         PostgreSQL {}, pgbench {}",
        floor.transactions_per_second,
        floor.latency_avg_ms,
        floor
            .postgres_seconds_per_1k_transactions
            .map_or("-".into(), |v| format!("{v:.3}")),
        floor
            .pgbench_seconds_per_1k_transactions
            .map_or("-".into(), |v| format!("{v:.3}")),
    );
    Ok(floor)
}
