//! The directory: tenants, roles, assignments, invitations and users (the
//! org tree is `org`), through the same domain code as the Administration API
//! (audited as `system`).

use std::io::{BufRead, IsTerminal};

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use secrecy::ExposeSecret;

use super::common::{DatabaseArgs, HashArgs, database};
use super::preview::{PreviewArgs, made};
use crate::admin::assignments::{self, NewAssignment};
use crate::admin::global::{self, GlobalAdministrator, TenantChange, TenantSlug};
use crate::admin::invitations::{self, NewInvitation};
use crate::admin::{Administrator, Label, RoleKey, roles};
use crate::authn::users::{self, NewUser};
use crate::authn::{Email, Login, Phone};
use crate::authz::CapabilityKey;
use crate::names::NewPassword;
use crate::names::{OrgNodeId, TenantId, UserId};

#[derive(Debug, Subcommand)]
pub enum TenantCommand {
    /// Create a tenant (prints its id).
    Create {
        /// Lowercase letters, digits and -, unique.
        #[arg(long)]
        slug: String,
        /// The tenant's name, shown to people.
        #[arg(long)]
        name: String,
        #[command(flatten)]
        database: DatabaseArgs,
    },
    /// Allow (or stop) a first federated login linking itself to the user
    /// with the same email, when its provider verified the email.
    FederatedLinking {
        /// The tenant (a UUID).
        #[arg(long)]
        tenant: TenantId,
        /// On or off (off for a new tenant).
        #[arg(long, value_enum)]
        linking: Switch,
        #[command(flatten)]
        database: DatabaseArgs,
    },
}

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum Switch {
    On,
    Off,
}

#[derive(Debug, Subcommand)]
pub enum RoleCommand {
    /// Create a role with its capabilities (prints its id).
    Create {
        /// The tenant (a UUID).
        #[arg(long)]
        tenant: TenantId,
        /// A stable name, unique in the tenant, e.g. treasurer.
        #[arg(long)]
        key: String,
        /// The label shown to people.
        #[arg(long)]
        label: String,
        /// A capability key of the catalogue; repeat for several.
        #[arg(long = "capability")]
        capabilities: Vec<String>,
        #[command(flatten)]
        database: DatabaseArgs,
    },
}

#[derive(Debug, Args)]
pub struct AssignArgs {
    /// The tenant (a UUID).
    #[arg(long)]
    pub tenant: TenantId,
    /// The user (a UUID).
    #[arg(long)]
    pub user: UserId,
    /// The role (a UUID).
    #[arg(long)]
    pub role: uuid::Uuid,
    /// Where the role is held: it applies there and below (a UUID).
    #[arg(long)]
    pub node: OrgNodeId,
    /// Start, RFC 3339 (default: now).
    #[arg(long)]
    pub from: Option<humantime::Timestamp>,
    /// End, RFC 3339 (default: open-ended).
    #[arg(long)]
    pub until: Option<humantime::Timestamp>,
    #[command(flatten)]
    pub preview: PreviewArgs,
    #[command(flatten)]
    pub database: DatabaseArgs,
}

