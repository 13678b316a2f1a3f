//! The connection pool. Only [`super::Db`] holds it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use diesel_async::AsyncPgConnection;
use diesel_async::pooled_connection::{
    AsyncDieselConnectionManager, ManagerConfig, PoolError, RecyclingMethod,
};
use tokio::sync::{Semaphore, SemaphorePermit};

use super::DbError;
use super::connect::{ConnectTarget, DatabaseUrlError};
use super::sqlstate::ErrorCode;

type Manager = AsyncDieselConnectionManager<AsyncPgConnection>;

/// bb8's pool behind a first-come, first-served gate. bb8 alone lets a
/// caller that just returned a connection take it straight back while
/// earlier callers wait to be woken, so under saturation a few requests
/// starve for seconds; the gate (a fair semaphore with one permit per
/// connection) makes them queue in arrival order.
#[derive(Clone)]
pub(crate) struct Pool {
    connections: bb8::Pool<Manager>,
    gate: Arc<Semaphore>,
    queued: Arc<AtomicU64>,
    acquire_timeout: Duration,
    failures: ConnectFailures,
    /// Whether prepared statements outlive a transaction on these
    /// connections ([`PoolSettings::statement_cache`]): a property of the
    /// server (or pooler) the pool reaches, so each pool has its own.
    statement_cache: bool,
}

/// A pooled connection and the caller's turn at the gate, released after
/// the connection is back in the pool (fields drop in order).
pub(crate) struct Pooled<'p> {
    conn: bb8::PooledConnection<'p, Manager>,
    _turn: SemaphorePermit<'p>,
}

/// A pooled connection and its turn, owned (see [`Pool::get_owned`]).
pub(crate) struct OwnedPooled {
    conn: bb8::PooledConnection<'static, Manager>,
    _turn: tokio::sync::OwnedSemaphorePermit,
}

impl std::ops::Deref for OwnedPooled {
    type Target = AsyncPgConnection;

    fn deref(&self) -> &AsyncPgConnection {
        &self.conn
    }
}

impl std::ops::DerefMut for OwnedPooled {
    fn deref_mut(&mut self) -> &mut AsyncPgConnection {
        &mut self.conn
    }
}

impl std::ops::Deref for Pooled<'_> {
    type Target = AsyncPgConnection;

    fn deref(&self) -> &AsyncPgConnection {
        &self.conn
    }
}

impl std::ops::DerefMut for Pooled<'_> {
    fn deref_mut(&mut self) -> &mut AsyncPgConnection {
        &mut self.conn
    }
}

/// A snapshot of the pool for health and metrics.
#[derive(Clone, Copy, Debug)]
pub struct PoolStatus {
    pub connections: u32,
    pub idle: u32,
    /// Calls waiting for a connection right now.
    pub waiting: u64,
}

