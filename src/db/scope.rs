//! The RLS-scoped transaction: the only way to run SQL against the database.

use diesel::sql_types::{Bool, Text};
use diesel_async::{AnsiTransactionManager, AsyncPgConnection, RunQueryDsl, TransactionManager};
use scoped_futures::ScopedBoxFuture;
use tracing::Instrument;

use std::sync::Arc;

use super::context::CONTEXT_KEYS;
use super::pool::{self, Pool, PoolSettings, PoolStatus};
use super::rehearsal::Stage;
use super::replicas::{ReplicaSettings, ReplicaStatus, Replicas};
use super::{DatabaseUrlError, DbError, RlsContext};
use crate::consistency::{self, Requirement};

diesel::define_sql_function! {
    /// PostgreSQL's `set_config(setting, value, is_local)`, qualified so no
    /// function planted on the search path can stand in for it.
    #[sql_name = "pg_catalog.set_config"]
    fn set_config(setting: Text, value: Text, is_local: Bool) -> Text;
}

/// A unit of work inside a scoped transaction. Write it as
/// `|conn| async move { … }.scope_boxed()` (`scoped_futures::ScopedFutureExt`).
pub type Work<'a, 'conn, T, E> = ScopedBoxFuture<'a, 'conn, Result<T, E>>;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Access {
    ReadOnly,
    ReadWrite,
}

/// Handle to the database. Cheap to clone.
#[derive(Clone)]
pub struct Db {
    pub(super) pool: Pool,
    /// `statement_timeout` and `idle_in_transaction_session_timeout`, in
    /// milliseconds, as set in every transaction.
    pub(super) limits: [String; 2],
    /// The longest a transaction may go on once it has its connection (see
    /// [`PoolSettings::transaction_limit`]).
    pub(super) transaction_limit: std::time::Duration,
    /// The read replicas, if any, and the primary's clock.
    pub(super) replicas: Arc<Replicas>,
    /// Whether reads through this handle go where their request's
    /// consistency requirement allows ([`Db::for_reads`]).
    routed: bool,
    /// Woken after every committed write through any handle of this pool,
    /// for the change stream ([`Db::commits`]).
    committed: Arc<tokio::sync::Notify>,
    /// Set on the handle a rehearsal lends ([`Db::rehearse`]): every
    /// transaction through it is the rehearsal's own.
    pub(super) stage: Option<Arc<Stage>>,
}

impl Db {
    /// Builds the pool; no connection is made until the first request.
    pub fn new(database_url: &str, settings: &PoolSettings) -> Result<Self, DatabaseUrlError> {
        let millis = |d: std::time::Duration| d.as_millis().max(1).to_string();
        Ok(Self {
            pool: pool::build(database_url, settings)?,
            limits: [
                millis(settings.statement_timeout),
                millis(settings.idle_in_transaction_timeout),
            ],
            transaction_limit: settings.transaction_limit(),
            replicas: Arc::new(Replicas::new(Vec::new(), ReplicaSettings::default())),
            routed: false,
            committed: Arc::new(tokio::sync::Notify::new()),
            stage: None,
        })
    }

    /// Adds read replicas (hot standbys streaming from this primary, each
    /// reached as the same application role) among which [`Db::for_reads`]
    /// routes reads.
    pub fn with_read_replicas(
        mut self,
        replica_urls: &[String],
        pool_settings: &PoolSettings,
        settings: ReplicaSettings,
    ) -> Result<Self, DatabaseUrlError> {
        let pools = replica_urls
            .iter()
            .map(|url| pool::build(url, pool_settings))
            .collect::<Result<Vec<_>, _>>()?;
        self.replicas = Arc::new(Replicas::new(pools, settings));
        Ok(self)
    }

    /// The door for calls that only read: each read goes to a replica that
    /// satisfies its request's consistency requirement, else the primary.
    pub fn for_reads(&self) -> Db {
        Db {
            routed: true,
            ..self.clone()
        }
    }

    /// This primary's own door, unrouted, whatever this handle is.
    pub(super) fn primary(&self) -> Db {
        self.on_pool(self.pool.clone())
    }

    /// This primary's door for a rehearsal: every call through it runs in
    /// the rehearsal's transaction.
    pub(super) fn staged(&self, stage: Arc<Stage>) -> Db {
        Db {
            stage: Some(stage),
            ..self.primary()
        }
    }

    /// The same settings on another pool, unrouted: a replica's own door.
    pub(super) fn on_pool(&self, pool: Pool) -> Db {
        Db {
            pool,
            routed: false,
            ..self.clone()
        }
    }

