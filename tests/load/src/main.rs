//! `portcullis-load`: Portcullis's benchmark harness, a binary of its own so
//! the server ships none of it. `seed` fills a bench database; `load` drives
//! a running server; `run` starts one and measures every scenario against
//! the pgbench floor; `soak` holds a mixed load and watches the server's
//! footprint; `compare` measures two server builds in alternation.

// The harness is an edge: it reads the clock itself.
#![allow(clippy::disallowed_methods)]

mod compare;
mod cpu;
mod dataset;
mod filtered;
mod floor;
mod forward_auth;
mod load;
mod manifest;
mod plots;
mod preview;
mod replica;
mod report_tables;
mod run;
mod seed;
mod server;
mod soak;
mod target;
mod watch;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use dataset::Profile;
use load::Scenario;
use server::ServerUnderTest;

#[derive(Debug, Parser)]
#[command(version, about = "Portcullis's benchmark harness")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Provision, migrate and fill the bench database of a profile
    /// (idempotent; deterministic ids).
    Seed {
        #[arg(long, value_enum, default_value = "medium")]
        profile: Profile,
        #[command(flatten)]
        admin: AdminArgs,
    },
    /// Drive a running server with a mix of requests and report.
    Load {
        #[arg(long, value_enum, default_value = "medium")]
        profile: Profile,
        /// The server to drive.
        #[arg(long, default_value = "127.0.0.1:50051")]
        addr: String,
        #[arg(long, default_value = "check=1", value_parser = parse_mix)]
        mix: Mix,
        /// The server's /forward-auth listener, for the forward_auth scenario.
        #[arg(long)]
        forward_auth_addr: Option<String>,
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
        profile: Profile,
        #[command(flatten)]
        server: ServerArgs,
        #[command(flatten)]
        load: LoadArgs,
        #[command(flatten)]
        admin: AdminArgs,
    },
    /// Start a server on the seeded profile and hold a mixed load on it,
    /// reporting per window its throughput, p99s, resident memory, open
    /// file descriptors and connections to PostgreSQL, then their trends.
    Soak {
        #[arg(long, value_enum, default_value = "medium")]
        profile: Profile,
        /// How long to hold the load.
        #[arg(long, default_value = "10m")]
        soak_for: humantime::Duration,
        /// One row of the report per window.
        #[arg(long, default_value = "1m")]
        window: humantime::Duration,
        #[arg(
            long,
            default_value = "check=20,batch=1,list_first=2,list_deep=1,list_users=1,exchange=2,forward_auth=4,login=1",
            value_parser = parse_mix
        )]
        mix: Mix,
        #[command(flatten)]
        server: ServerArgs,
        #[command(flatten)]
        load: LoadArgs,
    },
    /// Measure two server builds under the same load, alternately (A B,
    /// B A, …), and report B's throughput against A's per round.
    Compare {
        #[arg(long, value_enum, default_value = "medium")]
        profile: Profile,
        /// Build A's `portcullis` binary (the baseline).
        #[arg(long)]
        a: PathBuf,
        /// Build B's `portcullis` binary.
        #[arg(long)]
        b: PathBuf,
        #[arg(long, default_value_t = 6)]
        rounds: u32,
        #[arg(long, default_value = "check=1", value_parser = parse_mix)]
        mix: Mix,
        #[command(flatten)]
        server: ServerArgs,
        #[command(flatten)]
        load: LoadArgs,
    },
    /// Checks with a streaming hot standby against today's path, in
    /// rotation: a primary and standby of the harness's own under target/
    /// (seeded on first use), a concurrent write stream, and checks that
    /// present the newest write's consistency token (B) or nothing (C).
    /// Reports the throughput ratios, where the checks were answered, their
    /// staleness and the waits.
    Replica {
        #[arg(long, value_enum, default_value = "medium")]
        profile: Profile,
        #[arg(long, default_value_t = 4)]
        rounds: u32,
        /// One write (a credential exchange) this often.
        #[arg(long, default_value = "20ms")]
        write_every: humantime::Duration,
        #[command(flatten)]
        server: ServerArgs,
        #[command(flatten)]
        load: LoadArgs,
    },
    /// The change stream: delivery lag from commit to a consumer, and the
    /// server's memory under a consumer that stopped reading.
    Watch(watch::WatchArgs),
    /// What-if previews: one assignment, and a subtree move that 10,000
    /// users' access depends on, through a server on the seeded profile.
    Preview {
        #[arg(long, value_enum, default_value = "medium")]
        profile: Profile,
        /// Previews of one assignment.
        #[arg(long, default_value_t = 200)]
        samples: u32,
        /// Previews of the move.
        #[arg(long, default_value_t = 10)]
        moves: u32,
        #[command(flatten)]
        server: ServerArgs,
        #[command(flatten)]
        admin: AdminArgs,
    },
}

