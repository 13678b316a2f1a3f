//! Command-line interface. Every flag can also come from the environment
//! variable named in `--help`; values that may hold secrets are not echoed.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::authn::{
    Authenticator, AuthnSettings, DevLogDelivery, HashCost, OtpDelivery, OutboxDelivery,
    PasswordError, Passwords, ThrottlePolicy,
};
use crate::db::Db;
use crate::db::PoolSettings;
use crate::ops::admin::AdminError;
use crate::ops::cluster;
use crate::ops::provision::{Environment, Names};
use crate::server::ServerSettings;
use crate::tls::{ServerTls, TlsFileError};
use crate::tokens::{KeyRing, RevocationList, TokenSettings, Tokens};

#[derive(Debug, Parser)]
#[command(name = "portcullis", version, about, propagate_version = true)]
pub struct Cli {
    /// Log lines as JSON or text [default: json for serve, text otherwise].
    #[arg(long, global = true, env = "PORTCULLIS_LOG_FORMAT", value_enum)]
    pub log_format: Option<crate::telemetry::LogFormat>,
    /// Export traces over OTLP/gRPC to this collector (e.g. http://collector:4317).
    #[arg(long, global = true, env = "OTEL_EXPORTER_OTLP_ENDPOINT")]
    pub otlp_endpoint: Option<String>,
    /// Share of new traces exported, 0 to 1 (a caller's `traceparent` decision is followed).
    #[arg(long, global = true, env = "PORTCULLIS_TRACE_SAMPLE_RATIO", default_value_t = 1.0, value_parser = parse_ratio)]
    pub trace_sample_ratio: f64,
    /// `deployment.environment` on exported traces.
    #[arg(
        long,
        global = true,
        env = "PORTCULLIS_ENVIRONMENT",
        default_value = "unknown"
    )]
    pub environment: String,
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
    /// The benchmark harness.
    #[command(subcommand)]
    Bench(BenchCommand),
}

#[derive(Debug, Subcommand)]
pub enum TenantCommand {
    /// Create a tenant (prints its id).
    Create {
        /// Lowercase letters, digits and -, unique.
        #[arg(long)]
        slug: String,
        #[arg(long)]
        name: String,
        #[command(flatten)]
        database: DatabaseArgs,
    },
}

#[derive(Debug, Subcommand)]
pub enum OrgCommand {
    /// Add a node (prints its id).
    Add {
        #[arg(long)]
        tenant: uuid::Uuid,
        /// The parent node; none for a new root.
        #[arg(long)]
        parent: Option<uuid::Uuid>,
        /// Lowercase letters, digits and _, e.g. site.
        #[arg(long = "type")]
        node_type: String,
        #[arg(long)]
        label: String,
        #[command(flatten)]
        database: DatabaseArgs,
    },
}