    /// Woken (`notify_waiters`) whenever a write through this database
    /// handle commits: the change stream looks at once instead of at its
    /// next poll.
    pub fn commits(&self) -> Arc<tokio::sync::Notify> {
        self.committed.clone()
    }

    /// The requirement of requests that state none (`--default-consistency`).
    pub fn default_consistency(&self) -> Requirement {
        self.replicas.settings().default
    }

    /// Each replica's standing, for health and metrics.
    pub fn replica_status(&self) -> Vec<ReplicaStatus> {
        self.replicas.status()
    }

    /// Watches the primary's position and the replicas' until aborted:
    /// spawn it once per server.
    pub fn monitor_replicas(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        self.replicas.clone().monitor(self.primary())
    }

    /// Runs `work` in a `READ ONLY` transaction scoped by `ctx`; all its
    /// statements read one snapshot (REPEATABLE READ).
    pub async fn read<'a, T, E, F>(&self, ctx: &RlsContext, work: F) -> Result<T, E>
    where
        F: for<'conn> FnOnce(&'conn mut AsyncPgConnection) -> Work<'a, 'conn, T, E> + Send + 'a,
        E: From<DbError> + Send + 'a,
        T: Send + 'a,
    {
        self.scoped(Access::ReadOnly, ctx, work).await
    }

    /// Runs `work` in a read-write transaction scoped by `ctx`.
    pub async fn write<'a, T, E, F>(&self, ctx: &RlsContext, work: F) -> Result<T, E>
    where
        F: for<'conn> FnOnce(&'conn mut AsyncPgConnection) -> Work<'a, 'conn, T, E> + Send + 'a,
        E: From<DbError> + Send + 'a,
        T: Send + 'a,
    {
        self.scoped(Access::ReadWrite, ctx, work).await
    }

    /// Runs a SQL script (several statements, no parameters) in a
    /// read-write transaction scoped by `ctx`: for seeding and fixtures.
    pub async fn write_script(&self, ctx: &RlsContext, script: &str) -> Result<(), DbError> {
        use diesel_async::SimpleAsyncConnection;
        use scoped_futures::ScopedFutureExt;
        self.write(ctx, |conn| {
            async move {
                conn.batch_execute(script).await?;
                Ok::<_, DbError>(())
            }
            .scope_boxed()
        })
        .await
    }

    /// Whether the primary answers a trivial statement through the normal
    /// door (an empty context, so it can read nothing). Replicas are
    /// watched by [`Db::monitor_replicas`]: reads fall back to the primary
    /// while none is in rotation.
    pub async fn ping(&self) -> Result<(), DbError> {
        use scoped_futures::ScopedFutureExt;
        self.read(&RlsContext::anonymous(), |conn| {
            async move {
                diesel::select(diesel::dsl::sql::<diesel::sql_types::Integer>("1"))
                    .execute(conn)
                    .await?;
                Ok::<_, DbError>(())
            }
            .scope_boxed()
        })
        .await
    }

    pub fn status(&self) -> PoolStatus {
        self.pool.status()
    }

    async fn scoped<'a, T, E, F>(&self, access: Access, ctx: &RlsContext, work: F) -> Result<T, E>
    where
        F: for<'conn> FnOnce(&'conn mut AsyncPgConnection) -> Work<'a, 'conn, T, E> + Send + 'a,
        E: From<DbError> + Send + 'a,
        T: Send + 'a,
    {
        if let Some(stage) = &self.stage {
            return stage.run(ctx, &self.limits, work).await;
        }
        let mut pooled = self.checkout().await?;
        let limit = self.transaction_limit;
        // The transaction and, after a write, the read of where its commit
        // ended share one bound.
        let deadline = tokio::time::Instant::now() + limit;
        match tokio::time::timeout_at(
            deadline,
            in_transaction(&mut pooled, access, ctx, &self.limits, work),
        )
        .await
        {
            Ok(Ok(value)) => {
                if access == Access::ReadWrite {
                    self.committed.notify_waiters();
                }
                if access == Access::ReadWrite && consistency::scope::in_request() {
                    let point = self.record_commit_point(&mut pooled);
                    if tokio::time::timeout_at(deadline, point).await.is_err() {
                        // Committed, but the connection went silent after:
                        // the write stands, without its token, and the
                        // connection is never handed out again.
                        tracing::warn!(
                            "no consistency token: the connection went silent after COMMIT"
                        );
                        AnsiTransactionManager::transaction_manager_status_mut(&mut *pooled)
                            .set_in_error();
                    }
                }
                Ok(value)
            }
            Ok(Err(error)) => Err(error),
            Err(_) => {
                // The transaction is still open and the connection silent:
                // it must never be handed out again.
                AnsiTransactionManager::transaction_manager_status_mut(&mut *pooled).set_in_error();
                Err(E::from(DbError::silent(limit)))
            }
        }
    }
}

