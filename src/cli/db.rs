//! `portcullis db …`: provisioning as the platform does it, migrations,
//! the doctor, and password rotation.

use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;

use anyhow::bail;
use clap::{Args, Subcommand};

use super::common::{AdminArgs, EnvArgs};
use super::directory::Switch;
use crate::ops::provision::connections::{ConnectionFile, PasswordsIn};
use crate::ops::provision::decision_roles::{DecisionBinding, TenantScope, bind_decision_roles};
use crate::ops::provision::secrets::RoleKind;
use crate::ops::provision::{
    self, Confirmation, Environment, Report, SCHEMAS, ServiceName, doctor, service,
};
use crate::ops::{admin, cluster, migrate};

#[derive(Debug, Subcommand)]
pub enum DbCommand {
    /// Provision Portcullis in an environment: its roles
    /// (auth_migration_<env>_user, auth_app_<env>_user), the environment's
    /// database if missing, and the connections file.
    ///
    /// Passwords come from AUTH_MIGRATION_<ENV>_PASSWORD and
    /// AUTH_APP_<ENV>_PASSWORD, in the environment or the --env-file
    /// (required for qua and prd, at least 16 characters; without them tst
    /// and dev roles get none and rely on the server trusting local
    /// connections). They are never printed.
    Provision(ProvisionArgs),
    /// Provision another service: schema <service> owned by
    /// <service>_migration_<env>_user, and <service>_app_<env>_user with
    /// DML on it and nothing else.
    ProvisionService(ProvisionServiceArgs),
    /// Apply pending migrations, as the migration role.
    Migrate(MigrateArgs),
    /// Check an environment's layout and say what to fix; exits 1 when a
    /// check fails.
    Doctor(DoctorArgs),
    /// Set one role's password from <SERVICE>_<ROLE>_<ENV>_PASSWORD.
    RotatePassword(RotatePasswordArgs),
}

#[derive(Debug, Args)]
pub struct ProvisionArgs {
    #[command(flatten)]
    pub target: EnvArgs,
    #[command(flatten)]
    pub confirm: ConfirmArgs,
    #[command(flatten)]
    pub output: OutputArgs,
    #[command(flatten)]
    pub admin: AdminArgs,
}

#[derive(Debug, Args)]
pub struct ProvisionServiceArgs {
    /// The service: its schema and the prefix of its roles (a-z, 0-9, _).
    pub service: String,
    /// The tenants whose users the service's roles may name to the SQL
    /// decision functions (comma-separated ids), or `any`. Unchanged when
    /// not given; a new service may name any tenant's users.
    #[arg(long, value_parser = TenantScope::parse)]
    pub tenants: Option<TenantScope>,
    /// Signed mode for the service's roles: `on`, only a user named by a
    /// Portcullis-signed assertion (IssueSqlAssertion) counts; raw app.*
    /// settings and raw request.jwt.claims name nobody. Unchanged when not
    /// given; off for a new service.
    #[arg(long, value_enum)]
    pub signed_context: Option<Switch>,
    #[command(flatten)]
    pub target: EnvArgs,
    #[command(flatten)]
    pub confirm: ConfirmArgs,
    #[command(flatten)]
    pub output: OutputArgs,
    #[command(flatten)]
    pub admin: AdminArgs,
}

#[derive(Debug, Args)]
pub struct ConfirmArgs {
    /// Do not ask before dropping (tst only; other environments never drop).
    #[arg(long)]
    pub yes: bool,
    /// Confirms a qua or prd run without a prompt (must name the --env).
    #[arg(long, value_enum)]
    pub confirm_env: Option<Environment>,
    /// tst drops what it is pointed at, so it refuses a database other than
    /// <platform>-tst unless this names that database again.
    #[arg(long)]
    pub tst_database: Option<String>,
}

#[derive(Debug, Args)]
pub struct OutputArgs {
    /// Where connections files go: <dir>/<env>/<service>-connections.yaml.
    #[arg(long, env = "PORTCULLIS_CONNECTIONS_DIR", default_value = "output")]
    pub output_dir: PathBuf,
    /// Write the passwords into the connections file (mode 0600) instead of
    /// ${VARIABLE} references.
    #[arg(long)]
    pub include_passwords: bool,
}