#[derive(Debug, Subcommand)]
pub enum RoleCommand {
    /// Create a role with its capabilities (prints its id).
    Create {
        #[arg(long)]
        tenant: uuid::Uuid,
        #[arg(long)]
        key: String,
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
    #[arg(long)]
    pub tenant: uuid::Uuid,
    #[arg(long)]
    pub user: uuid::Uuid,
    #[arg(long)]
    pub role: uuid::Uuid,
    #[arg(long)]
    pub node: uuid::Uuid,
    /// Start, RFC 3339 (default: now).
    #[arg(long)]
    pub from: Option<humantime::Timestamp>,
    /// End, RFC 3339 (default: open-ended).
    #[arg(long)]
    pub until: Option<humantime::Timestamp>,
    #[command(flatten)]
    pub database: DatabaseArgs,
}

#[derive(Debug, Args)]
pub struct InviteArgs {
    #[arg(long)]
    pub tenant: uuid::Uuid,
    /// The invitee's email (or --phone).
    #[arg(long, required_unless_present = "phone", conflicts_with = "phone")]
    pub email: Option<String>,
    /// The invitee's phone number, E.164.
    #[arg(long)]
    pub phone: Option<String>,
    #[arg(long)]
    pub role: uuid::Uuid,
    #[arg(long)]
    pub node: uuid::Uuid,
    /// How long the token may be accepted, e.g. 7d or 36h (at most 30d).
    #[arg(long, default_value = "7d")]
    pub expires_in: humantime::Duration,
    #[command(flatten)]
    pub database: DatabaseArgs,
}

#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Provision, migrate and fill the bench database of a profile
    /// (idempotent; deterministic ids).
    Seed {
        #[arg(long, value_enum, default_value = "medium")]
        profile: crate::ops::bench::dataset::Profile,
        #[command(flatten)]
        admin: AdminArgs,
    },
    /// Drive a running server with a mix of requests and report.
    Load {
        #[arg(long, value_enum, default_value = "medium")]
        profile: crate::ops::bench::dataset::Profile,
        /// The server to drive.
        #[arg(long, default_value = "127.0.0.1:50051")]
        addr: String,
        /// Scenario=weight pairs, e.g. check=8,login=1.
        #[arg(long, default_value = "check=1", value_parser = parse_mix)]
        mix: MixArg,
        #[command(flatten)]
        load: LoadArgs,
    },
    /// Start a server on the seeded profile, measure every scenario and the
    /// pgbench floor in one run, and report (table and JSON).
    Run {
        #[arg(long, value_enum, default_value = "medium")]
        profile: crate::ops::bench::dataset::Profile,
        /// Where the server under test listens.
        #[arg(long, default_value = "127.0.0.1:50171")]
        listen: String,
        /// Threads the server gives to password hashing.
        #[arg(long, default_value_t = 1)]
        hashing_threads: usize,
        /// The server's pool size (8 measured best on 2 cores: fewer busy
        /// PostgreSQL backends than clients).
        #[arg(long, default_value_t = 8)]
        pool_size: u32,
        #[command(flatten)]
        load: LoadArgs,
    },
}

#[derive(Debug, Args)]
pub struct LoadArgs {
    #[arg(long, default_value_t = 16)]
    pub concurrency: usize,
    /// Measured time per scenario.
    #[arg(long, default_value = "20s")]
    pub duration: humantime::Duration,
    /// Unmeasured time before it.
    #[arg(long, default_value = "3s")]
    pub warmup: humantime::Duration,
}

/// Scenario weights for `bench load --mix`.
#[derive(Clone, Debug)]
pub struct MixArg(pub Vec<(crate::ops::bench::load::Scenario, u32)>);

fn parse_ratio(raw: &str) -> Result<f64, String> {
    raw.trim()
        .parse::<f64>()
        .ok()
        .filter(|r| (0.0..=1.0).contains(r))
        .ok_or_else(|| "expected a number from 0 to 1".to_owned())
}

fn parse_mix(raw: &str) -> Result<MixArg, String> {
    use clap::ValueEnum;
    raw.split(',')
        .map(|pair| {
            let (name, weight) = pair.split_once('=').unwrap_or((pair, "1"));
            let scenario = crate::ops::bench::load::Scenario::from_str(name.trim(), true)?;
            let weight = weight
                .trim()
                .parse::<u32>()
                .map_err(|e| format!("{pair}: {e}"))?;
            Ok((scenario, weight))
        })
        .collect::<Result<Vec<_>, String>>()
        .map(MixArg)
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create a user; with --with-password, the password is read from
    /// standard input (or asked for twice on a terminal), never an argument.
    Create {
        #[arg(long)]
        tenant: uuid::Uuid,
        #[arg(long)]
        display_name: String,
        #[arg(long)]
        email: Option<String>,
        /// E.164, e.g. +33612345678.
        #[arg(long)]
        phone: Option<String>,
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
        #[arg(long)]
        tenant: uuid::Uuid,
        #[arg(long)]
        email: Option<String>,
        #[arg(long)]
        phone: Option<String>,
        #[command(flatten)]
        hashing: HashArgs,
        #[command(flatten)]
        database: DatabaseArgs,
    },
}

