//! The `portcullis` command: one file per command, each holding its
//! arguments and its `run`; `main` only parses and dispatches.

// The edge: commands read the clock and pass `now` in.
#![allow(clippy::disallowed_methods)]

mod assert;
mod common;
mod db;
mod dev;
mod directory;
mod gateways;
mod keys;
mod org;
mod preview;
mod serve;
mod service;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use self::common::DatabaseArgs;
use self::db::DbCommand;
use self::dev::DevArgs;
use self::directory::{AssignArgs, InviteArgs, RoleCommand, TenantCommand, UserCommand};
use self::keys::KeysCommand;
use self::org::OrgCommand;
use self::serve::ServeArgs;
use self::service::ServiceCommand;
use crate::telemetry;

#[derive(Debug, Parser)]
#[command(name = "portcullis", version, about, propagate_version = true)]
pub struct Cli {
    /// Log lines as JSON or text [default: json for serve, text otherwise].
    #[arg(long, global = true, env = "PORTCULLIS_LOG_FORMAT", value_enum)]
    pub log_format: Option<crate::telemetry::LogFormat>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the gRPC API.
    Serve(ServeArgs),
    /// Newcomer's one command: find or start PostgreSQL, provision and
    /// migrate the `dev` database, seed demo data, serve, print grpcurl lines.
    Dev(DevArgs),
    /// Database administration.
    #[command(subcommand)]
    Db(DbCommand),
    /// Seed the demo tenant (idempotent), as the application role.
    SeedDemo(DatabaseArgs),
    /// Signing keys.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Service accounts.
    #[command(subcommand)]
    Service(ServiceCommand),
    /// Users.
    #[command(subcommand)]
    User(UserCommand),
    /// Tenants, through the same code as the Administration API.
    #[command(subcommand)]
    Tenant(TenantCommand),
    /// The org tree, through the same code as the Administration API
    /// (audited as `system`).
    #[command(subcommand)]
    Org(OrgCommand),
    /// Roles.
    #[command(subcommand)]
    Role(RoleCommand),
    /// Give a user a role at an org node (prints the assignment id).
    Assign(AssignArgs),
    /// Invite an email or phone to a role at an org node (prints the
    /// invite token, shown once).
    Invite(InviteArgs),
    /// Check access assertions (YAML) against the database, read-only;
    /// exits non-zero if any fails.
    Assert(assert::AssertArgs),
}

impl Command {
    /// Tokio's worker threads: as configured for the commands that serve;
    /// else one per core.
    fn worker_threads(&self) -> Option<usize> {
        match self {
            Self::Serve(ServeArgs { server, .. }) | Self::Dev(DevArgs { server, .. }) => {
                server.worker_threads.map(usize::from)
            }
            _ => None,
        }
    }

    /// Where this command's traces go: only the commands that serve export.
    fn telemetry(&self) -> Option<&serve::TelemetryArgs> {
        match self {
            Self::Serve(args) => Some(&args.telemetry),
            Self::Dev(args) => Some(&args.telemetry),
            _ => None,
        }
    }
}

/// Parses the command line and runs the command on a runtime sized for it.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    if let Some(threads) = cli.command.worker_threads() {
        runtime.worker_threads(threads);
    }
    match runtime.enable_all().build() {
        Ok(runtime) => runtime.block_on(start(cli)),
        Err(error) => {
            eprintln!("error: cannot start the runtime: {error}");
            ExitCode::FAILURE
        }
    }
}

/// Starts logging (and tracing where it applies), runs the command.
async fn start(cli: Cli) -> ExitCode {
    let default_format = match cli.command {
        Command::Serve(_) => telemetry::LogFormat::Json,
        _ => telemetry::LogFormat::Text,
    };
    let traces = cli.command.telemetry();
    let settings = telemetry::TelemetrySettings {
        format: cli.log_format.unwrap_or(default_format),
        otlp_endpoint: traces.and_then(|t| t.otlp_endpoint.clone()),
        sample_ratio: traces.map_or(1.0, |t| t.trace_sample_ratio),
        environment: traces.map_or_else(|| "unknown".to_owned(), |t| t.environment.clone()),
    };
    let _telemetry = match telemetry::init(&settings) {
        Ok(telemetry) => telemetry,
        Err(error) => {
            eprintln!("error: {error}");
            return ExitCode::FAILURE;
        }
    };
    match run(cli.command).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Serve(args) => serve::run(args).await,
        Command::Dev(args) => dev::run(args).await,
        Command::Db(command) => db::run(command).await,
        Command::SeedDemo(args) => dev::seed_demo(args).await,
        Command::Keys(command) => keys::run(command).await,
        Command::Service(command) => service::run(command).await,
        Command::User(command) => directory::user(command).await,
        Command::Tenant(command) => directory::tenant(command).await,
        Command::Org(command) => org::run(command).await,
        Command::Role(command) => directory::role(command).await,
        Command::Assign(args) => directory::assign(args).await,
        Command::Invite(args) => directory::invite(args).await,
        Command::Assert(args) => assert::run(args).await,
    }
}

#[cfg(test)]
mod tests {
    use super::Cli;
    use clap::Parser;

    const SERVE: [&str; 6] = [
        "portcullis",
        "serve",
        "--signing-keys-dir",
        "/keys",
        "--database-url",
        "postgres://localhost/db",
    ];

    fn serve_with(more: &[&'static str]) -> Vec<&'static str> {
        [&SERVE[..], more].concat()
    }

    fn worker_threads(args: &[&str]) -> Option<usize> {
        let cli = Cli::try_parse_from(args.iter().copied()).unwrap_or_else(|e| panic!("{e}"));
        cli.command.worker_threads()
    }

    #[test]
    fn serve_runs_on_the_configured_threads_else_one_per_core() {
        assert_eq!(worker_threads(&SERVE), None);
        assert_eq!(
            worker_threads(&serve_with(&["--worker-threads", "3"])),
            Some(3)
        );
    }

    #[test]
    fn zero_worker_threads_is_refused() {
        assert!(Cli::try_parse_from(serve_with(&["--worker-threads", "0"])).is_err());
    }
}