/// `work` in a transaction on `conn`: BEGIN with the context, then COMMIT,
/// or ROLLBACK if `work` fails.
async fn in_transaction<'a, T, E, F>(
    conn: &mut AsyncPgConnection,
    access: Access,
    ctx: &RlsContext,
    limits: &[String; 2],
    work: F,
) -> Result<T, E>
where
    F: for<'conn> FnOnce(&'conn mut AsyncPgConnection) -> Work<'a, 'conn, T, E> + Send + 'a,
    E: From<DbError> + Send + 'a,
    T: Send + 'a,
{
    // BEGIN and the context travel in one simple-query batch: one round
    // trip instead of two, on every request.
    let begin = begin_sql(access, ctx, limits);
    // A code left by an earlier transaction on this connection is not ours.
    pool::error_code(conn);
    if let Err(error) = AnsiTransactionManager::begin_transaction_sql(conn, &begin).await {
        return Err(E::from(failed(conn, DbError::from(error)).await));
    }
    // If this future is dropped mid-way (deadline, cancelled call), the
    // connection goes back with its transaction open; the pool sees that
    // and discards it, so nothing leaks to the next request.
    let outcome = work(conn).await;
    match outcome {
        Ok(value) => {
            if let Err(error) = AnsiTransactionManager::commit_transaction(conn).await {
                return Err(E::from(failed(conn, DbError::from(error)).await));
            }
            Ok(value)
        }
        Err(error) => match AnsiTransactionManager::rollback_transaction(conn).await {
            // The work's error, unless the server's SQLSTATE says the
            // transaction failed for a reason the caller can act on (the
            // work saw only diesel's error, which drops the code).
            Ok(()) => match pool::error_code(conn)
                .and_then(|code| DbError::actionable(&code, "the transaction's first error"))
            {
                Some(known) => Err(E::from(known)),
                None => Err(error),
            },
            Err(rollback) => match DbError::from(rollback) {
                // The server ended the session under the statement (an
                // administrator's terminate, a shutdown, a crash: SQLSTATE
                // 57P01-57P03, class 08) and closed the connection, so the
                // ROLLBACK could not even be sent. Nothing was committed;
                // the call failed because the database went away, which
                // a retry mends, whatever the statement's own error said.
                lost @ DbError::Unavailable(_) => {
                    tracing::warn!(error = %lost, "the connection died inside a transaction");
                    Err(E::from(DbError::Unavailable(
                        "the connection to the database was lost".into(),
                    )))
                }
                other => {
                    tracing::warn!(error = %other, "rollback failed; connection discarded");
                    Err(error)
                }
            },
        },
    }
}

/// What a failed statement on `conn` was: by the SQLSTATE the server sent,
/// else `error`, unless the connection turns out to be gone.
pub(super) async fn failed(conn: &mut AsyncPgConnection, error: DbError) -> DbError {
    let error = error.by_sqlstate(pool::error_code(conn));
    lost_or(conn, error).await
}

/// `error`, unless the connection is gone: a statement cut by the server
/// ending the session fails with the server's own error first, and only
/// the next statement finds the connection closed.
pub(super) async fn lost_or(conn: &AsyncPgConnection, error: DbError) -> DbError {
    if !matches!(error, DbError::Query(_)) {
        return error;
    }
    match diesel::sql_query("SELECT 1")
        .execute(&mut { conn })
        .await
        .map_err(DbError::from)
    {
        Err(lost @ DbError::Unavailable(_)) => lost,
        _ => error,
    }
}

/// Inside a transaction that began with the pre-authentication context of
/// a credential exchange (`app.service_key`, which may only read), records
/// that the presented secret proved the caller to be `service_id`: from
/// here on the transaction may write that service's rows, as the
/// `service_self` policies require. Transaction-local like every key.
/// Takes a shared connection so that it can be pipelined with the reads
/// that follow it.
pub async fn authenticated_service(
    conn: &AsyncPgConnection,
    service_id: uuid::Uuid,
) -> Result<(), DbError> {
    diesel::select(set_config("app.service_id", service_id.to_string(), true))
        .execute(&mut { conn })
        .await?;
    Ok(())
}

/// How every read begins. A read sees one snapshot from its first statement
/// to its last (REPEATABLE READ), so reads that are pipelined, or that follow
/// one another, agree with each other. Taking no locks, a read-only
/// transaction never fails to serialize.
pub(super) const BEGIN_READ_ONLY: &str = "BEGIN READ ONLY ISOLATION LEVEL REPEATABLE READ";