#[derive(Debug, Args)]
pub struct HashArgs {
    /// Argon2id memory cost in KiB (at least OWASP's 19456).
    #[arg(long, env = "PORTCULLIS_ARGON2_MEMORY_KIB", default_value_t = HashCost::OWASP.memory_kib,
          value_parser = clap::value_parser!(u32).range(i64::from(HashCost::OWASP.memory_kib)..=4_194_304))]
    pub argon2_memory_kib: u32,
    /// Argon2id iterations (at least 2).
    #[arg(long, env = "PORTCULLIS_ARGON2_ITERATIONS", default_value_t = HashCost::OWASP.iterations,
          value_parser = clap::value_parser!(u32).range(i64::from(HashCost::OWASP.iterations)..=100))]
    pub argon2_iterations: u32,
    /// Argon2id lanes.
    #[arg(long, env = "PORTCULLIS_ARGON2_PARALLELISM", default_value_t = HashCost::OWASP.parallelism,
          value_parser = clap::value_parser!(u32).range(1..=16))]
    pub argon2_parallelism: u32,
    /// Threads that hash passwords [default: one less than the CPUs, at least 1].
    #[arg(long, env = "PORTCULLIS_HASHING_THREADS")]
    pub hashing_threads: Option<usize>,
    /// How long a login waits for a hashing thread before UNAVAILABLE.
    #[arg(long, env = "PORTCULLIS_HASHING_QUEUE_TIMEOUT", default_value = "5s")]
    pub hashing_queue_timeout: humantime::Duration,
}

impl HashArgs {
    pub fn passwords(&self) -> Result<Passwords, PasswordError> {
        let threads = self.hashing_threads.unwrap_or_else(|| {
            std::thread::available_parallelism().map_or(1, |n| n.get().saturating_sub(1).max(1))
        });
        Passwords::new(
            HashCost {
                memory_kib: self.argon2_memory_kib,
                iterations: self.argon2_iterations,
                parallelism: self.argon2_parallelism,
            },
            threads,
            self.hashing_queue_timeout.into(),
        )
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum OtpDeliveryKind {
    /// Write codes to auth.otp_outbox for a sender process.
    Outbox,
    /// Print codes in the log: for dev only.
    Log,
}

#[derive(Debug, Args)]
pub struct AuthnArgs {
    /// Lifetime of user access tokens.
    #[arg(long, env = "PORTCULLIS_ACCESS_TOKEN_LIFETIME", default_value = "15m")]
    pub access_token_lifetime: humantime::Duration,
    /// Lifetime of a login session (its refresh token rotates within it).
    #[arg(
        long,
        env = "PORTCULLIS_REFRESH_TOKEN_LIFETIME",
        default_value = "30days"
    )]
    pub refresh_token_lifetime: humantime::Duration,
    /// Where one-time codes go [default: outbox for serve, log for dev].
    #[arg(long, env = "PORTCULLIS_OTP_DELIVERY", value_enum)]
    pub otp_delivery: Option<OtpDeliveryKind>,
    /// Failed logins per login name before it locks.
    #[arg(
        long,
        env = "PORTCULLIS_LOGIN_FAILURES_BEFORE_LOCK",
        default_value_t = 5
    )]
    pub login_failures_before_lock: i32,
    /// Failed logins per client address before it locks.
    #[arg(
        long,
        env = "PORTCULLIS_ADDRESS_FAILURES_BEFORE_LOCK",
        default_value_t = 50
    )]
    pub address_failures_before_lock: i32,
    /// Failures older than this are forgotten.
    #[arg(long, env = "PORTCULLIS_LOGIN_FAILURE_WINDOW", default_value = "15m")]
    pub login_failure_window: humantime::Duration,
    /// Failed one-time-code verifications per destination, across codes,
    /// before it is locked for the rest of a day.
    #[arg(
        long,
        env = "PORTCULLIS_CODE_FAILURES_PER_DESTINATION",
        default_value_t = 10
    )]
    pub code_failures_per_destination: i32,
    /// RequestOtp and ResetPassword calls per client address per hour.
    #[arg(
        long,
        env = "PORTCULLIS_CODE_REQUESTS_PER_ADDRESS",
        default_value_t = 30
    )]
    pub code_requests_per_address: i32,
    /// Take the client address from `x-forwarded-for` (only behind a proxy
    /// that appends to it) instead of the TCP peer: the entry the trusted
    /// proxies appended, never one the client wrote.
    #[arg(long, env = "PORTCULLIS_TRUST_FORWARDED_FOR")]
    pub trust_forwarded_for: bool,
    /// With --trust-forwarded-for: how many proxies in front of Portcullis
    /// append to `x-forwarded-for`; the client is that many entries from
    /// the right.
    #[arg(long, env = "PORTCULLIS_TRUSTED_PROXY_HOPS", default_value_t = 1, value_parser = clap::value_parser!(u8).range(1..))]
    pub trusted_proxy_hops: u8,
    #[command(flatten)]
    pub hashing: HashArgs,
}

