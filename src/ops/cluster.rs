//! Finding a PostgreSQL server for `dev` and the tests: the configured or
//! local one, else a private cluster started from the installed binaries.

use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::process::Command;
use url::Url;

use super::admin::{AdminConnection, OperatorError, redact};

pub const DEFAULT_ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// Port of the private cluster; away from 5432 so it never shadows a real one.
pub const PRIVATE_PORT: u16 = 54329;

/// Where the admin connection came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AdminServer {
    /// `PORTCULLIS_ADMIN_URL` (or `DATABASE_URL` in the tests) answered.
    Configured(Url),
    /// The default local server answered.
    Local(Url),
    /// A private cluster under `dir`, started (or found running) by us.
    Private { url: Url, dir: PathBuf },
}

impl AdminServer {
    pub fn url(&self) -> &Url {
        match self {
            Self::Configured(url) | Self::Local(url) | Self::Private { url, .. } => url,
        }
    }
}

/// An explicitly configured URL must answer. Without one, the local default
/// is tried, then a private cluster in `private_dir` is started.
pub async fn locate(
    configured: Option<&str>,
    private_dir: &Path,
) -> Result<AdminServer, OperatorError> {
    if let Some(raw) = configured {
        let url = parse_url(raw)?;
        AdminConnection::connect(&url).await?;
        return Ok(AdminServer::Configured(url));
    }
    let local = parse_url(DEFAULT_ADMIN_URL)?;
    if AdminConnection::connect(&local).await.is_ok() {
        return Ok(AdminServer::Local(local));
    }
    tracing::info!("no PostgreSQL answers at {DEFAULT_ADMIN_URL}; starting a private cluster");
    start_private(private_dir).await
}

pub fn parse_url(raw: &str) -> Result<Url, OperatorError> {
    Url::parse(raw)
        .map_err(|error| OperatorError::Invalid(format!("invalid database URL: {error}")))
}

/// Starts (initialising on first use) a cluster in `dir`, listening on
/// 127.0.0.1:[`PRIVATE_PORT`] with trust authentication for local use.
pub async fn start_private(dir: &Path) -> Result<AdminServer, OperatorError> {
    let url = parse_url(&format!(
        "postgres://postgres@127.0.0.1:{PRIVATE_PORT}/postgres"
    ))?;
    // The server runs in its data directory: every path it gets is absolute.
    let dir = &std::path::absolute(dir)
        .map_err(|e| OperatorError::Invalid(format!("cannot resolve {}: {e}", dir.display())))?;
    let private = |url: Url| AdminServer::Private {
        url,
        dir: dir.clone(),
    };
    if AdminConnection::connect(&url).await.is_ok() {
        return Ok(private(url));
    }
    let bin = find_binaries()?;
    let data = dir.join("data");
    let as_postgres = running_as_root().await;
    tokio::fs::create_dir_all(dir)
        .await
        .map_err(|e| OperatorError::Invalid(format!("cannot create {}: {e}", dir.display())))?;
    if as_postgres {
        // initdb refuses to run as root; the cluster belongs to `postgres`.
        run(Command::new("chown").arg("postgres").arg(dir), "chown").await?;
    }
    if !data.join("PG_VERSION").exists() {
        initdb(&bin, &data, as_postgres).await?;
    }
    let mut pg_ctl = command(&bin.join("pg_ctl"), as_postgres);
    pg_ctl
        .arg("-D")
        .arg(&data)
        .arg("-l")
        .arg(dir.join("postgres.log"))
        .arg("-o")
        .arg(format!(
            "-p {PRIVATE_PORT} -c listen_addresses=127.0.0.1 -c unix_socket_directories='{}' -c max_connections=300",
            data.display()
        ))
        .args(["-w", "-t", "60", "start"]);
    run(&mut pg_ctl, "pg_ctl start").await?;

    for _ in 0..50 {
        if AdminConnection::connect(&url).await.is_ok() {
            return Ok(private(url));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Err(OperatorError::Invalid(format!(
        "the private cluster in {} started but {} does not answer; see {}",
        dir.display(),
        redact(&url),
        dir.join("postgres.log").display()
    )))
}

/// A new cluster in `data`: superuser `postgres`, trusted on local
/// connections (a cluster of one's own, for `dev`, the tests, the bench).
pub async fn initdb(bin: &Path, data: &Path, as_postgres: bool) -> Result<(), OperatorError> {
    let mut initdb = command(&bin.join("initdb"), as_postgres);
    initdb
        .arg("-D")
        .arg(data)
        .args(["-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"]);
    run(&mut initdb, "initdb").await
}

/// The directory holding `initdb` and `pg_ctl`, newest major version first.
pub fn find_binaries() -> Result<PathBuf, OperatorError> {
    let mut candidates: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse::<u32>().ok()?;
            Some((version, entry.path().join("bin")))
        })
        .collect();
    candidates.sort_by_key(|(version, _)| std::cmp::Reverse(*version));
    let mut dirs: Vec<PathBuf> = candidates.into_iter().map(|(_, dir)| dir).collect();
    dirs.extend(["/usr/local/pgsql/bin", "/usr/bin"].map(PathBuf::from));
    dirs.into_iter()
        .find(|dir| dir.join("initdb").is_file() && dir.join("pg_ctl").is_file())
        .ok_or_else(|| {
            OperatorError::Invalid(
                "no PostgreSQL server answers and no server binaries (initdb, pg_ctl) are installed: \
                 install the Debian package `postgresql` (apt-get install postgresql), or set \
                 PORTCULLIS_ADMIN_URL to a server you can administer"
                    .into(),
            )
        })
}

pub async fn running_as_root() -> bool {
    match Command::new("id").arg("-u").output().await {
        Ok(output) => String::from_utf8_lossy(&output.stdout).trim() == "0",
        Err(_) => false,
    }
}

/// `program`, as the `postgres` user when `as_postgres` (the server will not run as root).
pub fn command(program: &Path, as_postgres: bool) -> Command {
    if as_postgres {
        let mut command = Command::new("runuser");
        command.args(["-u", "postgres", "--"]).arg(program);
        command
    } else {
        Command::new(program)
    }
}

/// Runs `command` to completion; its standard error is the failure's message.
pub async fn run(command: &mut Command, what: &str) -> Result<(), OperatorError> {
    let output = command
        .output()
        .await
        .map_err(|e| OperatorError::Invalid(format!("cannot run {what}: {e}")))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(OperatorError::Invalid(format!(
            "{what} failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        )))
    }
}