#[derive(Debug, Args)]
pub struct InviteArgs {
    /// The tenant (a UUID).
    #[arg(long)]
    pub tenant: TenantId,
    /// The invitee's email (or --phone).
    #[arg(long, required_unless_present = "phone", conflicts_with = "phone")]
    pub email: Option<String>,
    /// The invitee's phone number, E.164.
    #[arg(long)]
    pub phone: Option<String>,
    /// The role the invitee will hold (a UUID).
    #[arg(long)]
    pub role: uuid::Uuid,
    /// Where they will hold it (a UUID).
    #[arg(long)]
    pub node: OrgNodeId,
    /// How long the token may be accepted, e.g. 7d or 36h (at most 30d).
    #[arg(long, default_value = "7d")]
    pub expires_in: humantime::Duration,
    #[command(flatten)]
    pub database: DatabaseArgs,
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create a user; with --with-password, the password is read from
    /// standard input (or asked for twice on a terminal), never an argument.
    Create {
        /// The tenant (a UUID).
        #[arg(long)]
        tenant: TenantId,
        /// The name shown to people.
        #[arg(long)]
        display_name: String,
        /// The user's email, a login (or --phone, or both).
        #[arg(long)]
        email: Option<String>,
        /// E.164, e.g. +33612345678.
        #[arg(long)]
        phone: Option<String>,
        /// Give the user a password, read from standard input.
        #[arg(long)]
        with_password: bool,
        #[command(flatten)]
        hashing: HashArgs,
        #[command(flatten)]
        database: DatabaseArgs,
    },
    /// Set the password of the user who logs in with --email or --phone
    /// (read from standard input, or asked for twice on a terminal).
    SetPassword {
        /// The tenant (a UUID).
        #[arg(long)]
        tenant: TenantId,
        /// The user's email login (or --phone).
        #[arg(long)]
        email: Option<String>,
        /// The user's phone login, E.164 (or --email).
        #[arg(long)]
        phone: Option<String>,
        #[command(flatten)]
        hashing: HashArgs,
        #[command(flatten)]
        database: DatabaseArgs,
    },
}

/// `portcullis tenant …`.
pub async fn tenant(command: TenantCommand) -> anyhow::Result<()> {
    match command {
        TenantCommand::Create {
            slug,
            name,
            database: args,
        } => {
            let slug = TenantSlug::parse(&slug).map_err(|e| anyhow::anyhow!("--slug: {e}"))?;
            let name = Label::parse(&name).map_err(|e| anyhow::anyhow!("--name: {e}"))?;
            let admin = GlobalAdministrator::operator(chrono::Utc::now());
            let tenant =
                global::create_tenant(&database(&args)?, &admin, &slug, &name, None).await?;
            println!("{}", tenant.id);
            Ok(())
        }
        TenantCommand::FederatedLinking {
            tenant,
            linking,
            database: args,
        } => {
            let admin = GlobalAdministrator::operator(chrono::Utc::now());
            let change = TenantChange::FederatedEmailLinking(matches!(linking, Switch::On));
            // Sessions are untouched by this change: no lifetime is needed.
            let tenant = global::change_tenant(
                &database(&args)?,
                &admin,
                tenant,
                change,
                std::time::Duration::ZERO,
            )
            .await?;
            println!(
                "federated email linking is {} for {}",
                if tenant.federated_email_linking {
                    "on"
                } else {
                    "off"
                },
                tenant.slug
            );
            Ok(())
        }
    }
}

/// `portcullis role …`.
pub async fn role(command: RoleCommand) -> anyhow::Result<()> {
    match command {
        RoleCommand::Create {
            tenant,
            key,
            label,
            capabilities,
            database: args,
        } => {
            let key = RoleKey::parse(&key).map_err(|e| anyhow::anyhow!("--key: {e}"))?;
            let label = Label::parse(&label).map_err(|e| anyhow::anyhow!("--label: {e}"))?;
            let granted = capabilities
                .iter()
                .map(|c| {
                    CapabilityKey::parse(c).map_err(|e| anyhow::anyhow!("--capability {c}: {e}"))
                })
                .collect::<anyhow::Result<Vec<_>>>()?;
            let admin = Administrator::operator(tenant, chrono::Utc::now());
            let role =
                roles::create(&database(&args)?, &admin, &key, &label, &granted, None).await?;
            println!("{}", role.id);
            Ok(())
        }
    }
}