impl Pool {
    /// A connection, in arrival order, within the acquire timeout. When
    /// none can be had and opening one failed, the error says why.
    pub(crate) async fn get(&self) -> Result<Pooled<'_>, DbError> {
        let deadline = tokio::time::Instant::now() + self.acquire_timeout;
        let turn = self.queue(self.gate.acquire(), deadline).await?;
        let conn = self.connection(self.connections.get(), deadline).await?;
        Ok(Pooled { conn, _turn: turn })
    }

    /// [`Pool::get`], owning its turn and connection: for a rehearsal,
    /// whose connection outlives the call that took it.
    pub(crate) async fn get_owned(&self) -> Result<OwnedPooled, DbError> {
        let deadline = tokio::time::Instant::now() + self.acquire_timeout;
        let turn = self
            .queue(self.gate.clone().acquire_owned(), deadline)
            .await?;
        let conn = self
            .connection(self.connections.get_owned(), deadline)
            .await?;
        Ok(OwnedPooled { conn, _turn: turn })
    }

    /// A turn at the gate, counted as waiting until it comes.
    async fn queue<T>(
        &self,
        turn: impl std::future::Future<Output = Result<T, tokio::sync::AcquireError>>,
        deadline: tokio::time::Instant,
    ) -> Result<T, DbError> {
        self.queued.fetch_add(1, Ordering::Relaxed);
        let turn = tokio::time::timeout_at(deadline, turn).await;
        self.queued.fetch_sub(1, Ordering::Relaxed);
        match turn {
            Ok(Ok(turn)) => Ok(turn),
            Ok(Err(_closed)) => Err(self.why(DbError::Unavailable("the pool is closed".into()))),
            Err(_) => Err(self.why(DbError::from(bb8::RunError::<PoolError>::TimedOut))),
        }
    }

    /// A connection once the turn has come.
    async fn connection<C>(
        &self,
        conn: impl std::future::Future<Output = Result<C, bb8::RunError<PoolError>>>,
        deadline: tokio::time::Instant,
    ) -> Result<C, DbError> {
        match tokio::time::timeout_at(deadline, conn).await {
            Ok(Ok(conn)) => Ok(conn),
            Ok(Err(error)) => Err(self.why(DbError::from(error))),
            Err(_) => Err(self.why(DbError::from(bb8::RunError::<PoolError>::TimedOut))),
        }
    }

    /// `outcome`, with the last connection attempt's failure when no
    /// connection could be had.
    fn why(&self, outcome: DbError) -> DbError {
        match (outcome, self.failures.last()) {
            (DbError::Unavailable(cause), Some(last)) => {
                DbError::Unavailable(format!("{cause}; last connection attempt: {last}"))
            }
            (other, _) => other,
        }
    }

    pub(crate) fn statement_cache(&self) -> bool {
        self.statement_cache
    }

    pub(crate) fn status(&self) -> PoolStatus {
        let state = self.connections.state();
        PoolStatus {
            connections: state.connections,
            idle: state.idle_connections,
            waiting: self.queued.load(Ordering::Relaxed) + state.statistics.pending_gets(),
        }
    }
}

/// Pool sizing and timeouts.
#[derive(Clone, Debug)]
pub struct PoolSettings {
    pub max_size: u32,
    /// How long a request waits for a connection before it is answered
    /// `UNAVAILABLE`; bounds both pool exhaustion and an unreachable server.
    pub acquire_timeout: Duration,
    pub idle_timeout: Option<Duration>,
    pub max_lifetime: Option<Duration>,
    /// Longest a statement may run (`statement_timeout`, per transaction),
    /// so a stuck query cannot hold a connection.
    pub statement_timeout: Duration,
    /// Longest a transaction may sit idle
    /// (`idle_in_transaction_session_timeout`, per transaction).
    pub idle_in_transaction_timeout: Duration,
    /// Keep prepared statements across transactions (the default). Off for
    /// PgBouncer older than 1.21 in transaction pooling mode, where the
    /// next transaction may run on another server connection: statements
    /// are then prepared and closed inside each transaction, and the hot
    /// path sends `BEGIN` as a simple query instead of pipelining it.
    pub statement_cache: bool,
}

impl PoolSettings {
    /// The longest a transaction may go on once it has its connection:
    /// every statement is bounded by `statement_timeout` and every pause
    /// between them by `idle_in_transaction_timeout`, both enforced by the
    /// server; a transaction that hears nothing back for both together is
    /// on a connection the server no longer answers (a half-open socket, a
    /// hung pooler), which only the client can notice. Its call answers
    /// `UNAVAILABLE` and the connection is discarded.
    pub fn transaction_limit(&self) -> Duration {
        self.statement_timeout + self.idle_in_transaction_timeout
    }
}

impl Default for PoolSettings {
    fn default() -> Self {
        Self {
            max_size: 16,
            acquire_timeout: Duration::from_secs(2),
            idle_timeout: Some(Duration::from_secs(600)),
            max_lifetime: Some(Duration::from_secs(1800)),
            statement_timeout: Duration::from_secs(5),
            idle_in_transaction_timeout: Duration::from_secs(10),
            statement_cache: true,
        }
    }
}

