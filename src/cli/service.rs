//! `portcullis service …`: service accounts, their secrets and permissions.

use clap::Subcommand;
use secrecy::ExposeSecret;

use super::common::{DatabaseArgs, database};
use crate::service_accounts::names::{Permission, ServiceKey};
use crate::service_accounts::{self, NewService};

#[derive(Debug, Subcommand)]
pub enum ServiceCommand {
    /// Create a service account.
    Create {
        /// The service account's key, e.g. billing-gateway: a lowercase letter, then lowercase letters, digits, _, . or -.
        #[arg(long)]
        key: String,
        /// The label shown to people.
        #[arg(long)]
        label: String,
        /// Bind the service to one tenant (UUID); without it, it may act in any.
        #[arg(long)]
        tenant: Option<uuid::Uuid>,
        /// A permission to grant (repeat), e.g. authz.check.
        #[arg(long = "permission")]
        permissions: Vec<String>,
        #[command(flatten)]
        database: DatabaseArgs,
    },
    /// Secrets of a service account.
    #[command(subcommand)]
    Secret(SecretCommand),
    /// Disable a service account and revoke every token it holds.
    Disable {
        /// The service account's key.
        #[arg(long)]
        key: String,
        #[command(flatten)]
        database: DatabaseArgs,
    },
    /// Permissions of a service account.
    #[command(subcommand)]
    Permissions(PermissionsCommand),
}

#[derive(Debug, Subcommand)]
pub enum SecretCommand {
    /// Issue a new secret and print it once; it cannot be shown again.
    Issue {
        /// The service account's key.
        #[arg(long)]
        key: String,
        /// Also revoke every other active secret of the service.
        #[arg(long)]
        revoke_others: bool,
        #[command(flatten)]
        database: DatabaseArgs,
    },
    /// Revoke one secret; exchanges with it are refused at once.
    Revoke {
        /// The service account's key.
        #[arg(long)]
        key: String,
        /// The secret to revoke (its id, printed when it was issued).
        #[arg(long)]
        secret_id: uuid::Uuid,
        #[command(flatten)]
        database: DatabaseArgs,
    },
}

#[derive(Debug, Subcommand)]
pub enum PermissionsCommand {
    /// Replace the service's permissions with exactly these.
    Set {
        /// The service account's key.
        #[arg(long)]
        key: String,
        /// A permission the service will hold (repeat), e.g. authz.check.
        #[arg(long = "permission")]
        permissions: Vec<String>,
        #[command(flatten)]
        database: DatabaseArgs,
    },
}

/// `portcullis service …`.
pub async fn run(command: ServiceCommand) -> anyhow::Result<()> {
    match command {
        ServiceCommand::Create {
            key,
            label,
            tenant,
            permissions: granted,
            database: args,
        } => {
            let new = NewService {
                key: service_key(&key)?,
                label,
                tenant_id: tenant,
                permissions: permissions(&granted)?,
            };
            let id = service_accounts::create(&database(&args)?, &new).await?;
            println!("created service {key} ({id})");
        }
        ServiceCommand::Secret(SecretCommand::Issue {
            key,
            revoke_others,
            database: args,
        }) => {
            let (id, secret) = service_accounts::issue_secret(
                &database(&args)?,
                &service_key(&key)?,
                revoke_others,
            )
            .await?;
            eprintln!("secret {id} for {key}; it is shown once and cannot be recovered:");
            println!("{}", secret.expose_secret());
        }
        ServiceCommand::Secret(SecretCommand::Revoke {
            key,
            secret_id,
            database: args,
        }) => {
            service_accounts::revoke_secret(&database(&args)?, &service_key(&key)?, secret_id)
                .await?;
            println!("revoked secret {secret_id} of {key}");
        }
        ServiceCommand::Disable {
            key,
            database: args,
        } => {
            let revoked = service_accounts::disable(
                &database(&args)?,
                &service_key(&key)?,
                chrono::Utc::now(),
            )
            .await?;
            println!("disabled {key}; revoked {revoked} live token(s)");
        }
        ServiceCommand::Permissions(PermissionsCommand::Set {
            key,
            permissions: granted,
            database: args,
        }) => {
            service_accounts::set_permissions(
                &database(&args)?,
                &service_key(&key)?,
                &permissions(&granted)?,
            )
            .await?;
            println!("permissions of {key} set to {}", granted.join(", "));
        }
    }
    Ok(())
}

fn service_key(raw: &str) -> anyhow::Result<ServiceKey> {
    ServiceKey::parse(raw).map_err(|e| anyhow::anyhow!("--key: {e}"))
}

fn permissions(raw: &[String]) -> anyhow::Result<Vec<Permission>> {
    raw.iter()
        .map(|p| Permission::parse(p).map_err(|e| anyhow::anyhow!("--permission {p}: {e}")))
        .collect()
}