#[derive(Debug, Args)]
pub struct MigrateArgs {
    /// URL of the migration role. Without it: the connections file if
    /// given, else derived from --admin-url and --env (password from
    /// AUTH_MIGRATION_<ENV>_PASSWORD).
    #[arg(long, env = "PORTCULLIS_MIGRATION_URL", hide_env_values = true)]
    pub migration_url: Option<String>,
    /// A connections file written by `db provision`.
    #[arg(
        long,
        env = "PORTCULLIS_CONNECTIONS_FILE",
        conflicts_with = "migration_url"
    )]
    pub connections_file: Option<PathBuf>,
    #[command(flatten)]
    pub target: EnvArgs,
    #[command(flatten)]
    pub admin: AdminArgs,
}

#[derive(Debug, Args)]
pub struct DoctorArgs {
    #[command(flatten)]
    pub target: EnvArgs,
    #[command(flatten)]
    pub admin: AdminArgs,
}

#[derive(Debug, Args)]
pub struct RotatePasswordArgs {
    /// Which of the service's two roles gets a new password.
    #[arg(long, value_enum)]
    pub role: RoleKind,
    /// The service whose role it is.
    #[arg(long, default_value = provision::SERVICE)]
    pub service: String,
    #[command(flatten)]
    pub target: EnvArgs,
    #[command(flatten)]
    pub admin: AdminArgs,
}

/// `portcullis db …`.
pub async fn run(command: DbCommand) -> anyhow::Result<()> {
    match command {
        DbCommand::Provision(args) => provision_command(args).await,
        DbCommand::ProvisionService(args) => provision_service_command(args).await,
        DbCommand::Migrate(args) => migrate_command(args).await,
        DbCommand::Doctor(args) => doctor_command(args).await,
        DbCommand::RotatePassword(args) => rotate_command(args).await,
    }
}

async fn provision_command(args: ProvisionArgs) -> anyhow::Result<()> {
    check_tst_target(&args.target, &args.confirm)?;
    let env = args.target.env;
    let names = args.target.names()?;
    let secrets = args.target.secrets()?;
    let service = ServiceName::parse(provision::SERVICE)?;
    let passwords = secrets.passwords(&service, env);
    let confirmed = confirmation(env, &args.confirm, &format!("database {}", names.database))?;
    let admin_url = args.admin.url()?;
    let report = provision::provision(&admin_url, env, &names, &passwords, confirmed).await?;
    print_report(&report);
    let file = ConnectionFile::new(
        &admin_url,
        env,
        &service,
        &SCHEMAS,
        &names,
        &passwords,
        args.output.passwords_in(),
    )?;
    let path = file.write(&args.output.output_dir, args.output.passwords_in())?;
    println!("wrote {}", path.display());
    println!("next: portcullis db migrate --env {env}");
    Ok(())
}

async fn provision_service_command(args: ProvisionServiceArgs) -> anyhow::Result<()> {
    check_tst_target(&args.target, &args.confirm)?;
    let env = args.target.env;
    let service = ServiceName::parse(&args.service)?;
    let database = args.target.database_name();
    let names = provision::Names::for_service(&service, env, &database)?;
    let passwords = args.target.secrets()?.passwords(&service, env);
    let confirmed = confirmation(env, &args.confirm, &format!("schema {}", service.as_str()))?;
    let admin_url = args.admin.url()?;
    let report =
        service::provision_service(&admin_url, env, &service, &names, &passwords, confirmed)
            .await?;
    print_report(&report);
    if !report.created_schema {
        println!("schema {} already exists; left as it is", service.as_str());
    }
    let binding = DecisionBinding {
        tenants: args.tenants.clone(),
        signed: args
            .signed_context
            .map(|switch| matches!(switch, Switch::On)),
    };
    if !binding.is_empty() {
        println!(
            "{}",
            bind_decision_roles(&admin_url, &names, &binding).await?
        );
    }
    let file = ConnectionFile::new(
        &admin_url,
        env,
        &service,
        &[service.as_str()],
        &names,
        &passwords,
        args.output.passwords_in(),
    )?;
    let path = file.write(&args.output.output_dir, args.output.passwords_in())?;
    println!("wrote {}", path.display());
    Ok(())
}

fn print_report(report: &Report) {
    for role in &report.created_roles {
        println!("created role {role}");
    }
    if let Some(dropped) = &report.dropped {
        println!("dropped {dropped}");
    }
    if report.created_database {
        println!("created the database");
    }
    if report.created_schema {
        println!("created the schema");
    }
}

impl OutputArgs {
    fn passwords_in(&self) -> PasswordsIn {
        if self.include_passwords {
            PasswordsIn::Values
        } else {
            PasswordsIn::References
        }
    }
}