/// Builds the pool without connecting, so the server can start (and report
/// `NOT_SERVING`) while the database is still down. Only a URL that cannot
/// be used (a bad `sslmode`, an unreadable CA file) fails here.
pub(crate) fn build(database_url: &str, settings: &PoolSettings) -> Result<Pool, DatabaseUrlError> {
    let target = ConnectTarget::parse(&with_application_name(database_url))?;
    let statement_cache = settings.statement_cache;
    // A server that accepts the socket and never answers would hold the
    // pool's slot for that connection for ever: bb8 does not bound it.
    let connect_limit = settings.acquire_timeout;
    let failures = ConnectFailures::default();
    let succeeded = failures.clone();
    let mut config = ManagerConfig::default();
    config.custom_setup = Box::new(move |_url| {
        let (target, succeeded) = (target.clone(), succeeded.clone());
        Box::pin(async move {
            use diesel_async::AsyncConnection;
            let (mut conn, codes) =
                tokio::time::timeout(connect_limit, establish(&target, statement_cache))
                    .await
                    .map_err(|_| {
                        diesel::ConnectionError::BadConnection(format!(
                            "the database did not answer within {connect_limit:?}"
                        ))
                    })??;
            succeeded.clear();
            conn.set_instrumentation(StatementSpans {
                codes,
                open: Default::default(),
            });
            if !statement_cache {
                conn.set_prepared_statement_cache_size(diesel::connection::CacheSize::Disabled);
            }
            Ok(conn)
        })
    });
    // Checkout sends no query (that would cost a round trip per request);
    // it skips connections whose socket has closed (server restart,
    // failover, PgBouncer restart), which the driver already knows, so
    // they do not fail a request each. `PoolableConnection` is diesel-async's
    // own (doc-hidden) check: an open transaction or a closed socket.
    config.recycling_method = RecyclingMethod::CustomFunction(Box::new(|conn| {
        use diesel_async::pooled_connection::PoolableConnection;
        let closed = PoolableConnection::is_broken(conn);
        Box::pin(async move {
            if closed {
                Err(diesel::result::Error::BrokenTransactionManager)
            } else {
                Ok(())
            }
        })
    }));
    let manager = AsyncDieselConnectionManager::new_with_config(database_url, config);
    let connections = bb8::Pool::builder()
        .max_size(settings.max_size)
        .min_idle(None)
        .connection_timeout(settings.acquire_timeout)
        .idle_timeout(settings.idle_timeout)
        .max_lifetime(settings.max_lifetime)
        .retry_connection(false)
        .error_sink(Box::new(failures.clone()))
        .build_unchecked(manager);
    Ok(Pool {
        connections,
        gate: Arc::new(Semaphore::new(settings.max_size as usize)),
        queued: Arc::default(),
        acquire_timeout: settings.acquire_timeout,
        failures,
        statement_cache,
    })
}

/// Opens a connection. Its setup runs in one transaction, so a
/// transaction-mode pooler keeps it on one server connection (see
/// `ConnectTarget::establish`); without the statement cache (PgBouncer <
/// 1.21) a setup statement's name may still meet one another process left
/// on that server connection ("prepared statement … already exists"). Such
/// an attempt is made again after a short random pause, up to 30 times;
/// statement names never repeat within a process.
async fn establish(
    target: &ConnectTarget,
    statement_cache: bool,
) -> Result<(AsyncPgConnection, ErrorCode), diesel::ConnectionError> {
    const ATTEMPTS: usize = 30;
    let mut attempt = 1;
    loop {
        match target.establish().await {
            Err(error)
                if !statement_cache
                    && attempt < ATTEMPTS
                    && error.to_string().contains("prepared statement") =>
            {
                tracing::debug!(%error, attempt, "connection setup split by the pooler; again");
                attempt += 1;
                let pause = rand::Rng::gen_range(&mut rand::thread_rng(), 5..40);
                tokio::time::sleep(std::time::Duration::from_millis(pause)).await;
            }
            outcome => return outcome,
        }
    }
}

