//! A PgBouncer of a test's own (transaction pooling, in front of the shared
//! PostgreSQL), which the test may restart without touching the PgBouncer
//! the rest of the suite goes through. Only where PgBouncer is installed:
//! the suite's PgBouncer run (`PORTCULLIS_TEST_PGBOUNCER`) has it.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::net::TcpStream;
use tokio::process::{Child, Command};

pub struct Bouncer {
    pub port: u16,
    dir: tempfile::TempDir,
    binary: PathBuf,
    child: Option<Child>,
}

impl Bouncer {
    /// A PgBouncer for `user`, in front of `upstream` (host, port); `None`
    /// where PgBouncer is not installed.
    pub async fn start(upstream: (&str, u16), user: &str) -> Option<Self> {
        let binary = ["/usr/sbin/pgbouncer", "/usr/bin/pgbouncer"]
            .into_iter()
            .map(PathBuf::from)
            .find(|path| path.exists())?;
        let port = crate::support::ports::unused_port();
        let dir = tempfile::tempdir().unwrap();
        let (host, upstream_port) = upstream;
        std::fs::write(
            dir.path().join("pgbouncer.ini"),
            format!(
                "[databases]\n* = host={host} port={upstream_port}\n\n[pgbouncer]\n\
                 listen_addr = 127.0.0.1\nlisten_port = {port}\nunix_socket_dir =\n\
                 auth_type = trust\nauth_file = {users}\npool_mode = transaction\n\
                 default_pool_size = 4\nmax_client_conn = 200\nserver_reset_query =\n\
                 ignore_startup_parameters = extra_float_digits\n",
                users = dir.path().join("users.txt").display()
            ),
        )
        .unwrap();
        std::fs::write(dir.path().join("users.txt"), format!("\"{user}\" \"\"\n")).unwrap();
        let mut bouncer = Self {
            port,
            dir,
            binary,
            child: None,
        };
        bouncer.launch().await;
        Some(bouncer)
    }

    /// Kills the process (its connections drop at once, as in a crash or
    /// a hard restart) and starts it again on the same port.
    pub async fn restart(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().await.unwrap();
        }
        self.launch().await;
    }

    async fn launch(&mut self) {
        let mut command = Command::new(&self.binary);
        // PgBouncer will not run as root.
        if running_as_root() {
            let chown = std::process::Command::new("chown")
                .arg("-R")
                .arg("postgres")
                .arg(self.dir.path())
                .status()
                .unwrap();
            assert!(chown.success());
            command.arg("-u").arg("postgres");
        }
        command
            .arg(self.dir.path().join("pgbouncer.ini"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true);
        self.child = Some(command.spawn().unwrap());
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", self.port)).await.is_err() {
            assert!(Instant::now() < deadline, "PgBouncer did not start");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

fn running_as_root() -> bool {
    std::process::Command::new("id")
        .arg("-u")
        .output()
        .map(|out| out.stdout.starts_with(b"0\n"))
        .unwrap_or(false)
}
