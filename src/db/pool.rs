//! The connection pool. Only [`super::Db`] holds it.

use std::time::Duration;

use diesel_async::AsyncPgConnection;
use diesel_async::pooled_connection::{
    AsyncDieselConnectionManager, ManagerConfig, RecyclingMethod,
};

pub(crate) type Pool = bb8::Pool<AsyncDieselConnectionManager<AsyncPgConnection>>;

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