/// A superuser of the cluster, to provision and to measure without
/// row-level security.
#[derive(Debug, Args)]
struct AdminArgs {
    /// [default: postgres://postgres@127.0.0.1:5432/postgres, or the dev
    /// cluster under target/]
    #[arg(long, env = "PORTCULLIS_ADMIN_URL", hide_env_values = true)]
    admin_url: Option<String>,
}

/// The server the harness starts.
#[derive(Debug, Args)]
struct ServerArgs {
    /// The `portcullis` binary [default: the one beside this binary].
    #[arg(long)]
    server_bin: Option<PathBuf>,
    /// Where the server under test listens.
    #[arg(long, default_value = "127.0.0.1:50171")]
    listen: String,
    /// Where the server under test answers /forward-auth.
    #[arg(long, default_value = "127.0.0.1:50172")]
    forward_auth_listen: String,
    /// Where the server under test serves its metrics (read for its round
    /// trips to PostgreSQL).
    #[arg(long, default_value = "127.0.0.1:50173")]
    metrics_listen: String,
    /// Threads the server gives to password hashing.
    #[arg(long, default_value_t = 1)]
    hashing_threads: usize,
    /// The server's pool size (4 measured best on 2 cores; see the
    /// performance log).
    #[arg(long, default_value_t = 4)]
    pool_size: u32,
    /// The server's request threads (1 measured best on 2 cores shared
    /// with PostgreSQL and the load; see the performance log).
    #[arg(long, default_value_t = 1)]
    server_worker_threads: u16,
}

#[derive(Debug, Args)]
struct LoadArgs {
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// HTTP/2 connections the calls in flight share, as a gRPC client's one
    /// channel multiplexes its calls (1 measured best on 2 cores).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..))]
    connections: u16,
    /// Measured time per scenario (per round for compare).
    #[arg(long, default_value = "20s")]
    duration: humantime::Duration,
    /// Unmeasured time before it.
    #[arg(long, default_value = "3s")]
    warmup: humantime::Duration,
}

/// Scenario weights, e.g. `check=8,login=1` (names as the reports print
/// them).
#[derive(Clone, Debug)]
struct Mix(Vec<(Scenario, u32)>);

fn parse_mix(raw: &str) -> Result<Mix, String> {
    use clap::ValueEnum;
    raw.split(',')
        .map(|pair| {
            let (name, weight) = pair.split_once('=').unwrap_or((pair, "1"));
            // The reports' names (list_first) or clap's (list-first).
            let scenario = Scenario::from_str(&name.trim().replace('_', "-"), true)?;
            let weight = weight
                .trim()
                .parse::<u32>()
                .map_err(|e| format!("{pair}: {e}"))?;
            Ok((scenario, weight))
        })
        .collect::<Result<Vec<_>, String>>()
        .map(Mix)
}

/// Where the harness keeps its manifests and reports.
const BENCH_DIR: &str = "target/bench";

/// The longest soak window: tokens are renewed between windows, and a
/// service's token lives 10 minutes.
const MAX_WINDOW: std::time::Duration = std::time::Duration::from_secs(5 * 60);