/// The variable a shell prepared for another environment may still hold.
const DATABASE_NAME_VARIABLE: &str = "PORTCULLIS_DATABASE_NAME";

/// tst drops and recreates: only `<platform>-tst`, unless --tst-database
/// names the other database again, and never a name that came from
/// PORTCULLIS_DATABASE_NAME (a shell prepared for prd still holds prd's).
fn check_tst_target(target: &EnvArgs, confirm: &ConfirmArgs) -> anyhow::Result<()> {
    if target.env != Environment::Tst {
        return Ok(());
    }
    if std::env::var_os(DATABASE_NAME_VARIABLE).is_some_and(|v| !v.is_empty()) {
        bail!(
            "tst drops the database it is pointed at, and {DATABASE_NAME_VARIABLE} is set \
             (a shell prepared for another environment?); nothing changed: unset it"
        );
    }
    let database = target.database_name();
    let expected = provision::default_database(&target.platform, Environment::Tst);
    if database != expected && confirm.tst_database.as_deref() != Some(database.as_str()) {
        bail!(
            "tst drops and recreates what it is pointed at, and {database} is not {expected}; \
             nothing changed: to use it anyway, name it again with --tst-database {database}"
        );
    }
    Ok(())
}

/// What the operator confirms: dropping in tst (--yes or a prompt), the
/// environment's name in qua and prd (--confirm-env or typing it).
fn confirmation(env: Environment, args: &ConfirmArgs, what: &str) -> anyhow::Result<Confirmation> {
    let interactive = std::io::stdin().is_terminal();
    let mut confirmed = Confirmation {
        drop: args.yes,
        environment: args.confirm_env,
    };
    if env == Environment::Tst && !confirmed.drop && interactive {
        let answer = ask(&format!(
            "Drop and recreate {what} ({env})? All its data is lost. [y/N] "
        ))?;
        confirmed.drop = matches!(answer.as_str(), "y" | "Y" | "yes");
    }
    if env.is_guarded() && confirmed.environment.is_none() && interactive {
        let answer = ask(&format!(
            "This changes {env}. Type the environment's name to go on: "
        ))?;
        if answer == env.as_str() {
            confirmed.environment = Some(env);
        }
    }
    if let Some(named) = confirmed.environment.filter(|named| *named != env) {
        bail!("--confirm-env {named} does not name --env {env}; nothing changed");
    }
    Ok(confirmed)
}

fn ask(question: &str) -> anyhow::Result<String> {
    print!("{question}");
    std::io::stdout().flush()?;
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    Ok(answer.trim().to_owned())
}

async fn migrate_command(args: MigrateArgs) -> anyhow::Result<()> {
    let migration_url = match (&args.migration_url, &args.connections_file) {
        (Some(raw), _) => cluster::parse_url(raw)?,
        (None, Some(path)) => ConnectionFile::read(path)?.migration_url(&args.target.secrets()?)?,
        (None, None) => {
            let names = args.target.names()?;
            let service = ServiceName::parse(provision::SERVICE)?;
            let passwords = args.target.secrets()?.passwords(&service, args.target.env);
            provision::role_urls(&args.admin.url()?, &names, &passwords)?.0
        }
    };
    let applied = migrate::run(&migration_url).await?;
    if applied.is_empty() {
        println!("{}: schema is up to date", admin::redact(&migration_url));
    }
    for version in applied {
        println!("applied migration {version}");
    }
    Ok(())
}

async fn doctor_command(args: DoctorArgs) -> anyhow::Result<()> {
    let names = args.target.names()?;
    let diagnosis = doctor::diagnose(&args.admin.url()?, args.target.env, &names).await?;
    print!("{diagnosis}");
    if diagnosis.passed() {
        println!("{} checks passed", diagnosis.checks.len());
        Ok(())
    } else {
        bail!("{} check(s) failed", diagnosis.failed().len())
    }
}

async fn rotate_command(args: RotatePasswordArgs) -> anyhow::Result<()> {
    let env = args.target.env;
    let service = ServiceName::parse(&args.service)?;
    let secrets = args.target.secrets()?;
    let variable = provision::secrets::variable(&service, env, args.role);
    let role = service::rotate_password(
        &args.admin.url()?,
        env,
        &service,
        args.role,
        secrets.get(&variable),
    )
    .await?;
    println!("set the password of {role} from {variable}");
    Ok(())
}
