//! `portcullis bench run`: starts a server process on the seeded bench
//! database, drives each scenario, runs the pgbench floor at the same
//! concurrency just before and just after the check scenario, and reports
//! the ratios the targets name.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde::Serialize;
use tokio::process::{Child, Command};

use super::cpu::CpuProbe;
use super::dataset::{Profile, Shape};
use super::filtered::{self, FilteredQuery};
use super::floor::{Floor, floor};
use super::load::{self, ForwardAuthTarget, LoadConfig, Scenario, ScenarioReport, Target};
use super::report_tables;
use crate::authn::{HashCost, Passwords};

pub struct RunConfig {
    pub profile: Profile,
    pub app_url: String,
    pub service_secret: String,
    pub concurrency: usize,
    /// HTTP/2 connections the load's calls in flight share.
    pub connections: usize,
    pub warmup: Duration,
    pub duration: Duration,
    pub listen: String,
    /// The server's HTTP listener (forward-auth).
    pub http_listen: String,
    /// Where it serves its metrics.
    pub metrics_listen: String,
    pub hashing_threads: usize,
    pub pool_size: u32,
    /// The server's request threads.
    pub worker_threads: u16,
    pub report_dir: PathBuf,
    /// A superuser of the server (the filtered query's literal variant runs
    /// without row-level security).
    pub admin_url: url::Url,
}

#[derive(Debug, Serialize)]
pub struct RunReport {
    pub profile: Profile,
    pub machine: String,
    /// The server under test's pool size and request threads.
    pub server_pool_size: u32,
    pub server_worker_threads: u16,
    pub scenarios: Vec<ScenarioReport>,
    /// CheckCapability while logins saturate the hashing pool.
    pub check_during_login_storm: Option<ScenarioReport>,
    pub login_storm: Option<ScenarioReport>,
    /// Logins with nothing else running.
    pub login_alone: Option<ScenarioReport>,
    /// The floor just before the check scenario and just after it; the
    /// ratios are against the mean of the two.
    pub floor_before: Option<Floor>,
    pub floor: Option<Floor>,
    pub check_to_floor: Option<f64>,
    /// PostgreSQL's CPU per check against its CPU per floor transaction.
    pub check_postgres_cpu_to_floor: Option<f64>,
    /// The server's CPU per forward-auth decision against per gRPC check.
    pub forward_auth_to_check_server_cpu: Option<f64>,
    pub server_rss_mb: Option<f64>,
    pub argon2_logins_per_second_capacity: f64,
    pub login_to_capacity: Option<f64>,
    /// Another service's filtered query under Portcullis's policy, against
    /// the same query with the allowed nodes as a literal list.
    pub filtered_query: Option<FilteredQuery>,
}

pub async fn run(config: RunConfig) -> anyhow::Result<RunReport> {
    let shape = config.profile.shape();
    let keys = std::env::temp_dir().join(format!(
        "portcullis-bench-keys-{}",
        uuid::Uuid::new_v4().simple()
    ));
    crate::tokens::keys::generate_key_file(
        &keys,
        chrono::Utc::now() - chrono::Duration::minutes(1),
    )?;
    let mut server = spawn_server(&config, &keys)?;
    let outcome = measure(&config, shape, &mut server).await;
    let _ = server.start_kill();
    let _ = server.wait().await;
    let _ = std::fs::remove_dir_all(&keys);
    let report = outcome?;
    std::fs::create_dir_all(&config.report_dir)?;
    let path = config
        .report_dir
        .join(format!("report-{}.json", config.profile.as_str()));
    std::fs::write(&path, serde_json::to_string_pretty(&report)?)?;
    println!("report written to {}", path.display());
    Ok(report)
}

