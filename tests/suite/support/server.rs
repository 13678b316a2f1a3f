//! A real server on a real socket, in-process.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use portcullis::app::{App, ServerSettings, Settings};
use portcullis::authn::{AuthnSettings, HashCost, OutboxDelivery, Passwords};
use portcullis::db::Db;
use portcullis::server;
use portcullis::tokens::{KeyRing, RevocationList, TokenSettings, Tokens};
use tokio::sync::oneshot;
use tonic::transport::Channel;

use super::ports::unused_port;

pub struct TestServer {
    pub addr: SocketAddr,
    /// Where `/forward-auth` answers (`host:port`), when built with it.
    pub forward_auth: Option<String>,
    /// The AuthZEN API's base URL, when built with it.
    pub authzen: Option<String>,
    /// Where the metrics are served, when built with them.
    pub metrics: Option<SocketAddr>,
    pub tokens: Arc<Tokens>,
    pub passwords: Arc<Passwords>,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<Result<(), server::ServeError>>,
}

/// A test server as a test wants it: the tests' defaults, then what the
/// test changes, and the HTTP listeners it asks for, each on a port of its
/// own.
pub struct ServerBuilder {
    app: App,
}

impl ServerBuilder {
    pub fn new(db: Db) -> Self {
        Self {
            app: test_app(db, test_tokens(), AuthnSettings::default(), test_settings()),
        }
    }

    pub fn tokens(mut self, tokens: Arc<Tokens>) -> Self {
        self.app.tokens = tokens;
        self
    }

    pub fn authn(mut self, authn: AuthnSettings) -> Self {
        self.app.settings.authn = authn;
        self
    }

    /// Changes the server settings.
    pub fn settings(mut self, configure: impl FnOnce(&mut ServerSettings)) -> Self {
        configure(&mut self.app.settings.server);
        self
    }

    /// Changes anything else of the application (its hashing, its
    /// delivery, its federation).
    pub fn app(mut self, configure: impl FnOnce(&mut App)) -> Self {
        configure(&mut self.app);
        self
    }

    /// Serves `/forward-auth`.
    pub fn forward_auth(self) -> Self {
        self.settings(|s| s.forward_auth_listen = Some(local(unused_port())))
    }

    /// Serves the AuthZEN API, its base URL its own address.
    pub fn authzen(self) -> Self {
        let port = unused_port();
        self.settings(|s| {
            s.authzen_listen = Some(local(port));
            s.authzen_base_url = Some(format!("http://127.0.0.1:{port}"));
        })
    }

    /// Serves the metrics.
    pub fn metrics(self) -> Self {
        self.settings(|s| s.metrics_listen = Some(local(unused_port())))
    }

    pub async fn start(self) -> TestServer {
        TestServer::start_app(self.app).await
    }
}

