//! `portcullis db provision` and `portcullis db migrate`.

use std::io::{BufRead, IsTerminal, Write};

use anyhow::bail;
use clap::{Args, Subcommand};

use super::common::{AdminArgs, NameArgs};
use crate::ops::provision::{self, Environment, Passwords};
use crate::ops::{admin, cluster, migrate};

#[derive(Debug, Subcommand)]
pub enum DbCommand {
    /// Create the owner role, the application role and the database.
    ///
    /// Passwords come from PORTCULLIS_OWNER_PASSWORD and
    /// PORTCULLIS_APP_PASSWORD (required for prd; without them dev and tst
    /// roles get no password and rely on the server trusting local
    /// connections). They are never printed.
    Provision(ProvisionArgs),
    /// Apply pending migrations, as the owner role.
    Migrate(MigrateArgs),
}

#[derive(Debug, Args)]
pub struct ProvisionArgs {
    /// Environment: tst drops and recreates the database; dev and prd only
    /// create what is missing.
    #[arg(long, value_enum)]
    pub env: Environment,
    /// Do not ask before dropping the tst database.
    #[arg(long)]
    pub yes: bool,
    #[command(flatten)]
    pub admin: AdminArgs,
    #[command(flatten)]
    pub names: NameArgs,
}

#[derive(Debug, Args)]
pub struct MigrateArgs {
    /// URL of the owner role. Without it, the URL is derived from
    /// --admin-url, --env and the role names (password from
    /// PORTCULLIS_OWNER_PASSWORD).
    #[arg(long, env = "PORTCULLIS_OWNER_URL", hide_env_values = true)]
    pub owner_url: Option<String>,
    /// Environment whose owner role to use when --owner-url is not given.
    #[arg(long, value_enum, default_value = "dev")]
    pub env: Environment,
    #[command(flatten)]
    pub admin: AdminArgs,
    #[command(flatten)]
    pub names: NameArgs,
}

/// `portcullis db …`.
pub async fn run(command: DbCommand) -> anyhow::Result<()> {
    match command {
        DbCommand::Provision(args) => provision_command(args).await,
        DbCommand::Migrate(args) => migrate_command(args).await,
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
