//! `portcullis bench seed|load|run`: the benchmark harness.

use clap::{Args, Subcommand};
use secrecy::ExposeSecret;

use super::common::AdminArgs;
use crate::db::Db;
use crate::ops::bench::{self, manifest};
use crate::ops::provision::{self, Environment};
use crate::ops::{admin, cluster, migrate};

#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Provision, migrate and fill the bench database of a profile
    /// (idempotent; deterministic ids).
    Seed {
        #[arg(long, value_enum, default_value = "medium")]
        profile: crate::ops::bench::dataset::Profile,
        #[command(flatten)]
        admin: AdminArgs,
    },
    /// Drive a running server with a mix of requests and report.
    Load {
        #[arg(long, value_enum, default_value = "medium")]
        profile: crate::ops::bench::dataset::Profile,
        /// The server to drive.
        #[arg(long, default_value = "127.0.0.1:50051")]
        addr: String,
        /// Scenario=weight pairs, e.g. check=8,login=1.
        #[arg(long, default_value = "check=1", value_parser = parse_mix)]
        mix: MixArg,
        /// The server's HTTP listener, for the forward_auth scenario.
        #[arg(long)]
        http_addr: Option<String>,
        /// The server's process, for CPU accounting (else the process
        /// listening on --addr's port, when it can be seen).
        #[arg(long)]
        server_pid: Option<u32>,
        /// The server's metrics listener (`serve --metrics-listen`), for
        /// its round trips to PostgreSQL per request.
        #[arg(long)]
        metrics_addr: Option<String>,
        #[command(flatten)]
        load: LoadArgs,
    },
    /// Start a server on the seeded profile, measure every scenario and the
    /// pgbench floor in one run, and report (table and JSON).
    Run {
        #[arg(long, value_enum, default_value = "medium")]
        profile: crate::ops::bench::dataset::Profile,
        /// Where the server under test listens.
        #[arg(long, default_value = "127.0.0.1:50171")]
        listen: String,
        /// Where the server under test answers forward-auth.
        #[arg(long, default_value = "127.0.0.1:50172")]
        http_listen: String,
        /// Where the server under test serves its metrics (read for its
        /// round trips to PostgreSQL).
        #[arg(long, default_value = "127.0.0.1:50173")]
        metrics_listen: String,
        /// Threads the server gives to password hashing.
        #[arg(long, default_value_t = 1)]
        hashing_threads: usize,
        /// The server's pool size (4 measured best on 2 cores, against 8:
        /// listings and batches faster, checks as fast with a lower p99,
        /// exchanges 6 % slower; README, "Issue 21, second round").
        #[arg(long, default_value_t = 4)]
        pool_size: u32,
        /// The server's request threads (1 measured best on 2 cores shared
        /// with PostgreSQL and the load: checks 9 to 24 % faster than on 2,
        /// the rest as fast; README, "Issue 21, third round").
        #[arg(long, default_value_t = 1)]
        server_worker_threads: u16,
        #[command(flatten)]
        load: LoadArgs,
        #[command(flatten)]
        admin: AdminArgs,
    },
}

#[derive(Debug, Args)]
pub struct LoadArgs {
    #[arg(long, default_value_t = 16)]
    pub concurrency: usize,
    /// HTTP/2 connections the calls in flight share, as a gRPC client's
    /// one channel multiplexes its calls (1 measured best on 2 cores:
    /// against one per call in flight, checks 7 to 17 % faster, the
    /// server's CPU per check 12 to 16 % lower; README, "Issue 21, fourth
    /// round").
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..))]
    pub connections: u16,
    /// Measured time per scenario.
    #[arg(long, default_value = "20s")]
    pub duration: humantime::Duration,
    /// Unmeasured time before it.
    #[arg(long, default_value = "3s")]
    pub warmup: humantime::Duration,
}

impl BenchCommand {
    /// `load` and `run` drive a server with this process's own client.
    pub(super) fn generates_load(&self) -> bool {
        matches!(self, Self::Load { .. } | Self::Run { .. })
    }
}

/// Scenario weights for `bench load --mix`.
#[derive(Clone, Debug)]
pub struct MixArg(pub Vec<(crate::ops::bench::load::Scenario, u32)>);

fn parse_mix(raw: &str) -> Result<MixArg, String> {
    use clap::ValueEnum;
    raw.split(',')
        .map(|pair| {
            let (name, weight) = pair.split_once('=').unwrap_or((pair, "1"));
            let scenario = crate::ops::bench::load::Scenario::from_str(name.trim(), true)?;
            let weight = weight
                .trim()
                .parse::<u32>()
                .map_err(|e| format!("{pair}: {e}"))?;
            Ok((scenario, weight))
        })
        .collect::<Result<Vec<_>, String>>()
        .map(MixArg)
}

