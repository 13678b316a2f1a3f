//! Test harness: every test gets its own database, cloned from a template
//! that is migrated once per schema version. Data paths connect as the
//! application role, never as a superuser.
//!
//! Server: `PORTCULLIS_ADMIN_URL` or `DATABASE_URL` (a superuser URL) when
//! set, else the local server on 127.0.0.1:5432, else a private cluster
//! started from the installed PostgreSQL binaries under `target/`.
//!
//! `PORTCULLIS_TEST_PGBOUNCER=host:port` sends every application-role
//! connection through that PgBouncer (transaction pooling, any version:
//! the statement cache is then off); operator connections stay direct.

#![allow(dead_code)]

pub mod bouncer;
pub mod capture;
pub mod certs;
pub mod fixtures;
pub mod org;
pub mod ports;
pub mod proxy;
pub mod replication;
pub mod server;
pub mod services;
pub mod tls_front;

use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::Path;
use std::sync::LazyLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use portcullis::db::{Db, PoolSettings};
use portcullis::ops::admin::{AdminConnection, OperatorError, derive_url};
use portcullis::ops::provision::{self, Names, RolePasswords};
use portcullis::ops::{cluster, migrate};
use tokio::sync::OnceCell;
use url::Url;

pub const MIGRATION_ROLE: &str = "portcullis_test_migration";
pub const APP_ROLE: &str = "portcullis_test_app";
const DB_PREFIX: &str = "portcullis_test_";
const TEMPLATE_PREFIX: &str = "portcullis_tpl_";
/// Test databases older than this are leftovers of crashed runs.
const STALE_AFTER: Duration = Duration::from_secs(2 * 3600);
const TEMPLATE_LOCK: i64 = 0x706f_7274_0003;

/// Tests that install a thread-local subscriber take this first: tracing
/// caches each callsite's interest process-wide, so two such subscribers
/// alive at once can hide events from each other.
pub static SCOPED_SUBSCRIBER: std::sync::Mutex<()> = std::sync::Mutex::new(());

static TRACING: LazyLock<()> = LazyLock::new(|| {
    if std::env::var_os("TEST_LOG").is_some() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(
                std::env::var("TEST_LOG").unwrap_or_default(),
            ))
            .with_test_writer()
            .try_init();
    }
});

/// A migrated database that test databases are cloned from, on one server.
pub struct Template {
    admin_url: Url,
    name: String,
}

static TEMPLATE: OnceCell<Template> = OnceCell::const_new();

async fn template() -> &'static Template {
    LazyLock::force(&TRACING);
    TEMPLATE
        .get_or_init(|| async {
            prepare_template()
                .await
                .expect("preparing the template database")
        })
        .await
}

fn role_names(database: &str) -> Names {
    Names::new(database, MIGRATION_ROLE, APP_ROLE).expect("valid test names")
}

/// The template's name changes whenever a migration file changes.
fn template_name() -> String {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations");
    let mut files: Vec<_> = walk(&dir);
    files.sort();
    let mut hasher = DefaultHasher::new();
    // A template built by other roles or another migration harness is not
    // this one.
    (MIGRATION_ROLE, APP_ROLE, migrate::TRACKING_TABLE).hash(&mut hasher);
    for file in files {
        file.strip_prefix(&dir).unwrap().hash(&mut hasher);
        std::fs::read(&file).unwrap().hash(&mut hasher);
    }
    format!("{TEMPLATE_PREFIX}{:016x}", hasher.finish())
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}

pub async fn admin_url() -> Url {
    template().await.admin_url.clone()
}

async fn locate_server() -> Url {
    let configured = std::env::var("PORTCULLIS_ADMIN_URL")
        .or_else(|_| std::env::var("DATABASE_URL"))
        .ok();
    let private_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/portcullis-pg");
    cluster::locate(configured.as_deref(), &private_dir)
        .await
        .expect("a PostgreSQL server for the tests")
        .url()
        .clone()
}

async fn prepare_template() -> Result<Template, OperatorError> {
    prepare_template_at(locate_server().await).await
}

/// The template on the server `admin_url` administers.
pub async fn prepare_template_at(admin_url: Url) -> Result<Template, OperatorError> {
    LazyLock::force(&TRACING);
    let name = template_name();
    let mut admin = AdminConnection::connect(&admin_url).await?;
    admin.lock(TEMPLATE_LOCK).await?;
    provision::ensure_roles(&mut admin, &role_names(&name), &RolePasswords::default()).await?;
    sweep_stale(&mut admin, &name).await?;
    if !provision::database_exists(&mut admin, &name).await? {
        // Build under another name and rename when complete, so a crash
        // never leaves a half-migrated template behind.
        let building = format!("{name}_building");
        admin
            .execute(
                "dropping a half-built template",
                &format!("DROP DATABASE IF EXISTS {building} WITH (FORCE)"),
            )
            .await?;
        provision::create_database(&mut admin, &building, None).await?;
        provision::grant_database(&mut admin, &role_names(&building), true).await?;
        let migration_url = derive_url(&admin_url, MIGRATION_ROLE, None, &building)?;
        migrate::run(&migration_url).await?;
        let rename = format!("ALTER DATABASE {building} RENAME TO {name}");
        retry_in_use(&mut admin, async |admin| {
            admin.execute("publishing the template", &rename).await
        })
        .await?;
    }
    Ok(Template { admin_url, name })
}

