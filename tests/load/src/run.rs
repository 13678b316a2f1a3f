//! `portcullis-load run`: starts a server process on the seeded bench
//! database, drives each scenario, runs the pgbench floor at the same
//! concurrency just before and just after the check scenario, and reports
//! the ratios the targets name.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::cpu::CpuProbe;
use super::dataset::{Profile, Shape};
use super::filtered::{self, FilteredQuery};
use super::floor::{Floor, floor};
use super::load::{self, LoadConfig, Scenario, ScenarioReport, Target};
use super::report_tables;
use super::server::{RunningServer, ServerUnderTest};
use portcullis::authn::{HashCost, Passwords};

pub struct RunConfig {
    pub profile: Profile,
    pub server: ServerUnderTest,
    pub service_secret: String,
    pub concurrency: usize,
    /// HTTP/2 connections the load's calls in flight share.
    pub connections: usize,
    pub warmup: Duration,
    pub duration: Duration,
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
    let (server, channel) = config.server.start().await?;
    drop(channel);
    let outcome = measure(&config, shape, &server).await;
    server.stop().await;
    let report = outcome?;
    std::fs::create_dir_all(&config.report_dir)?;
    let path = config
        .report_dir
        .join(format!("report-{}.json", config.profile.as_str()));
    std::fs::write(&path, serde_json::to_string_pretty(&report)?)?;
    println!("report written to {}", path.display());
    for plot in crate::plots::write(&report, &config.report_dir)? {
        println!("plot written to {}", plot.display());
    }
    Ok(report)
}

async fn measure(
    config: &RunConfig,
    shape: Shape,
    server: &RunningServer,
) -> anyhow::Result<RunReport> {
    println!("preparing (service token, deep page tokens)…");
    let mut target = Target::prepare_for(&config.server, shape, &config.service_secret).await?;
    let database = url::Url::parse(&config.server.app_url)?;
    let probe = Arc::new(
        CpuProbe::new(server.pid(), Some(&database))
            .await
            .with_server_metrics(&config.server.metrics_listen),
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
            &config.server.app_url,
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
    // One scenario alone, with its CPU accounted.
    let alone = |scenario, concurrency| load(scenario, concurrency, Some(&probe));
    let floor_before = measure_floor().await;
    let mut scenarios = measured(&mut target, alone(Scenario::Check, config.concurrency)).await?;
    let floor = measure_floor().await;
    for scenario in [
        Scenario::ForwardAuth,
        Scenario::Batch,
        Scenario::ListFirst,
        Scenario::ListDeep,
        Scenario::ListUsers,
        Scenario::Exchange,
    ] {
        scenarios.extend(measured(&mut target, alone(scenario, config.concurrency)).await?);
    }
    print!("{}", report_tables::cpu_table(&scenarios));

    // Logins alone: what the hashing threads deliver against what argon2
    // allows on them.
    let logins = measured(
        &mut target,
        alone(Scenario::Login, config.server.hashing_threads * 4),
    )
    .await?;
    target.renew_tokens_if_due().await?;
    // Logins saturating the hashing pool, with checks running beside them.
    let storm_config = load(Scenario::Login, config.server.hashing_threads * 4, None);
    let checks_config = load(Scenario::Check, config.concurrency, None);
    let (storm, checks) = tokio::join!(
        load::run(&target, &storm_config),
        load::run(&target, &checks_config)
    );
    print!(
        "{}",
        report_tables::table(&[storm.clone(), checks.clone()].concat())
    );

    let rss = server.pid().and_then(resident_mb);
    let filtered_query = filtered::measure(&config.admin_url, config.profile, 30).await;
    if let Err(error) = &filtered_query {
        eprintln!("filtered query not measured: {error:#}");
    }
    let filtered_query = filtered_query.ok();

    let capacity = argon2_capacity(config.server.hashing_threads).await?;
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
        server_pool_size: config.server.pool_size,
        server_worker_threads: config.server.worker_threads,
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

/// `config`'s load on `target`, its table printed; the tokens renewed
/// first when due (a run outlives a token).
async fn measured(target: &mut Target, config: LoadConfig) -> anyhow::Result<Vec<ScenarioReport>> {
    target.renew_tokens_if_due().await?;
    let report = load::run(target, &config).await;
    print!("{}", report_tables::table(&report));
    Ok(report)
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