/// Where the bench keeps its manifests and reports.
const BENCH_DIR: &str = "target/bench";

/// `portcullis bench …`.
pub async fn run(command: BenchCommand) -> anyhow::Result<()> {
    let dir = std::path::Path::new(BENCH_DIR);
    match command {
        BenchCommand::Seed { profile, admin } => {
            let server = cluster::locate(
                admin.admin_url.as_deref(),
                std::path::Path::new("target/portcullis-pg"),
            )
            .await?;
            let names = manifest::names(profile)?;
            let passwords = manifest::passwords()?;
            let dev = provision::Confirmation::default();
            provision::provision(server.url(), Environment::Dev, &names, &passwords, dev).await?;
            let (migration_url, app_url) = manifest::urls(server.url(), profile)?;
            migrate::run(&migration_url).await?;
            let started = std::time::Instant::now();
            // Seeding a large profile runs single statements for minutes.
            let db = Db::new(
                app_url.as_str(),
                &crate::db::PoolSettings {
                    statement_timeout: std::time::Duration::from_secs(3600),
                    ..crate::db::PoolSettings::default()
                },
            )?;
            let hasher = crate::authn::Passwords::new(
                crate::authn::HashCost::OWASP,
                1,
                std::time::Duration::from_secs(30),
            )?;
            let secret = bench::seed::seed(&db, &hasher, profile).await?;
            // The application role may not ANALYZE; the owner may.
            admin::AdminConnection::connect(&migration_url)
                .await?
                .execute("analysing the bench data", "VACUUM ANALYZE")
                .await?;
            bench::filtered::seed(server.url(), profile).await?;
            bench::forward_auth::seed_catalogue(
                &mut bench::filtered::superuser(server.url(), profile).await?,
                profile.shape(),
            )
            .await?;
            let mut shown = app_url.clone();
            let _ = shown.set_password(None);
            let path = manifest::write(
                dir,
                &manifest::Manifest {
                    profile,
                    app_url: shown.to_string(),
                    service_secret: secret.expose_secret().to_owned(),
                },
            )?;
            println!(
                "seeded {} in {:.1?}; manifest {}",
                profile.as_str(),
                started.elapsed(),
                path.display()
            );
        }
        BenchCommand::Load {
            profile,
            addr,
            mix,
            http_addr,
            server_pid,
            metrics_addr,
            load,
        } => {
            let manifest = manifest::read(dir, profile)?;
            let endpoint = tonic::transport::Channel::from_shared(format!("http://{addr}"))?;
            let mut target =
                bench::load::Target::prepare(endpoint, profile.shape(), manifest.service_secret)
                    .await?;
            if let Some(http) = &http_addr {
                target.forward_auth = Some(
                    bench::load::ForwardAuthTarget::prepare(
                        target.channel.clone(),
                        http,
                        profile.shape(),
                    )
                    .await?,
                );
            }
            let server_pid = server_pid.or_else(|| {
                let port = addr.rsplit(':').next()?.parse().ok()?;
                bench::cpu::listening_pid(port)
            });
            let database = url::Url::parse(&manifest.app_url)?;
            let mut probe = bench::cpu::CpuProbe::new(server_pid, Some(&database)).await;
            if let Some(metrics) = &metrics_addr {
                probe = probe.with_server_metrics(metrics);
            }
            let config = bench::load::LoadConfig {
                concurrency: load.concurrency,
                connections: load.connections.into(),
                warmup: load.warmup.into(),
                duration: load.duration.into(),
                mix: mix.0,
                probe: Some(std::sync::Arc::new(probe)),
            };
            let reports = bench::load::run(&target, &config).await;
            print!("{}", bench::report_tables::table(&reports));
            print!("{}", bench::report_tables::cpu_table(&reports));
            println!("{}", serde_json::to_string_pretty(&reports)?);
        }
        BenchCommand::Run {
            profile,
            listen,
            http_listen,
            metrics_listen,
            hashing_threads,
            pool_size,
            server_worker_threads,
            load,
            admin,
        } => {
            let manifest = manifest::read(dir, profile)?;
            let server = cluster::locate(
                admin.admin_url.as_deref(),
                std::path::Path::new("target/portcullis-pg"),
            )
            .await?;
            let report = bench::run::run(bench::run::RunConfig {
                profile,
                app_url: manifest.app_url,
                service_secret: manifest.service_secret,
                concurrency: load.concurrency,
                connections: load.connections.into(),
                warmup: load.warmup.into(),
                duration: load.duration.into(),
                listen,
                http_listen,
                metrics_listen,
                hashing_threads,
                pool_size,
                worker_threads: server_worker_threads,
                report_dir: dir.to_path_buf(),
                admin_url: server.url().clone(),
            })
            .await?;
            println!("{}", serde_json::to_string_pretty(&report)?);
        }
    }
    Ok(())
}