impl AuthnArgs {
    pub fn settings(&self) -> AuthnSettings {
        AuthnSettings {
            access_lifetime: self.access_token_lifetime.into(),
            refresh_lifetime: self.refresh_token_lifetime.into(),
            throttle: ThrottlePolicy {
                login_threshold: self.login_failures_before_lock,
                address_threshold: self.address_failures_before_lock,
                window: self.login_failure_window.into(),
                code_failures_per_destination: self.code_failures_per_destination,
                requests_per_address: self.code_requests_per_address,
                ..ThrottlePolicy::default()
            },
            ..AuthnSettings::default()
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Write a new Ed25519 signing key (PKCS#8 PEM, mode 0600) into a directory.
    ///
    /// The file is named for the moment the key starts signing. Roll it out
    /// to every replica before that moment (--activate-in) so that all of
    /// them can verify its tokens before any replica issues one.
    Generate {
        /// The signing-keys directory the servers read.
        #[arg(long, env = "PORTCULLIS_SIGNING_KEYS_DIR")]
        dir: PathBuf,
        /// Start signing this long from now.
        #[arg(long, default_value = "0s")]
        activate_in: humantime::Duration,
    },
}

#[derive(Debug, Subcommand)]
pub enum ServiceCommand {
    /// Create a service account.
    Create {
        #[arg(long)]
        key: String,
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
        #[arg(long)]
        key: String,
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
        #[arg(long)]
        key: String,
        #[arg(long = "permission")]
        permissions: Vec<String>,
        #[command(flatten)]
        database: DatabaseArgs,
    },
}

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
pub struct AdminArgs {
    /// URL of a superuser connection used to provision
    /// [default: postgres://postgres@127.0.0.1:5432/postgres]
    #[arg(long, env = "PORTCULLIS_ADMIN_URL", hide_env_values = true)]
    pub admin_url: Option<String>,
}

#[derive(Debug, Args)]
pub struct NameArgs {
    /// Database name [default: portcullis_<env>]
    #[arg(long, env = "PORTCULLIS_DATABASE_NAME")]
    pub database: Option<String>,
    /// Owner role [default: portcullis_<env>_owner]
    #[arg(long, env = "PORTCULLIS_OWNER_ROLE")]
    pub owner_role: Option<String>,
    /// Application (login) role [default: portcullis_<env>_app]
    #[arg(long, env = "PORTCULLIS_APP_ROLE")]
    pub app_role: Option<String>,
}

impl AdminArgs {
    /// The configured admin URL, or the local default.
    pub fn url(&self) -> Result<url::Url, AdminError> {
        cluster::parse_url(
            self.admin_url
                .as_deref()
                .unwrap_or(cluster::DEFAULT_ADMIN_URL),
        )
    }
}

impl NameArgs {
    /// The names given, the environment's defaults for the rest.
    pub fn resolve(&self, env: Environment) -> Result<Names, AdminError> {
        let defaults = Names::for_environment(env);
        Names::new(
            self.database.as_deref().unwrap_or(&defaults.database),
            self.owner_role.as_deref().unwrap_or(&defaults.owner_role),
            self.app_role.as_deref().unwrap_or(&defaults.app_role),
        )
    }
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

#[derive(Debug, Args)]
pub struct PoolArgs {
    /// Maximum pooled connections.
    #[arg(long, env = "PORTCULLIS_POOL_SIZE", default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub pool_size: u32,
    /// How long a call waits for a connection before answering UNAVAILABLE.
    #[arg(long, env = "PORTCULLIS_POOL_ACQUIRE_TIMEOUT", default_value = "2s")]
    pub pool_acquire_timeout: humantime::Duration,
    /// Idle connections are closed after this long.
    #[arg(long, env = "PORTCULLIS_POOL_IDLE_TIMEOUT", default_value = "10m")]
    pub pool_idle_timeout: humantime::Duration,
    /// Connections are replaced after this long.
    #[arg(long, env = "PORTCULLIS_POOL_MAX_LIFETIME", default_value = "30m")]
    pub pool_max_lifetime: humantime::Duration,
    /// Longest a database statement may run (statement_timeout).
    #[arg(long, env = "PORTCULLIS_DB_STATEMENT_TIMEOUT", default_value = "5s")]
    pub db_statement_timeout: humantime::Duration,
    /// Longest a transaction may sit idle (idle_in_transaction_session_timeout).
    #[arg(
        long,
        env = "PORTCULLIS_DB_IDLE_IN_TRANSACTION_TIMEOUT",
        default_value = "10s"
    )]
    pub db_idle_in_transaction_timeout: humantime::Duration,
    /// Keep prepared statements across transactions. Set false behind
    /// PgBouncer older than 1.21 in transaction pooling mode (or without
    /// max_prepared_statements): statements are then prepared inside each
    /// transaction, at a cost on the hot path (see README, Operations).
    #[arg(
        long,
        env = "PORTCULLIS_DB_STATEMENT_CACHE",
        default_value_t = true,
        action = clap::ArgAction::Set
    )]
    pub db_statement_cache: bool,
}