/// Drops test databases of crashed runs and templates of older schemas.
async fn sweep_stale(
    admin: &mut AdminConnection,
    current_template: &str,
) -> Result<(), OperatorError> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    for name in admin.database_names(DB_PREFIX).await? {
        let created: u64 = name[DB_PREFIX.len()..]
            .split('_')
            .next()
            .and_then(|secs| secs.parse().ok())
            .unwrap_or(0);
        if now.saturating_sub(created) > STALE_AFTER.as_secs() {
            admin
                .execute(
                    "sweeping a stale test database",
                    &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
                )
                .await?;
        }
    }
    for name in admin.database_names(TEMPLATE_PREFIX).await? {
        if name != current_template && !name.ends_with("_building") {
            admin
                .execute(
                    "sweeping an old template",
                    &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
                )
                .await?;
        }
    }
    Ok(())
}

/// CREATE DATABASE … TEMPLATE and RENAME fail while a just-closed session is
/// still leaving the source database; retry briefly.
async fn retry_in_use(
    admin: &mut AdminConnection,
    mut attempt: impl AsyncFnMut(&mut AdminConnection) -> Result<(), OperatorError>,
) -> Result<(), OperatorError> {
    let mut tries = 0;
    loop {
        match attempt(admin).await {
            Err(error)
                if tries < 50 && error.to_string().contains("being accessed by other users") =>
            {
                tries += 1;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            other => return other,
        }
    }
}

/// A database of one's own, dropped when the value is dropped.
pub struct TestDb {
    pub name: String,
    pub admin_url: Url,
    pub migration_url: Url,
    pub app_url: Url,
}

impl TestDb {
    /// A migrated database, cloned from the template.
    pub async fn new() -> Self {
        let template = template().await;
        Self::create(Some(&template.name)).await
    }

    /// An empty database owned by the owner role, not yet migrated.
    pub async fn empty() -> Self {
        template().await;
        Self::create(None).await
    }

    async fn create(from: Option<&str>) -> Self {
        Self::create_at(template().await, from, true).await
    }

    /// A migrated database cloned from `template`, on its server, reached
    /// directly (never through the suite's PgBouncer).
    pub async fn on(template: &Template) -> Self {
        Self::create_at(template, Some(&template.name), false).await
    }

    async fn create_at(template: &Template, from: Option<&str>, via_pgbouncer: bool) -> Self {
        let secs = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let suffix = uuid::Uuid::new_v4().simple().to_string();
        let name = format!("{DB_PREFIX}{secs}_{}", &suffix[..12]);
        let mut admin = AdminConnection::connect(&template.admin_url).await.unwrap();
        let names = role_names(&name);
        retry_in_use(&mut admin, async |admin| {
            provision::create_database(admin, &name, from).await
        })
        .await
        .unwrap();
        provision::grant_database(&mut admin, &names, true)
            .await
            .unwrap();
        let mut app_url = derive_url(&template.admin_url, APP_ROLE, None, &name).unwrap();
        if let Some((host, port)) = pgbouncer().filter(|_| via_pgbouncer) {
            app_url.set_host(Some(&host)).unwrap();
            app_url.set_port(Some(port)).unwrap();
        }
        Self {
            migration_url: derive_url(&template.admin_url, MIGRATION_ROLE, None, &name).unwrap(),
            app_url,
            admin_url: template.admin_url.clone(),
            name,
        }
    }

    /// The application role's door: RLS-scoped transactions only.
    pub fn db(&self) -> Db {
        Db::new(self.app_url.as_str(), &test_pool()).unwrap()
    }

    /// The application role's door through a cuttable TCP proxy in front of
    /// the database, and the proxy.
    pub async fn db_behind_proxy(&self) -> (proxy::Proxy, Db) {
        self.db_behind_proxy_with(&test_pool()).await
    }

    /// The same with other pool settings.
    pub async fn db_behind_proxy_with(&self, settings: &PoolSettings) -> (proxy::Proxy, Db) {
        let host = self.app_url.host_str().unwrap().to_owned();
        let port = self.app_url.port().unwrap_or(5432);
        self.db_behind_proxy_to((&host, port), settings).await
    }

    /// The application role's door through a cuttable proxy in front of
    /// `target` (host, port), and the proxy.
    pub async fn db_behind_proxy_to(
        &self,
        target: (&str, u16),
        settings: &PoolSettings,
    ) -> (proxy::Proxy, Db) {
        let address = tokio::net::lookup_host(target)
            .await
            .unwrap()
            .next()
            .unwrap();
        let proxy = proxy::Proxy::start(address).await;
        let mut url = self.app_url.clone();
        url.set_host(Some("127.0.0.1")).unwrap();
        url.set_port(Some(proxy.port)).unwrap();
        (proxy, Db::new(url.as_str(), settings).unwrap())
    }

    pub fn db_via(&self, host: &str, port: u16) -> Db {
        let mut url = self.app_url.clone();
        url.set_host(Some(host)).unwrap();
        url.set_port(Some(port)).unwrap();
        Db::new(url.as_str(), &test_pool()).unwrap()
    }

    pub fn app_role(&self) -> &'static str {
        APP_ROLE
    }

    /// A superuser's connection inside this database (row-level security
    /// does not apply to it): for what a test must see or do behind the
    /// service's back.
    pub async fn superuser(&self) -> diesel_async::AsyncPgConnection {
        use diesel_async::AsyncConnection;
        let mut url = self.admin_url.clone();
        url.set_path(&self.name);
        diesel_async::AsyncPgConnection::establish(url.as_str())
            .await
            .unwrap()
    }
}

