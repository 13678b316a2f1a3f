//! Arguments several commands share: the database, the pool, the
//! superuser connection and the environment, password hashing.

use anyhow::Context;
use clap::Args;

use crate::authn::{HashCost, PasswordError, Passwords};
use crate::consistency::Requirement;
use crate::db::{Db, PoolSettings, ReplicaSettings};
use crate::ops::admin::OperatorError;
use crate::ops::cluster;
use crate::ops::provision::connections::ConnectionFile;
use crate::ops::provision::{self, Environment, Names, Secrets, ServiceName};
use std::path::PathBuf;

#[derive(Debug, Args)]
pub struct AdminArgs {
    /// URL of a superuser connection used to provision
    /// [default: postgres://postgres@127.0.0.1:5432/postgres]
    #[arg(long, env = "PORTCULLIS_ADMIN_URL", hide_env_values = true)]
    pub admin_url: Option<String>,
}

/// Which environment, its database, and where its passwords are.
#[derive(Debug, Args)]
pub struct EnvArgs {
    /// The environment: dev, tst, qua or prd (the platform's names).
    #[arg(long, value_enum)]
    pub env: Environment,
    /// The environment's database [default: <platform>-<env>].
    #[arg(long, env = "PORTCULLIS_DATABASE_NAME")]
    pub database: Option<String>,
    /// The platform name in the default database name.
    #[arg(long, env = "PORTCULLIS_PLATFORM", default_value = provision::DEFAULT_PLATFORM)]
    pub platform: String,
    /// A file of NAME=value lines (the platform's `.env.<env>`) holding the
    /// role passwords; the process environment wins over it.
    #[arg(long)]
    pub env_file: Option<PathBuf>,
}

impl AdminArgs {
    /// The configured admin URL, or the local default.
    pub fn url(&self) -> Result<url::Url, OperatorError> {
        cluster::parse_url(
            self.admin_url
                .as_deref()
                .unwrap_or(cluster::DEFAULT_ADMIN_URL),
        )
    }
}

impl EnvArgs {
    pub fn database_name(&self) -> String {
        self.database
            .clone()
            .unwrap_or_else(|| provision::default_database(&self.platform, self.env))
    }

    /// Portcullis's names in this environment.
    pub fn names(&self) -> Result<Names, OperatorError> {
        let service = ServiceName::parse(provision::SERVICE)?;
        Names::for_service(&service, self.env, &self.database_name())
    }

    pub fn secrets(&self) -> Result<Secrets, OperatorError> {
        Secrets::load(self.env_file.as_deref())
    }
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
    /// transaction, at a cost on the hot path (the book:
    /// operations/performance.md, "Tuning").
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
    #[arg(
        long,
        env = "PORTCULLIS_DATABASE_URL",
        hide_env_values = true,
        required_unless_present = "connections_file"
    )]
    pub database_url: Option<String>,
    /// Or a connections file written by `db provision`: the application
    /// role's URL, its password reference (${AUTH_APP_<ENV>_PASSWORD})
    /// read from the environment.
    #[arg(
        long,
        env = "PORTCULLIS_CONNECTIONS_FILE",
        conflicts_with = "database_url"
    )]
    pub connections_file: Option<PathBuf>,
    #[command(flatten)]
    pub pool: PoolArgs,
}

#[derive(Debug, Args)]
pub struct ReplicaArgs {
    /// URL of a read replica (a hot standby streaming from the primary,
    /// reached as the same application role; one server per URL). Repeat
    /// the flag, or separate URLs with commas, for several. Checks,
    /// listings and the gateways read from a replica only when it is fresh
    /// enough for the request (see --default-consistency), else from the
    /// primary.
    #[arg(
        long,
        env = "PORTCULLIS_DATABASE_READ_URL",
        hide_env_values = true,
        value_delimiter = ','
    )]
    pub database_read_url: Vec<String>,
    /// How fresh a read must be when its request says nothing (no
    /// x-consistency header): `fully_consistent` (the primary) or
    /// `max_staleness=<duration>`. A request's x-consistency-token is
    /// honoured on top of it. Without a replica every read is the
    /// primary's.
    #[arg(long, env = "PORTCULLIS_DEFAULT_CONSISTENCY", default_value = "max_staleness=1s",
          value_parser = Requirement::parse_default)]
    pub default_consistency: Requirement,
    /// How long a read waits for a replica fresh enough for it before it
    /// reads the primary.
    #[arg(long, env = "PORTCULLIS_REPLICA_WAIT", default_value = "30ms")]
    pub replica_wait: humantime::Duration,
    /// A replica further behind the primary than this is out of rotation
    /// until it catches up.
    #[arg(long, env = "PORTCULLIS_REPLICA_MAX_LAG", default_value = "5s")]
    pub replica_max_lag: humantime::Duration,
    /// How often the primary's log position and each replica's replay
    /// position are read.
    #[arg(long, env = "PORTCULLIS_REPLICA_POLL", default_value = "10ms")]
    pub replica_poll: humantime::Duration,
}

impl ReplicaArgs {
    /// `db` with these replicas, each pooled as `pool` says.
    pub fn apply(&self, db: Db, pool: &PoolArgs) -> anyhow::Result<Db> {
        db.with_read_replicas(&self.database_read_url, &pool.settings(), self.settings())
            .context("--database-read-url")
    }

    fn settings(&self) -> ReplicaSettings {
        ReplicaSettings {
            default: self.default_consistency,
            wait: self.replica_wait.into(),
            max_lag: self.replica_max_lag.into(),
            poll: self.replica_poll.into(),
        }
    }
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

/// The application role's database (and its read replicas, if any).
pub fn database(args: &DatabaseArgs) -> anyhow::Result<Db> {
    let settings = args.pool.settings();
    let db = match (&args.database_url, &args.connections_file) {
        (Some(url), _) => Db::new(url, &settings).context("--database-url")?,
        (None, Some(path)) => {
            let url = ConnectionFile::read(path)?.app_url(&Secrets::load(None)?)?;
            Db::new(url.as_str(), &settings).context("--connections-file")?
        }
        (None, None) => anyhow::bail!("give --database-url or --connections-file"),
    };
    Ok(db)
}
