//! `portcullis-load soak`: holds a mixed load on a server for a given time
//! and reports, per window (a minute by default), the throughput, each
//! scenario's p99, and the server's footprint: resident memory, open file
//! descriptors and connections to PostgreSQL. A leak shows as a trend
//! across the windows, so the report ends with each figure's trend (least
//! squares) per ten minutes.

use std::collections::BTreeMap;
use std::time::Duration;

use procfs::process::Process;
use serde::Serialize;

use super::load::{self, LoadConfig, Scenario, ScenarioReport, Target};
use portcullis::ops::admin::AdminConnection;

pub struct SoakConfig {
    pub duration: Duration,
    /// One row of the report per window.
    pub window: Duration,
    pub warmup: Duration,
    pub concurrency: usize,
    pub connections: usize,
    pub mix: Vec<(Scenario, u32)>,
}

/// The server's footprint, sampled in the middle of a window, under load.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Footprint {
    pub rss_mb: Option<f64>,
    pub open_fds: Option<u64>,
    /// The application role's sessions in the bench database, the probe's
    /// own left out.
    pub database_connections: Option<u64>,
}

#[derive(Clone, Debug, Serialize)]
pub struct SoakWindow {
    /// Minutes since the measured load began, at the window's end.
    pub ends_at_minute: f64,
    pub requests: u64,
    pub errors: u64,
    /// The errors by scenario and code, with the first messages seen, to
    /// tell what failed.
    pub errors_by_scenario: BTreeMap<&'static str, ScenarioErrors>,
    pub per_second: f64,
    pub p99_ms: BTreeMap<&'static str, f64>,
    pub footprint: Footprint,
}

#[derive(Clone, Debug, Serialize)]
pub struct ScenarioErrors {
    pub by_code: BTreeMap<String, u64>,
    pub samples: Vec<String>,
}

/// A figure's least-squares slope across the windows, per ten minutes.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Trends {
    pub rss_mb: Option<f64>,
    pub open_fds: Option<f64>,
    pub database_connections: Option<f64>,
    pub p99_ms: BTreeMap<&'static str, f64>,
}

#[derive(Clone, Debug, Serialize)]
pub struct SoakReport {
    pub windows: Vec<SoakWindow>,
    pub trends_per_10_minutes: Trends,
}

/// Reads the server's footprint from `/proc` and from `pg_stat_activity`.
pub struct FootprintProbe {
    server_pid: Option<i32>,
    database: Option<AdminConnection>,
}

impl FootprintProbe {
    /// `database_url` is the application role's: it counts its own role's
    /// sessions.
    pub async fn new(server_pid: Option<u32>, database_url: &url::Url) -> Self {
        let database = match AdminConnection::connect(database_url).await {
            Ok(connection) => Some(connection),
            Err(error) => {
                eprintln!("database connections not counted: {error}");
                None
            }
        };
        Self {
            server_pid: server_pid.and_then(|pid| i32::try_from(pid).ok()),
            database,
        }
    }

    pub async fn sample(&mut self) -> Footprint {
        let process = self.server_pid.and_then(|pid| Process::new(pid).ok());
        let rss_mb = process.as_ref().and_then(|p| {
            let pages = p.stat().ok()?.rss;
            Some((pages * procfs::page_size()) as f64 / (1024.0 * 1024.0))
        });
        let open_fds = process
            .as_ref()
            .and_then(|p| p.fd_count().ok())
            .map(|n| n as u64);
        let database_connections = match &mut self.database {
            Some(database) => database
                .query_strings(
                    "SELECT count(*)::text AS value FROM pg_catalog.pg_stat_activity
                      WHERE datname = current_database() AND usename = current_user
                        AND pid <> pg_catalog.pg_backend_pid()",
                    &[],
                )
                .await
                .ok()
                .and_then(|rows| rows.first()?.parse().ok()),
            None => None,
        };
        Footprint {
            rss_mb,
            open_fds,
            database_connections,
        }
    }
}

/// Holds `config`'s mix on `target` for its duration, one window after
/// another, sampling the footprint in each window's middle.
pub async fn soak(
    target: &mut Target,
    probe: &mut FootprintProbe,
    config: &SoakConfig,
) -> anyhow::Result<SoakReport> {
    let windows = (config.duration.as_secs_f64() / config.window.as_secs_f64())
        .ceil()
        .max(1.0) as u32;
    let mut rows = Vec::new();
    for index in 0..windows {
        // Tokens expire (a service's in 10 minutes): a long soak renews
        // them, so it measures the server, not expired tokens.
        target.renew_tokens_if_due().await?;
        let load = LoadConfig {
            concurrency: config.concurrency,
            connections: config.connections,
            // Only the first window warms up; the next starts as the last
            // one's calls end.
            warmup: if index == 0 {
                config.warmup
            } else {
                Duration::ZERO
            },
            duration: config.window,
            mix: config.mix.clone(),
            probe: None,
        };
        let sample = async {
            tokio::time::sleep(load.warmup + config.window / 2).await;
            probe.sample().await
        };
        let (reports, footprint) = tokio::join!(load::run(&*target, &load), sample);
        let row = window(
            &reports,
            footprint,
            config.window.as_secs_f64() * f64::from(index + 1) / 60.0,
        );
        print_row(&row, index == 0);
        rows.push(row);
    }
    Ok(SoakReport {
        trends_per_10_minutes: trends(&rows),
        windows: rows,
    })
}