impl PoolArgs {
    pub fn settings(&self) -> PoolSettings {
        PoolSettings {
            max_size: self.pool_size,
            acquire_timeout: self.pool_acquire_timeout.into(),
            idle_timeout: Some(self.pool_idle_timeout.into()),
            max_lifetime: Some(self.pool_max_lifetime.into()),
            statement_timeout: self.db_statement_timeout.into(),
            idle_in_transaction_timeout: self.db_idle_in_transaction_timeout.into(),
            statement_cache: self.db_statement_cache,
        }
    }
}

#[derive(Debug, Args)]
pub struct DatabaseArgs {
    /// PostgreSQL URL of the application role (not a superuser, not the owner).
    #[arg(long, env = "PORTCULLIS_DATABASE_URL", hide_env_values = true)]
    pub database_url: String,
    /// URL of a read replica (a hot standby, same application role) that
    /// answers CheckCapability, CheckCapabilities and ListVisibleOrgNodes;
    /// their answers may then trail changes by the replication lag.
    #[arg(long, env = "PORTCULLIS_DATABASE_READ_URL", hide_env_values = true)]
    pub database_read_url: Option<String>,
    #[command(flatten)]
    pub pool: PoolArgs,
}

#[derive(Debug, Args)]
pub struct ServerArgs {
    /// Address to serve gRPC on.
    #[arg(long, env = "PORTCULLIS_LISTEN", default_value = "127.0.0.1:50051")]
    pub listen: SocketAddr,
    /// How often the database is probed for gRPC health.
    #[arg(long, env = "PORTCULLIS_HEALTH_INTERVAL", default_value = "2s")]
    pub health_interval: humantime::Duration,
    /// How long in-flight calls may finish after SIGTERM or SIGINT.
    #[arg(long, env = "PORTCULLIS_SHUTDOWN_GRACE", default_value = "30s")]
    pub shutdown_grace: humantime::Duration,
    /// Issuer (`iss`) and audience (`aud`) of the tokens this service signs.
    #[arg(long, env = "PORTCULLIS_TOKEN_ISSUER", default_value = "portcullis")]
    pub token_issuer: String,
    /// Clock skew tolerated when checking a token's `exp` and `nbf` (at
    /// most 5m: revoked sessions are listed that long past their expiry).
    #[arg(long, env = "PORTCULLIS_TOKEN_LEEWAY", default_value = "30s", value_parser = parse_leeway)]
    pub token_leeway: humantime::Duration,
    /// Lifetime of service tokens issued by ExchangeServiceCredential.
    #[arg(long, env = "PORTCULLIS_SERVICE_TOKEN_LIFETIME", default_value = "10m")]
    pub service_token_lifetime: humantime::Duration,
    /// How often each replica refreshes its list of revoked sessions. A
    /// revoked token is refused everywhere within this plus the query time,
    /// and never later than 5 seconds: a replica whose list is older
    /// refuses tokens until it catches up.
    #[arg(
        long,
        env = "PORTCULLIS_REVOCATION_POLL_INTERVAL",
        default_value = "1s"
    )]
    pub revocation_poll_interval: humantime::Duration,
    /// Most checks one CheckCapabilities call may carry.
    #[arg(long, env = "PORTCULLIS_MAX_BATCH_CHECKS", default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub max_batch_checks: u32,
    /// Serve Prometheus metrics (GET /metrics) on this address [default:
    /// off for serve, 127.0.0.1:9464 for dev].
    #[arg(long, env = "PORTCULLIS_METRICS_LISTEN")]
    pub metrics_listen: Option<SocketAddr>,
    /// Serve gRPC over TLS with this PEM certificate chain (with --tls-key).
    #[arg(long, env = "PORTCULLIS_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert.
    #[arg(long, env = "PORTCULLIS_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Require client certificates issued by this PEM CA (mutual TLS).
    #[arg(long, env = "PORTCULLIS_TLS_CLIENT_CA", requires = "tls_cert")]
    pub tls_client_ca: Option<PathBuf>,
    #[command(flatten)]
    pub authn: AuthnArgs,
}