fn spawn_server(config: &RunConfig, keys: &Path) -> anyhow::Result<Child> {
    let exe = std::env::current_exe().context("finding the portcullis binary")?;
    Command::new(exe)
        .arg("serve")
        .env("PORTCULLIS_DATABASE_URL", &config.app_url)
        .env("PORTCULLIS_SIGNING_KEYS_DIR", keys)
        .env("PORTCULLIS_LISTEN", &config.listen)
        .env("PORTCULLIS_HTTP_LISTEN", &config.http_listen)
        // The harness asks /forward-auth as nginx does.
        .env("PORTCULLIS_FORWARD_AUTH_MODE", "nginx")
        .env("PORTCULLIS_METRICS_LISTEN", &config.metrics_listen)
        .env("PORTCULLIS_POOL_SIZE", config.pool_size.to_string())
        .env(
            "PORTCULLIS_WORKER_THREADS",
            config.worker_threads.to_string(),
        )
        .env(
            "PORTCULLIS_HASHING_THREADS",
            config.hashing_threads.to_string(),
        )
        .env("PORTCULLIS_HASHING_QUEUE_TIMEOUT", "60s")
        // The load logs in as the same few users over and over.
        .env("PORTCULLIS_LOGIN_FAILURES_BEFORE_LOCK", "1000000")
        .env("PORTCULLIS_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .context("starting portcullis serve")
}

/// Waits until the server answers health checks with SERVING.
async fn connect(listen: &str) -> anyhow::Result<tonic::transport::Channel> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let endpoint = tonic::transport::Channel::from_shared(format!("http://{listen}"))?;
        match endpoint.connect().await {
            Ok(channel) => {
                let health = tonic_health::pb::health_client::HealthClient::new(channel.clone())
                    .check(tonic_health::pb::HealthCheckRequest::default())
                    .await;
                if health.is_ok_and(|h| h.into_inner().status == 1) {
                    // Let the revocation list make its first sync.
                    tokio::time::sleep(Duration::from_millis(1500)).await;
                    return Ok(channel);
                }
            }
            Err(_) if Instant::now() < deadline => {}
            Err(error) => return Err(error.into()),
        }
        if Instant::now() > deadline {
            bail!("the server did not become healthy");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn measure(
    config: &RunConfig,
    shape: Shape,
    server: &mut Child,
) -> anyhow::Result<RunReport> {
    connect(&config.listen).await?;
    println!("preparing (service token, deep page tokens)…");
    let endpoint = tonic::transport::Channel::from_shared(format!("http://{}", config.listen))?;
    let mut target = Target::prepare(endpoint, shape, config.service_secret.clone()).await?;
    target.forward_auth =
        Some(ForwardAuthTarget::prepare(target.channel.clone(), &config.http_listen, shape).await?);
    let database = url::Url::parse(&config.app_url)?;
    let probe = Arc::new(
        CpuProbe::new(server.id(), Some(&database))
            .await
            .with_server_metrics(&config.metrics_listen),
    );
    let load = |scenario, concurrency, probe: Option<&Arc<CpuProbe>>| LoadConfig {
        concurrency,
        connections: config.connections,
        warmup: config.warmup,
        duration: config.duration,
        mix: vec![(scenario, 1)],
        probe: probe.cloned(),
    };
    // The floor brackets the check, measured just before and just after it:
    // this machine's speed drifts within minutes, so the ratios the targets
    // name compare the check with the floor of the same minutes.
    let measure_floor = || async {
        let measured = floor(
            &config.app_url,
            config.concurrency,
            config.duration,
            shape,
            &probe,
        )
        .await;
        if let Err(error) = &measured {
            eprintln!("pgbench floor not measured: {error:#}");
        }
        measured.ok()
    };
    // One scenario alone, with its CPU accounted, its table printed.
    let measure_scenario = |scenario, concurrency| {
        let (target, config) = (&target, load(scenario, concurrency, Some(&probe)));
        async move {
            let report = load::run(target, &config).await;
            print!("{}", report_tables::table(&report));
            report
        }
    };
    let floor_before = measure_floor().await;
    let mut scenarios = measure_scenario(Scenario::Check, config.concurrency).await;
    let floor = measure_floor().await;
    for scenario in [
        Scenario::ForwardAuth,
        Scenario::Batch,
        Scenario::ListFirst,
        Scenario::ListDeep,
        Scenario::ListUsers,
        Scenario::Exchange,
    ] {
        scenarios.extend(measure_scenario(scenario, config.concurrency).await);
    }
    print!("{}", report_tables::cpu_table(&scenarios));

    // Logins alone: what the hashing threads deliver against what argon2
    // allows on them.
    let logins = measure_scenario(Scenario::Login, config.hashing_threads * 4).await;
    // Logins saturating the hashing pool, with checks running beside them.
    let storm_config = load(Scenario::Login, config.hashing_threads * 4, None);
    let checks_config = load(Scenario::Check, config.concurrency, None);
    let (storm, checks) = tokio::join!(
        load::run(&target, &storm_config),
        load::run(&target, &checks_config)
    );
    print!(
        "{}",
        report_tables::table(&[storm.clone(), checks.clone()].concat())
    );

    let rss = server.id().and_then(resident_mb);
    let filtered_query = filtered::measure(&config.admin_url, config.profile, 30).await;
    if let Err(error) = &filtered_query {
        eprintln!("filtered query not measured: {error:#}");
    }
    let filtered_query = filtered_query.ok();

    let capacity = argon2_capacity(config.hashing_threads).await?;
    let of = |scenario| scenarios.iter().find(|r| r.scenario == scenario);
    let check_rps = of(Scenario::Check).map(|r| r.per_second);
    let check_cpu = of(Scenario::Check).and_then(|r| r.cpu.as_ref());
    let forward_auth_cpu = of(Scenario::ForwardAuth).and_then(|r| r.cpu.as_ref());
    let forward_auth_to_check_server_cpu = forward_auth_cpu.zip(check_cpu).map(|(http, grpc)| {
        http.server_seconds_per_1k_requests / grpc.server_seconds_per_1k_requests
    });
    let floors = [floor_before.as_ref(), floor.as_ref()];
    let check_postgres_cpu_to_floor = check_cpu
        .zip(mean(floors.map(|f| {
            f.and_then(|f| f.postgres_seconds_per_1k_transactions)
        })))
        .map(|(check, floor)| check.postgres_seconds_per_1k_requests / floor);
    if let Some(ratio) = forward_auth_to_check_server_cpu {
        println!("server CPU per forward-auth decision / per gRPC check: {ratio:.2}×");
    }
    if let Some(ratio) = check_postgres_cpu_to_floor {
        println!("PostgreSQL CPU per check / per floor transaction: {ratio:.2}×");
    }
    let login = logins.into_iter().next();
    Ok(RunReport {
        profile: config.profile,
        machine: machine(),
        server_pool_size: config.pool_size,
        server_worker_threads: config.worker_threads,
        check_postgres_cpu_to_floor,
        forward_auth_to_check_server_cpu,
        check_to_floor: check_rps
            .zip(mean(floors.map(|f| f.map(|f| f.transactions_per_second))))
            .map(|(rps, floor)| rps / floor),
        login_to_capacity: login.as_ref().map(|l| l.per_second / capacity),
        argon2_logins_per_second_capacity: capacity,
        check_during_login_storm: checks.into_iter().next(),
        login_storm: storm.into_iter().next(),
        login_alone: login,
        scenarios,
        floor_before,
        floor,
        server_rss_mb: rss,
        filtered_query,
    })
}

/// The mean of the values measured, if any was.
fn mean<const N: usize>(values: [Option<f64>; N]) -> Option<f64> {
    let measured: Vec<f64> = values.into_iter().flatten().collect();
    (!measured.is_empty()).then(|| measured.iter().sum::<f64>() / measured.len() as f64)
}

/// What the argon2 parameters allow: one thread's hashing rate measured
/// here, times the threads given to hashing.
async fn argon2_capacity(threads: usize) -> anyhow::Result<f64> {
    let passwords = Passwords::new(HashCost::OWASP, 1, Duration::from_secs(60))?;
    let password = secrecy::SecretString::from("calibration password");
    let stored = passwords.hash(&password).await?;
    let rounds = 10;
    let started = Instant::now();
    for _ in 0..rounds {
        passwords.verify(&password, Some(&stored)).await?;
    }
    let per_hash = started.elapsed().as_secs_f64() / f64::from(rounds);
    Ok(threads as f64 / per_hash)
}

fn resident_mb(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    Some(kib / 1024.0)
}

fn machine() -> String {
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines().find_map(|l| {
                l.strip_prefix("model name")
                    .map(|m| m.trim_start_matches([' ', '\t', ':']).to_owned())
            })
        })
        .unwrap_or_default();
    format!("{cpus} CPUs ({model}); client, server and PostgreSQL on the same machine")
}

#[cfg(test)]
mod tests {
    use super::mean;

    #[test]
    fn the_floor_is_the_mean_of_the_floors_measured() {
        assert_eq!(mean([Some(10.0), Some(20.0)]), Some(15.0));
        assert_eq!(mean([None, Some(20.0)]), Some(20.0));
        assert_eq!(mean::<2>([None, None]), None);
    }
}