/// The last failed attempt to open a connection, kept until one succeeds:
/// a request that times out waiting for a connection can then say why
/// (refused, bad password, certificate not trusted…). Each failure is also
/// logged.
#[derive(Clone, Debug, Default)]
struct ConnectFailures(Arc<Mutex<Option<String>>>);

impl ConnectFailures {
    fn last(&self) -> Option<String> {
        self.0.lock().map(|last| last.clone()).unwrap_or_default()
    }

    fn clear(&self) {
        if let Ok(mut last) = self.0.lock() {
            last.take();
        }
    }
}

impl bb8::ErrorSink<PoolError> for ConnectFailures {
    fn sink(&self, error: PoolError) {
        match error {
            PoolError::ConnectionError(_) => {
                tracing::warn!(%error, "cannot open a database connection");
                if let Ok(mut last) = self.0.lock() {
                    *last = Some(error.to_string());
                }
            }
            // A pooled connection found closed at checkout; another is used.
            PoolError::QueryError(_) => {
                tracing::info!("discarded a pooled database connection that had closed");
            }
        }
    }

    fn boxed_clone(&self) -> Box<dyn bb8::ErrorSink<PoolError>> {
        Box::new(self.clone())
    }
}

/// Names our connections in `pg_stat_activity` unless the URL already does.
fn with_application_name(database_url: &str) -> String {
    match url::Url::parse(database_url) {
        Ok(mut url) if !url.query_pairs().any(|(key, _)| key == "application_name") => {
            url.query_pairs_mut()
                .append_pair("application_name", "portcullis");
            url.into()
        }
        _ => database_url.to_owned(),
    }
}

/// One `db.statement` span per statement, a child of whatever span the
/// request is in (statements pipelined together finish in the order they
/// were sent). The SQL is recorded without its bind values.
#[derive(Default)]
/// The connection's companion inside diesel-async: the statements' spans
/// while spans are exported, and the slot the connection's stream writes
/// SQLSTATEs to ([`error_code`]).
struct StatementSpans {
    open: std::collections::VecDeque<tracing::Span>,
    codes: ErrorCode,
}

/// The SQLSTATE of the first error on `conn` since this was last asked,
/// for a pooled connection. Only while no statement future of `conn` is
/// pending (diesel-async hands out its instrumentation only then).
pub(super) fn error_code(conn: &mut AsyncPgConnection) -> Option<tokio_postgres::error::SqlState> {
    use diesel_async::AsyncConnection;
    conn.instrumentation()
        .downcast_ref::<StatementSpans>()
        .and_then(|spans| spans.codes.take())
}

impl diesel::connection::Instrumentation for StatementSpans {
    fn on_connection_event(&mut self, event: diesel::connection::InstrumentationEvent<'_>) {
        use diesel::connection::InstrumentationEvent;
        // Formatting every statement costs the hot path; only when exported.
        if !crate::telemetry::exporting_spans() {
            return;
        }
        match event {
            InstrumentationEvent::StartQuery { query, .. } => {
                let text = query.to_string();
                let sql = text.split(" -- binds:").next().unwrap_or_default();
                let sql: String = sql.chars().take(200).collect();
                self.open.push_back(tracing::info_span!(
                    "db.statement",
                    otel.kind = "client",
                    otel.status_code = tracing::field::Empty,
                    db.system = "postgresql",
                    db.statement = %sql
                ));
            }
            InstrumentationEvent::FinishQuery { error, .. } => {
                if let Some(span) = self.open.pop_front()
                    && error.is_some()
                {
                    span.record("otel.status_code", "ERROR");
                }
            }
            _ => {}
        }
    }
}
