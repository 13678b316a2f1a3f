use std::io::{BufRead, IsTerminal, Write};
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::Parser;

use portcullis::cli::{Cli, Command, DbCommand, MigrateArgs, ProvisionArgs};
use portcullis::db::provision::{self, Environment, Passwords};
use portcullis::db::{Db, admin, cluster, migrate};
use portcullis::{dev, seed, server, telemetry};

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    telemetry::init();
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
        Command::Serve(args) => {
            let db = Db::new(&args.database.database_url, &args.database.pool.settings());
            let listener = server::bind(args.server.listen).await?;
            tracing::info!(listen = %args.server.listen, "serving");
            server::serve(
                db,
                listener,
                args.server.settings(),
                server::shutdown_signal(),
            )
            .await?;
            Ok(())
        }
        Command::Dev(args) => dev::run(args).await,
        Command::Db(DbCommand::Provision(args)) => provision_command(args).await,
        Command::Db(DbCommand::Migrate(args)) => migrate_command(args).await,
        Command::SeedDemo(args) => {
            let db = Db::new(&args.database_url, &args.pool.settings());
            seed::seed_demo(&db)
                .await
                .context("seeding the demo tenant")?;
            println!("demo tenant seeded: {}", seed::DEMO_TENANT_ID);
            Ok(())
        }
    }
}

async fn provision_command(args: ProvisionArgs) -> anyhow::Result<()> {
    let names = args.names.resolve(args.env)?;
    if args.env == Environment::Tst && !args.yes {
        confirm_drop(&names.database)?;
    }
    let report =
        provision::provision(&args.admin.url()?, args.env, &names, &Passwords::from_env()).await?;
    for role in &report.created_roles {
        println!("created role {role}");
    }
    if report.dropped_database {
        println!("dropped database {}", names.database);
    }
    if report.created_database {
        println!(
            "created database {} owned by {}",
            names.database, names.owner_role
        );
    } else {
        println!("database {} already exists; left as it is", names.database);
    }
    Ok(())
}

fn confirm_drop(database: &str) -> anyhow::Result<()> {
    if !std::io::stdin().is_terminal() {
        bail!("refusing to drop database {database} without confirmation: pass --yes");
    }
    print!("Drop and recreate database {database}? All its data is lost. [y/N] ");
    std::io::stdout().flush()?;
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    if matches!(answer.trim(), "y" | "Y" | "yes") {
        Ok(())
    } else {
        bail!("not confirmed; nothing changed")
    }
}

async fn migrate_command(args: MigrateArgs) -> anyhow::Result<()> {
    let owner_url = match &args.owner_url {
        Some(raw) => cluster::parse_url(raw)?,
        None => {
            let names = args.names.resolve(args.env)?;
            provision::role_urls(&args.admin.url()?, &names, &Passwords::from_env())?.0
        }
    };
    let applied = migrate::run(&owner_url).await?;
    if applied.is_empty() {
        println!("{}: schema is up to date", admin::redact(&owner_url));
    }
    for version in applied {
        println!("applied migration {version}");
    }
    Ok(())
}
