//! The server under test: a `portcullis serve` process this harness starts
//! on the seeded bench database, and waits for until it is healthy.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use tokio::process::{Child, Command};

/// How to start the server under test.
#[derive(Clone, Debug)]
pub struct ServerUnderTest {
    /// The `portcullis` binary to run.
    pub binary: PathBuf,
    /// The application role's URL of the bench database.
    pub app_url: String,
    pub listen: String,
    /// Where it answers `/forward-auth`.
    pub forward_auth_listen: String,
    /// Where it serves its metrics.
    pub metrics_listen: String,
    pub hashing_threads: usize,
    pub pool_size: u32,
    /// Its request threads.
    pub worker_threads: u16,
    /// A read replica's URL (`--database-read-url`), if any.
    pub read_url: Option<String>,
}

/// A running server under test: killed and its signing keys removed when
/// dropped.
pub struct RunningServer {
    pub process: Child,
    keys: PathBuf,
}

impl Drop for RunningServer {
    fn drop(&mut self) {
        let _ = self.process.start_kill();
        let _ = std::fs::remove_dir_all(&self.keys);
    }
}

impl RunningServer {
    pub fn pid(&self) -> Option<u32> {
        self.process.id()
    }

    /// Stops the process and waits for it to exit.
    pub async fn stop(mut self) {
        let _ = self.process.start_kill();
        let _ = self.process.wait().await;
    }
}

/// The `portcullis` binary beside this one (`cargo build --release
/// --workspace` builds both into the same directory).
pub fn sibling_binary() -> anyhow::Result<PathBuf> {
    let me = std::env::current_exe().context("finding this binary")?;
    Ok(me.with_file_name("portcullis"))
}

impl ServerUnderTest {
    /// Starts the server with a fresh signing key and waits until it
    /// answers health checks with SERVING.
    pub async fn start(&self) -> anyhow::Result<(RunningServer, tonic::transport::Channel)> {
        if !self.binary.is_file() {
            bail!(
                "{} does not exist: build it (`cargo build --release --workspace`) or name one \
                 with --server-bin",
                self.binary.display()
            );
        }
        let keys = std::env::temp_dir().join(format!(
            "portcullis-bench-keys-{}",
            uuid::Uuid::new_v4().simple()
        ));
        #[allow(clippy::disallowed_methods)] // the harness is an edge: it reads the clock
        let now = chrono::Utc::now();
        portcullis::tokens::keys::generate_key_file(&keys, now - chrono::Duration::minutes(1))?;
        let process = self.spawn(&keys)?;
        let server = RunningServer { process, keys };
        let channel = healthy(&self.listen).await?;
        Ok((server, channel))
    }

    fn spawn(&self, keys: &Path) -> anyhow::Result<Child> {
        let mut command = Command::new(&self.binary);
        if let Some(url) = &self.read_url {
            command.env("PORTCULLIS_DATABASE_READ_URL", url);
        }
        command
            .arg("serve")
            .env("PORTCULLIS_DATABASE_URL", &self.app_url)
            .env("PORTCULLIS_SIGNING_KEYS_DIR", keys)
            .env("PORTCULLIS_LISTEN", &self.listen)
            .env("PORTCULLIS_FORWARD_AUTH_LISTEN", &self.forward_auth_listen)
            // The harness asks /forward-auth as nginx does.
            .env("PORTCULLIS_FORWARD_AUTH_MODE", "nginx")
            .env("PORTCULLIS_METRICS_LISTEN", &self.metrics_listen)
            .env("PORTCULLIS_POOL_SIZE", self.pool_size.to_string())
            .env("PORTCULLIS_WORKER_THREADS", self.worker_threads.to_string())
            .env(
                "PORTCULLIS_HASHING_THREADS",
                self.hashing_threads.to_string(),
            )
            .env("PORTCULLIS_HASHING_QUEUE_TIMEOUT", "60s")
            // The load logs in as the same few users over and over.
            .env("PORTCULLIS_LOGIN_FAILURES_BEFORE_LOCK", "1000000")
            .env("PORTCULLIS_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {} serve", self.binary.display()))
    }
}

/// Waits until the server at `listen` answers health checks with SERVING.
async fn healthy(listen: &str) -> anyhow::Result<tonic::transport::Channel> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let endpoint = tonic::transport::Channel::from_shared(format!("http://{listen}"))?;
        match endpoint.connect().await {
            Ok(channel) => {
                let health = tonic_health::pb::health_client::HealthClient::new(channel.clone())
                    .check(tonic_health::pb::HealthCheckRequest::default())
                    .await;
                if health.is_ok_and(|h| h.into_inner().status == 1) {
                    // Let the revocation list make its first sync.
                    tokio::time::sleep(Duration::from_millis(1500)).await;
                    return Ok(channel);
                }
            }
            Err(_) if Instant::now() < deadline => {}
            Err(error) => return Err(error.into()),
        }
        if Instant::now() > deadline {
            bail!("the server did not become healthy");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
