//! The hot path's transaction: `BEGIN READ ONLY`, the context, the one read
//! and `COMMIT` sent together (pipelined: one write, one round trip).

use diesel::pg::Pg;
use diesel::query_builder::{AstPass, QueryFragment, QueryId};
use diesel::sql_types::Text;
use diesel_async::{AnsiTransactionManager, AsyncPgConnection, RunQueryDsl, TransactionManager};
use futures_util::future::BoxFuture;

use super::context::CONTEXT_KEYS;
use super::pool;
use super::scope::{
    BEGIN_READ_ONLY, Db, GENERIC_PLANS, checkout_from, lost_or, transaction_settings,
};
use super::{DbError, RlsContext};

impl Db {
    /// Runs one read in a `READ ONLY` transaction scoped by `ctx`, with
    /// `BEGIN`, the context, the read and `COMMIT` sent together
    /// (pipelined: one round trip). For the hot path, where a request is a
    /// single query; everything else uses [`Db::read`].
    pub async fn read_pipelined<T, F>(&self, ctx: &RlsContext, work: F) -> Result<T, DbError>
    where
        F: for<'c> FnOnce(&'c AsyncPgConnection) -> BoxFuture<'c, diesel::QueryResult<T>> + Send,
        T: Send,
    {
        let pool = self.routed_pool().await;
        // A rehearsal's reads are its transaction's own.
        if self.stage.is_some() || !pool.statement_cache() {
            use scoped_futures::ScopedFutureExt;
            return self
                .on_pool(pool.clone())
                .read(ctx, |conn| {
                    async move { work(conn).await.map_err(DbError::from) }.scope_boxed()
                })
                .await;
        }
        let pooled = checkout_from(pool).await?;
        let mut guard = Unfinished::new(pooled);
        let limit = self.transaction_limit;
        // Unless it finished, the guard marks the connection broken.
        match tokio::time::timeout(limit, self.pipelined(guard.conn()?, ctx, work)).await {
            Ok(Ok(value)) => {
                guard.finished();
                Ok(value)
            }
            Ok(Err(error)) => Err(error.by_sqlstate(guard.error_code())),
            Err(_) => Err(DbError::silent(limit)),
        }
    }

    /// BEGIN, the context, `work` and COMMIT pipelined on `conn`.
    async fn pipelined<T, F>(
        &self,
        conn: &AsyncPgConnection,
        ctx: &RlsContext,
        work: F,
    ) -> Result<T, DbError>
    where
        F: for<'c> FnOnce(&'c AsyncPgConnection) -> BoxFuture<'c, diesel::QueryResult<T>> + Send,
        T: Send,
    {
        let settings = ctx.settings();
        let (mut c1, mut c2, mut c3) = (conn, conn, conn);
        let begin = BeginReadOnly.execute(&mut c1);
        let context = SetContext {
            limits: &self.limits,
            settings: &settings,
        }
        .execute(&mut c2);
        let commit = Commit.execute(&mut c3);
        // Polled in order, so sent in order, in one write: BEGIN, context,
        // the read, COMMIT. A statement that fails aborts the transaction;
        // the statements after it fail too and the COMMIT answers ROLLBACK,
        // so nothing of a failed read is committed (nor could it be: the
        // transaction is read-only).
        let (begun, scoped, outcome, committed) =
            futures_util::future::join4(begin, context, work(conn), commit).await;
        let committed = match committed {
            Ok(_) => Ok(()),
            Err(error) => Err(lost_or(conn, DbError::from(error)).await),
        };
        // A session the server ended under the transaction (an
        // administrator's terminate, a restart) closes the connection, so
        // the COMMIT cannot be answered: that, not whichever statement met
        // the end first, says what happened, and a retry mends it.
        if let Err(lost @ DbError::Unavailable(_)) = committed {
            return Err(lost);
        }
        begun.map_err(DbError::from)?;
        scoped.map_err(DbError::from)?;
        committed?;
        let value = outcome.map_err(DbError::from)?;
        Ok(value)
    }
}

/// A pooled connection inside a pipelined transaction that diesel's
/// transaction manager does not know about. Unless the transaction finished,
/// the connection is marked broken on drop, so the pool discards it rather
/// than hand out a connection with a transaction (and a context) open.
pub(super) struct Unfinished<'p> {
    conn: Option<pool::Pooled<'p>>,
}

impl<'p> Unfinished<'p> {
    pub(super) fn new(mut conn: pool::Pooled<'p>) -> Self {
        // A code left by an earlier transaction on this connection is not ours.
        pool::error_code(&mut conn);
        Self { conn: Some(conn) }
    }

    /// The SQLSTATE of the last error on the connection, if any.
    pub(super) fn error_code(&mut self) -> Option<tokio_postgres::error::SqlState> {
        self.conn.as_deref_mut().and_then(pool::error_code)
    }

    pub(super) fn conn(&self) -> Result<&AsyncPgConnection, DbError> {
        self.conn
            .as_deref()
            .ok_or_else(|| DbError::Unavailable("no connection".into()))
    }

    pub(super) fn finished(&mut self) {
        self.conn = None;
    }
}

impl Drop for Unfinished<'_> {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.as_deref_mut() {
            AnsiTransactionManager::transaction_manager_status_mut(conn).set_in_error();
        }
    }
}

/// The settings of the transaction and every context key, transaction-local
/// (`set_config(…, true)`), in one prepared statement. The names are
/// constants written into its text (the same text every time: the keys come
/// in [`RlsContext::settings`]' fixed order), so only the values are bound.
struct SetContext<'a> {
    /// `statement_timeout` and `idle_in_transaction_session_timeout`.
    limits: &'a [String; 2],
    settings: &'a [(&'static str, String); CONTEXT_KEYS],
}

impl QueryId for SetContext<'_> {
    type QueryId = SetContext<'static>;
    const HAS_STATIC_QUERY_ID: bool = true;
}

impl QueryFragment<Pg> for SetContext<'_> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> diesel::QueryResult<()> {
        out.push_sql("SELECT ");
        out.push_sql(GENERIC_PLANS);
        out.push_sql(", ");
        push_set_configs(&mut out, transaction_settings(self.limits, self.settings))
    }
}

/// `set_config('name', $n, true), …` for each setting: the names written
/// into the text, the values bound.
pub(super) fn push_set_configs<'b>(
    out: &mut AstPass<'_, 'b, Pg>,
    settings: impl Iterator<Item = (&'static str, &'b str)>,
) -> diesel::QueryResult<()> {
    for (i, (name, value)) in settings.enumerate() {
        if i > 0 {
            out.push_sql(", ");
        }
        out.push_sql("pg_catalog.set_config('");
        out.push_sql(name);
        out.push_sql("', ");
        out.push_bind_param::<Text, _>(value)?;
        out.push_sql(", true)");
    }
    Ok(())
}

/// [`BEGIN_READ_ONLY`] as a prepared statement (static query id), so it can
/// be pipelined with the statements after it.
struct BeginReadOnly;

/// `COMMIT` as a prepared statement.
struct Commit;

macro_rules! static_statement {
    ($name:ident, $sql:expr) => {
        impl QueryId for $name {
            type QueryId = $name;
            const HAS_STATIC_QUERY_ID: bool = true;
        }

        impl QueryFragment<Pg> for $name {
            fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> diesel::QueryResult<()> {
                out.push_sql($sql);
                Ok(())
            }
        }
    };
}

static_statement!(BeginReadOnly, BEGIN_READ_ONLY);
static_statement!(Commit, "COMMIT");