fn window(reports: &[ScenarioReport], footprint: Footprint, ends_at_minute: f64) -> SoakWindow {
    let requests: u64 = reports.iter().map(|r| r.requests).sum();
    let seconds = reports.first().map_or(1.0, |r| r.seconds);
    SoakWindow {
        ends_at_minute,
        requests,
        errors: reports.iter().map(|r| r.errors).sum(),
        errors_by_scenario: reports
            .iter()
            .filter(|r| r.errors > 0)
            .map(|r| {
                let errors = ScenarioErrors {
                    by_code: r.error_codes.clone(),
                    samples: r.sample_errors.clone(),
                };
                (r.scenario.name(), errors)
            })
            .collect(),
        per_second: requests as f64 / seconds,
        p99_ms: reports
            .iter()
            .map(|r| (r.scenario.name(), r.p99_ms))
            .collect(),
        footprint,
    }
}

fn trends(rows: &[SoakWindow]) -> Trends {
    let per_10_minutes = |value: &dyn Fn(&SoakWindow) -> Option<f64>| {
        let points: Vec<(f64, f64)> = rows
            .iter()
            .filter_map(|row| Some((row.ends_at_minute, value(row)?)))
            .collect();
        slope(&points).map(|per_minute| per_minute * 10.0)
    };
    let scenarios = rows
        .first()
        .map(|row| row.p99_ms.keys().copied().collect::<Vec<_>>());
    Trends {
        rss_mb: per_10_minutes(&|row| row.footprint.rss_mb),
        open_fds: per_10_minutes(&|row| row.footprint.open_fds.map(|n| n as f64)),
        database_connections: per_10_minutes(&|row| {
            row.footprint.database_connections.map(|n| n as f64)
        }),
        p99_ms: scenarios
            .unwrap_or_default()
            .into_iter()
            .filter_map(|name| Some((name, per_10_minutes(&|row| row.p99_ms.get(name).copied())?)))
            .collect(),
    }
}

/// The least-squares slope of `points`, if there are two distinct x.
fn slope(points: &[(f64, f64)]) -> Option<f64> {
    let n = points.len() as f64;
    let mean_x = points.iter().map(|p| p.0).sum::<f64>() / n;
    let mean_y = points.iter().map(|p| p.1).sum::<f64>() / n;
    let spread: f64 = points.iter().map(|p| (p.0 - mean_x).powi(2)).sum();
    (points.len() > 1 && spread > 0.0).then(|| {
        points
            .iter()
            .map(|p| (p.0 - mean_x) * (p.1 - mean_y))
            .sum::<f64>()
            / spread
    })
}

fn print_row(row: &SoakWindow, header: bool) {
    let shown = |value: Option<f64>, decimals: usize| {
        value.map_or_else(|| "-".to_owned(), |v| format!("{v:.decimals$}"))
    };
    if header {
        let mut line = format!(
            "{:>6} {:>9} {:>7} {:>8} {:>6} {:>9}",
            "minute", "req/s", "errors", "rss MB", "fds", "db conns"
        );
        for name in row.p99_ms.keys() {
            line += &format!(" {:>14}", format!("p99 {name} ms"));
        }
        println!("{line}");
    }
    let mut line = format!(
        "{:>6.2} {:>9.0} {:>7} {:>8} {:>6} {:>9}",
        row.ends_at_minute,
        row.per_second,
        row.errors,
        shown(row.footprint.rss_mb, 1),
        shown(row.footprint.open_fds.map(|n| n as f64), 0),
        shown(row.footprint.database_connections.map(|n| n as f64), 0),
    );
    for p99 in row.p99_ms.values() {
        line += &format!(" {p99:>14.2}");
    }
    println!("{line}");
}

/// The trends as lines under the table.
pub fn print_trends(trends: &Trends) {
    let shown = |value: Option<f64>| value.map_or_else(|| "-".to_owned(), |v| format!("{v:+.2}"));
    println!(
        "trend per 10 minutes: rss {} MB, fds {}, db conns {}",
        shown(trends.rss_mb),
        shown(trends.open_fds),
        shown(trends.database_connections)
    );
    for (name, slope) in &trends.p99_ms {
        println!("trend per 10 minutes: p99 {name} {slope:+.2} ms");
    }
}

#[cfg(test)]
mod tests {
    use super::slope;

    #[test]
    fn a_flat_series_has_no_trend_and_a_rising_one_its_rate() {
        assert_eq!(slope(&[(1.0, 5.0), (2.0, 5.0), (3.0, 5.0)]), Some(0.0));
        assert_eq!(slope(&[(1.0, 1.0), (2.0, 3.0), (3.0, 5.0)]), Some(2.0));
    }

    #[test]
    fn one_point_has_no_trend() {
        assert_eq!(slope(&[(1.0, 5.0)]), None);
    }
}
