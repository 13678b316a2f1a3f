//! The connection pool. Only [`super::Db`] holds it.

use std::time::Duration;

use diesel_async::AsyncPgConnection;
use diesel_async::pooled_connection::{
    AsyncDieselConnectionManager, ManagerConfig, RecyclingMethod,
};

pub(crate) type Pool = bb8::Pool<AsyncDieselConnectionManager<AsyncPgConnection>>;
pub(crate) type Pooled<'p> =
    bb8::PooledConnection<'p, AsyncDieselConnectionManager<AsyncPgConnection>>;

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
        }
    }
}

/// Builds the pool without connecting, so the server can start (and report
/// `NOT_SERVING`) while the database is still down.
pub(crate) fn build(database_url: &str, settings: &PoolSettings) -> Pool {
    let mut config = ManagerConfig::default();
    config.custom_setup = Box::new(|url| {
        let url = url.to_owned();
        Box::pin(async move {
            use diesel_async::AsyncConnection;
            let mut conn = AsyncPgConnection::establish(&url).await?;
            conn.set_instrumentation(StatementSpans::default());
            Ok(conn)
        })
    });
    // Checkout only checks that no transaction was left open: a query per
    // checkout would cost a round trip on every request. A dead connection
    // fails its query, is marked broken and is dropped on return.
    config.recycling_method = RecyclingMethod::Fast;
    let manager =
        AsyncDieselConnectionManager::new_with_config(with_application_name(database_url), config);
    bb8::Pool::builder()
        .max_size(settings.max_size)
        .min_idle(None)
        .connection_timeout(settings.acquire_timeout)
        .idle_timeout(settings.idle_timeout)
        .max_lifetime(settings.max_lifetime)
        .retry_connection(false)
        .build_unchecked(manager)
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
struct StatementSpans {
    open: std::collections::VecDeque<tracing::Span>,
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