impl ServerArgs {
    /// The server settings; TLS files are read and checked here.
    pub fn settings(&self) -> Result<ServerSettings, TlsFileError> {
        let tls = match (&self.tls_cert, &self.tls_key) {
            (Some(cert), Some(key)) => {
                Some(ServerTls::load(cert, key, self.tls_client_ca.as_deref())?)
            }
            _ => None,
        };
        Ok(ServerSettings {
            health_interval: self.health_interval.into(),
            shutdown_grace: self.shutdown_grace.into(),
            service_token_lifetime: self.service_token_lifetime.into(),
            revocation_poll_interval: self.revocation_poll_interval.into(),
            max_batch_checks: self.max_batch_checks as usize,
            trust_forwarded_for: self.authn.trust_forwarded_for,
            trusted_proxy_hops: usize::from(self.authn.trusted_proxy_hops),
            metrics_listen: self.metrics_listen,
            tls,
        })
    }

    pub fn token_settings(&self) -> TokenSettings {
        TokenSettings {
            issuer: self.token_issuer.clone(),
            audience: self.token_issuer.clone(),
            leeway: self.token_leeway.into(),
        }
    }

    /// Everything the server needs to authenticate anyone: tokens over
    /// `keys` (with an empty revocation list the server keeps in sync), the
    /// hashing pool and the code delivery.
    pub fn authenticator(
        &self,
        db: Db,
        keys: KeyRing,
        default_delivery: OtpDeliveryKind,
    ) -> Result<std::sync::Arc<Authenticator>, PasswordError> {
        let tokens = std::sync::Arc::new(Tokens::new(
            keys,
            self.token_settings(),
            std::sync::Arc::new(RevocationList::default()),
        ));
        let delivery: std::sync::Arc<dyn OtpDelivery> =
            match self.authn.otp_delivery.unwrap_or(default_delivery) {
                OtpDeliveryKind::Outbox => std::sync::Arc::new(OutboxDelivery),
                OtpDeliveryKind::Log => std::sync::Arc::new(DevLogDelivery),
            };
        Ok(std::sync::Arc::new(Authenticator {
            db,
            tokens,
            passwords: std::sync::Arc::new(self.authn.hashing.passwords()?),
            delivery,
            settings: self.authn.settings(),
        }))
    }

    /// How long a superseded signing key keeps verifying: long enough for
    /// every token it signed to expire.
    pub fn key_retirement_grace(&self) -> std::time::Duration {
        let service: std::time::Duration = self.service_token_lifetime.into();
        let user: std::time::Duration = self.authn.access_token_lifetime.into();
        let leeway: std::time::Duration = self.token_leeway.into();
        service.max(user) + leeway
    }
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub server: ServerArgs,
    /// Directory of Ed25519 signing keys (`ed25519-<time>.pem`, from
    /// `portcullis keys generate`). The newest active key signs; all verify.
    #[arg(long, env = "PORTCULLIS_SIGNING_KEYS_DIR")]
    pub signing_keys_dir: PathBuf,
    #[command(flatten)]
    pub database: DatabaseArgs,
}

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
}

/// A leeway no longer than revocations are remembered past expiry.
fn parse_leeway(raw: &str) -> Result<humantime::Duration, String> {
    let leeway: humantime::Duration = raw.parse().map_err(|e| format!("{e}"))?;
    if *leeway > crate::tokens::MAX_LEEWAY {
        return Err(format!(
            "at most {}",
            humantime::format_duration(crate::tokens::MAX_LEEWAY)
        ));
    }
    Ok(leeway)
}