impl LoadArgs {
    /// One measurement runs on the tokens it started with: it must end
    /// before the service's token (10 minutes) does.
    fn within_token_lifetime(&self) -> anyhow::Result<()> {
        let total = *self.warmup + *self.duration;
        anyhow::ensure!(
            total <= std::time::Duration::from_secs(9 * 60),
            "--warmup plus --duration: at most 9m, as the tokens the load starts with expire \
             after 10 (a longer load is a soak: `portcullis-load soak` renews them every window)"
        );
        Ok(())
    }
}

impl ServerArgs {
    fn server(&self, app_url: String) -> anyhow::Result<ServerUnderTest> {
        Ok(ServerUnderTest {
            binary: match &self.server_bin {
                Some(binary) => binary.clone(),
                None => server::sibling_binary()?,
            },
            app_url,
            read_url: None,
            listen: self.listen.clone(),
            forward_auth_listen: self.forward_auth_listen.clone(),
            metrics_listen: self.metrics_listen.clone(),
            hashing_threads: self.hashing_threads,
            pool_size: self.pool_size,
            worker_threads: self.server_worker_threads,
        })
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("PORTCULLIS_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    // The load's client on one thread takes as little of the machine's CPU
    // as it can (a third less per check than on two; see the performance
    // log); seeding uses every core.
    if !matches!(cli.command, Command::Seed { .. }) {
        runtime.worker_threads(1);
    }
    let outcome = match runtime.enable_all().build() {
        Ok(runtime) => runtime.block_on(run(cli.command)),
        Err(error) => Err(error.into()),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(command: Command) -> anyhow::Result<()> {
    let dir = Path::new(BENCH_DIR);
    match command {
        Command::Seed { profile, admin } => {
            seed::seed_profile(admin.admin_url.as_deref(), profile, dir).await
        }
        Command::Load {
            profile,
            addr,
            mix,
            forward_auth_addr,
            server_pid,
            metrics_addr,
            load,
        } => {
            load.within_token_lifetime()?;
            let manifest = manifest::read(dir, profile)?;
            let endpoint = tonic::transport::Channel::from_shared(format!("http://{addr}"))?;
            let mut target =
                load::Target::prepare(endpoint, profile.shape(), manifest.service_secret).await?;
            if let Some(http) = &forward_auth_addr {
                target.add_forward_auth(http).await?;
            }
            let server_pid = server_pid.or_else(|| {
                let port = addr.rsplit(':').next()?.parse().ok()?;
                cpu::listening_pid(port)
            });
            let database = url::Url::parse(&manifest.app_url)?;
            let mut probe = cpu::CpuProbe::new(server_pid, Some(&database)).await;
            if let Some(metrics) = &metrics_addr {
                probe = probe.with_server_metrics(metrics);
            }
            let config = load::LoadConfig {
                probe: Some(std::sync::Arc::new(probe)),
                ..load.config(mix.0)
            };
            let reports = load::run(&target, &config).await;
            print!("{}", report_tables::table(&reports));
            print!("{}", report_tables::cpu_table(&reports));
            println!("{}", serde_json::to_string_pretty(&reports)?);
            Ok(())
        }
        Command::Run {
            profile,
            server,
            load,
            admin,
        } => {
            load.within_token_lifetime()?;
            let manifest = manifest::read(dir, profile)?;
            let cluster = portcullis::ops::cluster::locate(
                admin.admin_url.as_deref(),
                Path::new("target/portcullis-pg"),
            )
            .await?;
            let report = run::run(run::RunConfig {
                profile,
                server: server.server(manifest.app_url)?,
                service_secret: manifest.service_secret,
                concurrency: load.concurrency,
                connections: load.connections.into(),
                warmup: load.warmup.into(),
                duration: load.duration.into(),
                report_dir: dir.to_path_buf(),
                admin_url: cluster.url().clone(),
            })
            .await?;
            println!("{}", serde_json::to_string_pretty(&report)?);
            Ok(())
        }
        Command::Soak {
            profile,
            soak_for,
            window,
            mix,
            server,
            load,
        } => {
            let manifest = manifest::read(dir, profile)?;
            let database = url::Url::parse(&manifest.app_url)?;
            let server = server.server(manifest.app_url)?;
            let (running, channel) = server.start().await?;
            drop(channel);
            let window: std::time::Duration = window.into();
            anyhow::ensure!(
                window <= MAX_WINDOW,
                "--window: at most 5m, so every window ends before the tokens renewed at its \
                 start expire (a service token lives 10 minutes)"
            );
            let mut target =
                load::Target::prepare_for(&server, profile.shape(), &manifest.service_secret)
                    .await?;
            let mut probe = soak::FootprintProbe::new(running.pid(), &database).await;
            let config = soak::SoakConfig {
                duration: soak_for.into(),
                window,
                warmup: load.warmup.into(),
                concurrency: load.concurrency,
                connections: load.connections.into(),
                mix: mix.0,
            };
            let report = soak::soak(&mut target, &mut probe, &config).await;
            running.stop().await;
            let report = report?;
            soak::print_trends(&report.trends_per_10_minutes);
            std::fs::create_dir_all(dir)?;
            let path = dir.join(format!("soak-{}.json", profile.as_str()));
            std::fs::write(&path, serde_json::to_string_pretty(&report)?)?;
            println!("report written to {}", path.display());
            Ok(())
        }
        Command::Compare {
            profile,
            a,
            b,
            rounds,
            mix,
            server,
            load,
        } => {
            load.within_token_lifetime()?;
            let manifest = manifest::read(dir, profile)?;
            let comparison = compare::compare(&compare::CompareConfig {
                a,
                b,
                rounds,
                server: server.server(manifest.app_url)?,
                shape: profile.shape(),
                service_secret: manifest.service_secret,
                concurrency: load.concurrency,
                connections: load.connections.into(),
                warmup: load.warmup.into(),
                duration: load.duration.into(),
                mix: mix.0,
            })
            .await?;
            println!(
                "B/A throughput: {:.3} (geometric mean of {} rounds; range {:.3} to {:.3})",
                comparison.b_to_a,
                comparison.rounds.len(),
                comparison.b_to_a_min,
                comparison.b_to_a_max
            );
            println!("{}", serde_json::to_string_pretty(&comparison)?);
            Ok(())
        }
        Command::Watch(args) => watch::run(args).await,
        Command::Preview {
            profile,
            samples,
            moves,
            server,
            admin,
        } => {
            let manifest = manifest::read(dir, profile)?;
            let cluster = portcullis::ops::cluster::locate(
                admin.admin_url.as_deref(),
                Path::new("target/portcullis-pg"),
            )
            .await?;
            let report = preview::run(preview::PreviewConfig {
                profile,
                server: server.server(manifest.app_url)?,
                admin_url: cluster.url().clone(),
                samples,
                moves,
            })
            .await?;
            println!("{}", serde_json::to_string_pretty(&report)?);
            Ok(())
        }
        Command::Replica {
            profile,
            rounds,
            write_every,
            server,
            load,
        } => {
            load.within_token_lifetime()?;
            let report = replica::run(replica::ReplicaConfig {
                profile,
                rounds,
                // The app URL is the replicated primary's, set by the run.
                server: server.server(String::new())?,
                load: load.config(vec![(Scenario::Check, 1)]),
                write_every: write_every.into(),
                dir: replica::dir(dir),
            })
            .await?;
            println!(
                "B/A throughput: {:.3} (geometric mean of {} rounds; range {:.3} to {:.3}); C/A {:.3}",
                report.b_to_a,
                report.rounds.len(),
                report.b_to_a_min,
                report.b_to_a_max,
                report.c_to_a
            );
            let json = serde_json::to_string_pretty(&report)?;
            std::fs::create_dir_all(dir)?;
            let path = dir.join(format!("replica-{}.json", profile.as_str()));
            std::fs::write(&path, &json)?;
            println!("{json}\nreport written to {}", path.display());
            Ok(())
        }
    }
}

impl LoadArgs {
    fn config(&self, mix: Vec<(Scenario, u32)>) -> load::LoadConfig {
        load::LoadConfig {
            concurrency: self.concurrency,
            connections: self.connections.into(),
            warmup: self.warmup.into(),
            duration: self.duration.into(),
            mix,
            probe: None,
        }
    }
}
