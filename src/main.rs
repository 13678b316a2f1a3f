// The edge: commands read the clock and pass `now` in.
#![allow(clippy::disallowed_methods)]

use std::io::{BufRead, IsTerminal, Write};
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::Parser;

use portcullis::admin::assignments::{self, NewAssignment};
use portcullis::admin::global::{self, GlobalAdministrator, TenantSlug};
use portcullis::admin::invitations::{self, NewInvitation};
use portcullis::admin::{Administrator, Label, NodeType, RoleKey, org, roles};
use portcullis::authn::users::{self, NewUser};
use portcullis::authn::{Email, Login, MIN_PASSWORD_CHARS, Phone};
use portcullis::authz::CapabilityKey;
use portcullis::cli::{
    BenchCommand, Cli, Command, DatabaseArgs, DbCommand, KeysCommand, MigrateArgs, OrgCommand,
    OtpDeliveryKind, PermissionsCommand, ProvisionArgs, RoleCommand, SecretCommand, ServiceCommand,
    TenantCommand, UserCommand,
};
use portcullis::db::Db;
use portcullis::ops::bench::{self, manifest};
use portcullis::ops::provision::{self, Environment, Passwords};
use portcullis::ops::{admin, cluster, migrate, seed};
use portcullis::service_accounts::names::{Permission, ServiceKey};
use portcullis::service_accounts::{self, NewService};
use portcullis::tokens::KeyRing;
use portcullis::tokens::keys::generate_key_file;
use portcullis::{dev, server, telemetry};
use secrecy::ExposeSecret;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let default_format = match cli.command {
        Command::Serve(_) => telemetry::LogFormat::Json,
        _ => telemetry::LogFormat::Text,
    };
    let settings = telemetry::TelemetrySettings {
        format: cli.log_format.unwrap_or(default_format),
        otlp_endpoint: cli.otlp_endpoint.clone(),
        sample_ratio: cli.trace_sample_ratio,
        environment: cli.environment.clone(),
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
        Command::Serve(args) => {
            let keys =
                KeyRing::load_dir(&args.signing_keys_dir, args.server.key_retirement_grace())?;
            let db = database(&args.database)?;
            let settings = args.server.settings()?;
            let authn = args
                .server
                .authenticator(db, keys, OtpDeliveryKind::Outbox)?;
            let listener = server::bind(args.server.listen).await?;
            tracing::info!(
                listen = %args.server.listen,
                tls = settings.tls.is_some(),
                mutual_tls = settings.tls.as_ref().is_some_and(|tls| tls.mutual),
                "serving"
            );
            server::serve(authn, listener, settings, server::shutdown_signal()).await?;
            Ok(())
        }
        Command::Dev(args) => dev::run(args).await,
        Command::Db(DbCommand::Provision(args)) => provision_command(args).await,
        Command::Db(DbCommand::Migrate(args)) => migrate_command(args).await,
        Command::SeedDemo(args) => {
            let db = database(&args)?;
            let secret = seed::seed_demo(&db)
                .await
                .context("seeding the demo tenant")?;
            println!("demo tenant seeded: {}", seed::DEMO_TENANT_ID);
            println!("{}", seed::try_it(&secret, "127.0.0.1:50051"));
            Ok(())
        }
        Command::Keys(KeysCommand::Generate { dir, activate_in }) => {
            let activates_at = chrono::Utc::now() + chrono::Duration::from_std(activate_in.into())?;
            let (path, kid) = generate_key_file(&dir, activates_at)?;
            println!(
                "wrote {} (kid {kid}, signs from {activates_at})",
                path.display()
            );
            Ok(())
        }
        Command::Service(command) => service_command(command).await,
        Command::User(command) => user_command(command).await,
        Command::Tenant(TenantCommand::Create {
            slug,
            name,
            database: args,
        }) => {
            let slug = TenantSlug::parse(&slug).map_err(|e| anyhow::anyhow!("--slug: {e}"))?;
            let name = Label::parse(&name).map_err(|e| anyhow::anyhow!("--name: {e}"))?;
            let admin = GlobalAdministrator::operator(chrono::Utc::now());
            let tenant =
                global::create_tenant(&database(&args)?, &admin, &slug, &name, None).await?;
            println!("{}", tenant.id);
            Ok(())
        }
        Command::Org(OrgCommand::Add {
            tenant,
            parent,
            node_type,
            label,
            database: args,
        }) => {
            let node_type =
                NodeType::parse(&node_type).map_err(|e| anyhow::anyhow!("--type: {e}"))?;
            let label = Label::parse(&label).map_err(|e| anyhow::anyhow!("--label: {e}"))?;
            let admin = Administrator::operator(tenant, chrono::Utc::now());
            let node =
                org::create(&database(&args)?, &admin, parent, &node_type, &label, None).await?;
            println!("{}", node.id);
            Ok(())
        }
        Command::Role(RoleCommand::Create {
            tenant,
            key,
            label,
            capabilities,
            database: args,
        }) => {
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
        Command::Assign(args) => {
            let new = NewAssignment {
                user_id: args.user,
                role_id: args.role,
                org_node_id: args.node,
                start_utc: args.from.map(|t| std::time::SystemTime::from(t).into()),
                end_utc: args.until.map(|t| std::time::SystemTime::from(t).into()),
            };
            let admin = Administrator::operator(args.tenant, chrono::Utc::now());
            let assignment =
                assignments::assign(&database(&args.database)?, &admin, &new, None).await?;
            println!("{}", assignment.id);
            Ok(())
        }
        Command::Invite(args) => {
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
            let issued =
                invitations::create(&database(&args.database)?, &admin, &new, None).await?;
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
        Command::Bench(command) => bench_command(command).await,
    }
}

fn service_key(raw: &str) -> anyhow::Result<ServiceKey> {
    ServiceKey::parse(raw).map_err(|e| anyhow::anyhow!("--key: {e}"))
}

fn permissions(raw: &[String]) -> anyhow::Result<Vec<Permission>> {
    raw.iter()
        .map(|p| Permission::parse(p).map_err(|e| anyhow::anyhow!("--permission {p}: {e}")))
        .collect()
}

fn database(args: &DatabaseArgs) -> anyhow::Result<Db> {
    let settings = args.pool.settings();
    let db = Db::new(&args.database_url, &settings).context("--database-url")?;
    match &args.database_read_url {
        Some(url) => db
            .with_read_replica(url, &settings)
            .context("--database-read-url"),
        None => Ok(db),
    }
}

async fn service_command(command: ServiceCommand) -> anyhow::Result<()> {
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
fn read_new_password() -> anyhow::Result<secrecy::SecretString> {
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
    if password.chars().count() < MIN_PASSWORD_CHARS {
        bail!("a password needs at least {MIN_PASSWORD_CHARS} characters");
    }
    Ok(secrecy::SecretString::from(password))
}

async fn user_command(command: UserCommand) -> anyhow::Result<()> {
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
                tenant_id: tenant,
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
                tenant,
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

/// Where the bench keeps its manifests and reports.
const BENCH_DIR: &str = "target/bench";

async fn bench_command(command: BenchCommand) -> anyhow::Result<()> {
    let dir = std::path::Path::new(BENCH_DIR);
    match command {
        BenchCommand::Seed { profile, admin } => {
            let server = cluster::locate(
                admin.admin_url.as_deref(),
                std::path::Path::new("target/portcullis-pg"),
            )
            .await?;
            let names = manifest::names(profile)?;
            let passwords = Passwords::from_env();
            provision::provision(server.url(), Environment::Dev, &names, &passwords).await?;
            let (owner_url, app_url) = manifest::urls(server.url(), profile)?;
            migrate::run(&owner_url).await?;
            let started = std::time::Instant::now();
            // Seeding a large profile runs single statements for minutes.
            let db = Db::new(
                app_url.as_str(),
                &portcullis::db::PoolSettings {
                    statement_timeout: std::time::Duration::from_secs(3600),
                    ..portcullis::db::PoolSettings::default()
                },
            )?;
            let hasher = portcullis::authn::Passwords::new(
                portcullis::authn::HashCost::OWASP,
                1,
                std::time::Duration::from_secs(30),
            )?;
            let secret = bench::seed::seed(&db, &hasher, profile).await?;
            // The application role may not ANALYZE; the owner may.
            admin::AdminConnection::connect(&owner_url)
                .await?
                .execute("analysing the bench data", "VACUUM ANALYZE")
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
            load,
        } => {
            let manifest = manifest::read(dir, profile)?;
            let endpoint = tonic::transport::Channel::from_shared(format!("http://{addr}"))?;
            let target =
                bench::load::Target::prepare(endpoint, profile.shape(), manifest.service_secret)
                    .await?;
            let config = bench::load::LoadConfig {
                concurrency: load.concurrency,
                warmup: load.warmup.into(),
                duration: load.duration.into(),
                mix: mix.0,
            };
            let reports = bench::load::run(&target, &config).await;
            print!("{}", bench::load::table(&reports));
            println!("{}", serde_json::to_string_pretty(&reports)?);
        }
        BenchCommand::Run {
            profile,
            listen,
            hashing_threads,
            pool_size,
            load,
        } => {
            let manifest = manifest::read(dir, profile)?;
            let report = bench::run::run(bench::run::RunConfig {
                profile,
                app_url: manifest.app_url,
                service_secret: manifest.service_secret,
                concurrency: load.concurrency,
                warmup: load.warmup.into(),
                duration: load.duration.into(),
                listen,
                hashing_threads,
                pool_size,
                report_dir: dir.to_path_buf(),
            })
            .await?;
            println!("{}", serde_json::to_string_pretty(&report)?);
        }
    }
    Ok(())
}