/// Every statement we prepare is a short index walk whose plan does not
/// depend on its parameters; left to itself PostgreSQL re-plans the inlined
/// check function on every execution (about 0.9 ms, most of a check's cost).
/// A generic plan is made once per connection.
pub(super) const GENERIC_PLANS: &str =
    "pg_catalog.set_config('plan_cache_mode', 'force_generic_plan', true)";

/// What every transaction sets besides [`GENERIC_PLANS`], with the values
/// to set: its limits (`statement_timeout`,
/// `idle_in_transaction_session_timeout`), then every context key.
pub(super) fn transaction_settings<'a>(
    limits: &'a [String; 2],
    keys: &'a [(&'static str, String); CONTEXT_KEYS],
) -> impl Iterator<Item = (&'static str, &'a str)> {
    ["statement_timeout", "idle_in_transaction_session_timeout"]
        .into_iter()
        .zip(limits.iter().map(String::as_str))
        .chain(keys.iter().map(|(key, value)| (*key, value.as_str())))
}

/// `BEGIN` plus one statement that sets every `app.*` key
/// transaction-locally (`set_config(…, true)`), so a connection returned to
/// the pool, or shared through PgBouncer in transaction mode, carries nothing
/// to the next request. The values are UUIDs, validated names and sanitised
/// request ids, quoted as SQL literals.
fn begin_sql(access: Access, ctx: &RlsContext, limits: &[String; 2]) -> String {
    let begin = match access {
        Access::ReadOnly => BEGIN_READ_ONLY,
        Access::ReadWrite => "BEGIN",
    };
    format!(
        "{begin}; SELECT {GENERIC_PLANS}, {}",
        context_sql(ctx, limits)
    )
}

/// The `set_config(…, true)` calls of [`begin_sql`], comma-separated: the
/// limits, then every context key.
pub(super) fn context_sql(ctx: &RlsContext, limits: &[String; 2]) -> String {
    let keys = ctx.settings();
    let settings: Vec<String> = transaction_settings(limits, &keys)
        .map(|(key, value)| format!("set_config('{key}', {}, true)", literal(value)))
        .collect();
    settings.join(", ")
}

/// A standard-conforming SQL string literal.
fn literal(value: &str) -> String {
    format!("'{}'", value.replace('\'', "''"))
}

impl Db {
    /// A connection from [`Db::routed_pool`].
    pub(super) async fn checkout(&self) -> Result<pool::Pooled<'_>, DbError> {
        checkout_from(self.routed_pool().await).await
    }

    /// The pool this handle's next read goes to: through
    /// [`Db::for_reads`], where its request's requirement routes it (and
    /// the request told where); else this handle's own.
    pub(super) async fn routed_pool(&self) -> &Pool {
        if !self.routed {
            return &self.pool;
        }
        // Outside a request (the server's own work) reads are the primary's.
        let requirement =
            consistency::scope::requirement().unwrap_or(Requirement::FULLY_CONSISTENT);
        let route = self.replicas.route(requirement).await;
        consistency::scope::record_read(route.read_at);
        match route.member {
            Some(index) => &self.replicas.member(index).pool,
            None => &self.pool,
        }
    }
}

/// A connection from `pool`. The wait gets a span only while spans are
/// exported: the hot path should not pay for a span nobody sees.
pub(super) async fn checkout_from(pool: &Pool) -> Result<pool::Pooled<'_>, DbError> {
    let wait = if crate::telemetry::exporting_spans() {
        tracing::info_span!("db.pool_wait")
    } else {
        tracing::Span::none()
    };
    pool.get().instrument(wait).await
}

#[cfg(test)]
mod tests {
    use super::super::context::CONTEXT_KEYS;
    use super::*;
    use uuid::Uuid;

    #[test]
    fn the_begin_batch_sets_every_key_transaction_locally() {
        let tenant = Uuid::new_v4();
        let limits = ["5000".to_owned(), "10000".to_owned()];
        let sql = begin_sql(Access::ReadOnly, &RlsContext::tenant(tenant), &limits);
        assert!(sql.starts_with("BEGIN READ ONLY ISOLATION LEVEL REPEATABLE READ; SELECT "));
        assert!(sql.contains(&format!("set_config('app.tenant_id', '{tenant}', true)")));
        assert_eq!(sql.matches(", true)").count(), CONTEXT_KEYS + 3);
        assert!(sql.contains("set_config('statement_timeout', '5000', true)"));
        assert!(!sql.contains("false"));
    }

    #[test]
    fn literals_cannot_be_broken_out_of() {
        assert_eq!(literal("a'b"), "'a''b'");
        assert_eq!(literal("'); DROP TABLE x; --"), "'''); DROP TABLE x; --'");
    }
}
