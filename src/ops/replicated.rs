//! A primary and a hot standby of one's own, under a directory (the tests'
//! and the benchmark's, under `target/`): `initdb` for the primary, with
//! replication allowed in its own `pg_hba.conf`, and `pg_basebackup -R` for
//! the standby, each on its own port, from the installed PostgreSQL
//! binaries. Nothing outside the directory changes.

use std::path::{Path, PathBuf};
use std::time::Duration;

use url::Url;

use super::admin::{AdminConnection, OperatorError};
use super::cluster::{command, find_binaries, initdb, parse_url, run, running_as_root};

pub struct ReplicatedPair {
    pub primary_port: u16,
    pub standby_port: u16,
    /// Whether this call made the pair (empty), rather than finding it.
    pub made_afresh: bool,
    dir: PathBuf,
    bin: PathBuf,
    as_postgres: bool,
}

impl ReplicatedPair {
    /// The pair under `dir`: found running on these ports, else made afresh
    /// (anything left in `dir` stopped and removed) and started.
    pub async fn start(
        dir: &Path,
        primary_port: u16,
        standby_port: u16,
    ) -> Result<Self, OperatorError> {
        let dir = std::path::absolute(dir).map_err(|e| {
            OperatorError::Invalid(format!("cannot resolve {}: {e}", dir.display()))
        })?;
        let mut pair = Self {
            primary_port,
            standby_port,
            made_afresh: false,
            bin: find_binaries()?,
            as_postgres: running_as_root().await,
            dir,
        };
        if pair.answers(primary_port).await {
            if !pair.answers(standby_port).await {
                pair.start_standby().await?;
            }
            return Ok(pair);
        }
        pair.make().await?;
        pair.made_afresh = true;
        Ok(pair)
    }

    async fn make(&self) -> Result<(), OperatorError> {
        for node in ["standby", "primary"] {
            let data = self.dir.join(node);
            if data.join("postmaster.pid").exists() {
                let mut stop = command(&self.bin.join("pg_ctl"), self.as_postgres);
                stop.arg("-D").arg(&data).args(["-m", "immediate", "stop"]);
                let _ = run(&mut stop, "pg_ctl stop").await;
            }
        }
        let cannot = |e: std::io::Error| {
            OperatorError::Invalid(format!("cannot prepare {}: {e}", self.dir.display()))
        };
        if self.dir.exists() {
            std::fs::remove_dir_all(&self.dir).map_err(cannot)?;
        }
        std::fs::create_dir_all(&self.dir).map_err(cannot)?;
        if self.as_postgres {
            run(
                tokio::process::Command::new("chown")
                    .arg("postgres")
                    .arg(&self.dir),
                "chown",
            )
            .await?;
        }
        let primary = self.dir.join("primary");
        initdb(&self.bin, &primary, self.as_postgres).await?;
        // Its own pg_hba.conf: the standby streams over TCP as `postgres`.
        let hba = primary.join("pg_hba.conf");
        let mut rules = std::fs::read_to_string(&hba).map_err(cannot)?;
        rules.push_str("\nhost replication postgres 127.0.0.1/32 trust\n");
        std::fs::write(&hba, rules).map_err(cannot)?;
        self.pg_ctl_start("primary", self.primary_port).await?;
        let mut basebackup = command(&self.bin.join("pg_basebackup"), self.as_postgres);
        basebackup
            .args(["-h", "127.0.0.1", "-p", &self.primary_port.to_string()])
            .args(["-U", "postgres", "-D"])
            .arg(self.dir.join("standby"))
            .args(["-R", "-X", "stream", "--checkpoint=fast", "--no-sync"]);
        run(&mut basebackup, "pg_basebackup").await?;
        self.start_standby().await
    }

    /// A superuser's URL of the primary (`postgres` database).
    pub fn primary_url(&self) -> Url {
        admin_url(self.primary_port)
    }

    /// A superuser's URL of the standby (`postgres` database).
    pub fn standby_url(&self) -> Url {
        admin_url(self.standby_port)
    }

    async fn answers(&self, port: u16) -> bool {
        AdminConnection::connect(&admin_url(port)).await.is_ok()
    }

    async fn pg_ctl_start(&self, node: &str, port: u16) -> Result<(), OperatorError> {
        let data = self.dir.join(node);
        let mut pg_ctl = command(&self.bin.join("pg_ctl"), self.as_postgres);
        pg_ctl
            .arg("-D")
            .arg(&data)
            .arg("-l")
            .arg(self.dir.join(format!("{node}.log")))
            .arg("-o")
            .arg(format!(
                "-p {port} -c listen_addresses=127.0.0.1 -c unix_socket_directories='{}' \
                 -c max_connections=100 -c fsync=off -c wal_level=replica \
                 -c max_wal_senders=4 -c hot_standby=on",
                data.display()
            ))
            .args(["-w", "-t", "60", "start"]);
        run(&mut pg_ctl, "pg_ctl start").await?;
        for _ in 0..100 {
            if self.answers(port).await {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Err(OperatorError::Invalid(format!(
            "the {node} on port {port} does not answer; see {}",
            self.dir.join(format!("{node}.log")).display()
        )))
    }

    /// Starts the standby (again, after [`ReplicatedPair::stop_standby`]).
    pub async fn start_standby(&self) -> Result<(), OperatorError> {
        self.pg_ctl_start("standby", self.standby_port).await
    }

    /// Stops the standby at once, as a crash would.
    pub async fn stop_standby(&self) -> Result<(), OperatorError> {
        let mut pg_ctl = command(&self.bin.join("pg_ctl"), self.as_postgres);
        pg_ctl
            .arg("-D")
            .arg(self.dir.join("standby"))
            .args(["-m", "immediate", "-w", "stop"]);
        run(&mut pg_ctl, "pg_ctl stop").await
    }

    /// Whether the standby still answers.
    pub async fn standby_answers(&self) -> bool {
        self.answers(self.standby_port).await
    }
}

fn admin_url(port: u16) -> Url {
    // A constant shape with a number in it: always a valid URL.
    parse_url(&format!("postgres://postgres@127.0.0.1:{port}/postgres"))
        .unwrap_or_else(|_| unreachable!("a valid URL"))
}