fn local(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

pub fn test_settings() -> ServerSettings {
    ServerSettings {
        health_interval: Duration::from_millis(100),
        shutdown_grace: Duration::from_secs(5),
        service_token_lifetime: Duration::from_secs(600),
        revocation_poll_interval: Duration::from_millis(100),
        max_batch_checks: 1000,
        trust_forwarded_for: false,
        trusted_proxy_hops: 1,
        metrics_listen: None,
        tls: None,
        ..ServerSettings::default()
    }
}

/// The application with the deliberately cheap test hashing cost.
pub fn test_app(db: Db, tokens: Arc<Tokens>, authn: AuthnSettings, server: ServerSettings) -> App {
    App {
        db,
        tokens,
        passwords: Arc::new(
            Passwords::new(HashCost::INSECURE_FAST_FOR_TESTS, 2, Duration::from_secs(5)).unwrap(),
        ),
        delivery: Arc::new(OutboxDelivery),
        federation: Arc::new(portcullis::authn::Federation::none()),
        settings: Settings { authn, server },
    }
}

/// A user access token for `user` of `tenant`, ten minutes, new session.
/// A service token signed by `tokens`, for ten minutes, with `permissions`
/// (and bound to `tenant` when given), as an exchange would issue it.
pub fn service_token(tokens: &Tokens, tenant: Option<uuid::Uuid>, permissions: &[&str]) -> String {
    use secrecy::ExposeSecret;
    tokens
        .issue(
            &portcullis::tokens::NewToken {
                typ: portcullis::tokens::TokenType::Service,
                subject: uuid::Uuid::new_v4(),
                tenant,
                session: uuid::Uuid::new_v4(),
                permissions: permissions.iter().map(|p| (*p).to_owned()).collect(),
                lifetime: Duration::from_secs(600),
                service_key: Some("test-service".into()),
            },
            Utc::now(),
        )
        .unwrap()
        .token
        .expose_secret()
        .to_owned()
}

pub fn user_token(tokens: &Tokens, tenant: uuid::Uuid, user: uuid::Uuid) -> String {
    use secrecy::ExposeSecret;
    tokens
        .issue(
            &portcullis::tokens::NewToken {
                typ: portcullis::tokens::TokenType::User,
                subject: user,
                tenant: Some(tenant),
                session: uuid::Uuid::new_v4(),
                permissions: Vec::new(),
                lifetime: Duration::from_secs(600),
                service_key: None,
            },
            Utc::now(),
        )
        .unwrap()
        .token
        .expose_secret()
        .to_owned()
}

/// What the server says when it refuses to start with `settings`
/// (it must refuse at once, serving nothing).
pub async fn refused_at_start(db: Db, settings: ServerSettings) -> String {
    let app = test_app(db, test_tokens(), AuthnSettings::default(), settings);
    let listener = server::bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let refused = tokio::time::timeout(
        Duration::from_secs(10),
        server::serve(app, listener, std::future::pending()),
    )
    .await
    .expect("the server refuses at once");
    refused.unwrap_err().to_string()
}

/// A token service with a fresh in-memory key.
pub fn test_tokens() -> Arc<Tokens> {
    // Active since yesterday, so tests can mint tokens issued in the past.
    test_tokens_with(KeyRing::ephemeral(
        Utc::now() - chrono::Duration::days(1),
        Duration::from_secs(660),
    ))
}

pub fn test_tokens_with(keys: KeyRing) -> Arc<Tokens> {
    Arc::new(Tokens::new(
        keys,
        TokenSettings::default(),
        Arc::new(RevocationList::default()),
    ))
}

impl TestServer {
    /// A server with the tests' defaults; [`ServerBuilder`] for more.
    pub async fn start(db: Db) -> Self {
        ServerBuilder::new(db).start().await
    }

    pub fn build(db: Db) -> ServerBuilder {
        ServerBuilder::new(db)
    }

    async fn start_app(app: App) -> Self {
        let server_settings = &app.settings.server;
        let forward_auth = server_settings.forward_auth_listen.map(|a| a.to_string());
        let authzen = server_settings.authzen_base_url.clone();
        let metrics = server_settings.metrics_listen;
        let listener = server::bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let (tokens, passwords) = (app.tokens.clone(), app.passwords.clone());
        let task = tokio::spawn(server::serve(app, listener, async move {
            let _ = stopped.await;
        }));
        let server = Self {
            addr,
            forward_auth,
            authzen,
            metrics,
            tokens,
            passwords,
            stop: Some(stop),
            task,
        };
        server.wait_until_revocations_synced().await;
        server
    }

    /// Authenticated calls are refused until the revocation list has been
    /// read once; tests start after that.
    async fn wait_until_revocations_synced(&self) {
        for _ in 0..100 {
            if self
                .tokens
                .revocations()
                .is_revoked(uuid::Uuid::nil())
                .is_ok()
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub async fn channel(&self) -> Channel {
        Channel::from_shared(format!("http://{}", self.addr))
            .unwrap()
            .connect()
            .await
            .unwrap()
    }

    /// The shutdown signal, to send from elsewhere (a test that shares the
    /// server between tasks); [`TestServer::stop`] then only waits.
    pub fn take_stop_signal(&mut self) -> Option<oneshot::Sender<()>> {
        self.stop.take()
    }

    /// Whether `serve` has returned.
    pub fn has_returned(&self) -> bool {
        self.task.is_finished()
    }

    /// Sends the shutdown signal and waits for the server to return.
    pub async fn stop(mut self) -> Result<(), server::ServeError> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        (&mut self.task).await.unwrap()
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}