pub fn test_pool() -> PoolSettings {
    PoolSettings {
        max_size: 4,
        acquire_timeout: Duration::from_secs(5),
        idle_timeout: None,
        max_lifetime: None,
        statement_cache: pgbouncer().is_none(),
        ..PoolSettings::default()
    }
}

/// The PgBouncer the application role connects through, if the run asks
/// for one (`PORTCULLIS_TEST_PGBOUNCER=host:port`).
pub fn pgbouncer() -> Option<(String, u16)> {
    let value = std::env::var("PORTCULLIS_TEST_PGBOUNCER").ok()?;
    let (host, port) = value
        .rsplit_once(':')
        .expect("PORTCULLIS_TEST_PGBOUNCER is host:port");
    Some((host.to_owned(), port.parse().expect("a port number")))
}

impl Drop for TestDb {
    fn drop(&mut self) {
        drop_at(self.admin_url.clone(), self.name.clone(), Vec::new());
    }
}

/// A fresh test database name; the creation time in it lets a later run
/// sweep the database if this run crashes before dropping it.
pub fn unique_database_name() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let suffix = uuid::Uuid::new_v4().simple().to_string();
    format!("{DB_PREFIX}{secs}_{}", &suffix[..12])
}

/// Drops a test database from synchronous code (a `Drop`), on a thread with
/// its own runtime because the test's runtime is busy running the test.
pub fn drop_database_blocking(name: String) {
    drop_blocking(name, Vec::new());
}

/// Drops a test database, then roles made for it alone.
pub fn drop_blocking(database: String, roles: Vec<String>) {
    if let Some(template) = TEMPLATE.get() {
        drop_at(template.admin_url.clone(), database, roles);
    }
}

/// Drops a database, then roles, on the server `admin_url` administers.
fn drop_at(admin_url: Url, database: String, roles: Vec<String>) {
    let _ = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            if let Ok(mut admin) = AdminConnection::connect(&admin_url).await {
                let _ = admin
                    .execute(
                        "dropping a test database",
                        &format!("DROP DATABASE IF EXISTS \"{database}\" WITH (FORCE)"),
                    )
                    .await;
                for role in roles {
                    let _ = admin
                        .execute(
                            "dropping a test role",
                            &format!("DROP ROLE IF EXISTS {role}"),
                        )
                        .await;
                }
            }
        });
    })
    .join();
}

/// One audit row, as the tests look at it.
#[derive(Debug, diesel::QueryableByName)]
pub struct AuditRow {
    #[diesel(sql_type = diesel::sql_types::Text)]
    pub actor_kind: String,
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Text>)]
    pub actor_id: Option<String>,
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Uuid>)]
    pub tenant_id: Option<uuid::Uuid>,
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Text>)]
    pub entity_id: Option<String>,
    #[diesel(sql_type = diesel::sql_types::Text)]
    pub payload: String,
}

/// Audit rows with `action`, oldest first. The application role may only
/// append audit rows, so the tests read them as the owner (RLS is forced on
/// the owner too, hence the operator context).
pub async fn audit_rows(test: &TestDb, action: &str) -> Vec<AuditRow> {
    use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
    let mut conn = AsyncPgConnection::establish(test.migration_url.as_str())
        .await
        .unwrap();
    diesel::sql_query("SELECT set_config('app.global_admin', 'on', false)")
        .execute(&mut conn)
        .await
        .unwrap();
    diesel::sql_query(
        "SELECT actor_kind_code AS actor_kind, \
                coalesce(actor_user_id, actor_svc_id)::text AS actor_id, tenant_id, \
                coalesce(entity_id::text, entity_ref_text) AS entity_id, payload_json::text AS payload \
         FROM audit.audit_events WHERE action_key = $1 ORDER BY occurred_utc, audit_id",
    )
    .bind::<diesel::sql_types::Text, _>(action)
    .load(&mut conn)
    .await
    .unwrap()
}