/// `portcullis assign`.
pub async fn assign(args: AssignArgs) -> anyhow::Result<()> {
    let new = NewAssignment {
        user_id: args.user,
        role_id: args.role,
        org_node_id: args.node,
        start_utc: args.from.map(|t| std::time::SystemTime::from(t).into()),
        end_utc: args.until.map(|t| std::time::SystemTime::from(t).into()),
    };
    let admin = Administrator::operator(args.tenant, chrono::Utc::now());
    let db = database(&args.database)?;
    let (admin, new) = (&admin, &new);
    let assignment = made(&db, args.tenant, args.preview, |db| async move {
        assignments::assign(&db, admin, new, None).await
    })
    .await?;
    if let Some(assignment) = assignment {
        println!("{}", assignment.id);
    }
    Ok(())
}

/// `portcullis invite`.
pub async fn invite(args: InviteArgs) -> anyhow::Result<()> {
    let (email, phone) = (args.email.as_deref(), args.phone.as_deref());
    let destination = Login::one_of(email.unwrap_or(""), phone.unwrap_or(""))
        .map_err(|(field, problem)| anyhow::anyhow!("--{field}: {problem}"))?;
    let valid_for = chrono::Duration::from_std(args.expires_in.into())
        .map_err(|e| anyhow::anyhow!("--expires-in: {e}"))?;
    let new = NewInvitation {
        destination,
        role_id: args.role,
        org_node_id: args.node,
        expires_at: Some(chrono::Utc::now() + valid_for),
    };
    let admin = Administrator::operator(args.tenant, chrono::Utc::now());
    let issued = invitations::create(&database(&args.database)?, &admin, &new, None).await?;
    let token = issued
        .token
        .context("a new invitation comes with its token")?;
    eprintln!(
        "invitation {} expires at {}; the token is shown once and cannot be recovered:",
        issued.invitation.id, issued.invitation.expires_at
    );
    println!("{}", token.expose_secret());
    Ok(())
}

/// `portcullis user …`.
pub async fn user(command: UserCommand) -> anyhow::Result<()> {
    match command {
        UserCommand::Create {
            tenant,
            display_name,
            email,
            phone,
            with_password,
            hashing,
            database: args,
        } => {
            let new = NewUser {
                tenant_id: tenant.get(),
                display_name,
                logins: logins(email.as_deref(), phone.as_deref())?,
                password: if with_password {
                    Some(read_new_password()?)
                } else {
                    None
                },
            };
            let id = users::create_user(&database(&args)?, &hashing.passwords()?, &new).await?;
            println!("created user {id}");
        }
        UserCommand::SetPassword {
            tenant,
            email,
            phone,
            hashing,
            database: args,
        } => {
            let login = logins(email.as_deref(), phone.as_deref())?.remove(0);
            let password = read_new_password()?;
            users::set_password(
                &database(&args)?,
                &hashing.passwords()?,
                tenant.get(),
                &login,
                &password,
                false,
            )
            .await?;
            println!("password of {login} set");
        }
    }
    Ok(())
}

fn logins(email: Option<&str>, phone: Option<&str>) -> anyhow::Result<Vec<Login>> {
    let mut out = Vec::new();
    if let Some(email) = email {
        out.push(Login::Email(
            Email::parse(email).map_err(|e| anyhow::anyhow!("--email: {e}"))?,
        ));
    }
    if let Some(phone) = phone {
        out.push(Login::Phone(
            Phone::parse(phone).map_err(|e| anyhow::anyhow!("--phone: {e}"))?,
        ));
    }
    if out.is_empty() {
        bail!("give --email or --phone");
    }
    Ok(out)
}

/// A new password from standard input, or asked for twice on a terminal.
fn read_new_password() -> anyhow::Result<NewPassword> {
    let password = if std::io::stdin().is_terminal() {
        let first = rpassword::prompt_password("New password: ")?;
        let second = rpassword::prompt_password("Repeat it: ")?;
        if first != second {
            bail!("the two passwords differ");
        }
        first
    } else {
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line)?;
        line.trim_end_matches(['\r', '\n']).to_owned()
    };
    NewPassword::parse(&password).map_err(|e| anyhow::anyhow!("the password {e}"))
}
