//! The hot path's transaction: `BEGIN READ ONLY`, the context, the one read
//! and `COMMIT` sent together (pipelined: one write, one round trip).

use diesel::pg::Pg;
use diesel::query_builder::{AstPass, QueryFragment, QueryId};
use diesel_async::{AnsiTransactionManager, AsyncPgConnection, RunQueryDsl, TransactionManager};
use futures_util::future::BoxFuture;

use super::pool;
use super::scope::{Db, lost_or, set_config};
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
        if !self.statement_cache {
            use scoped_futures::ScopedFutureExt;
            return self
                .read(ctx, |conn| {
                    async move { work(conn).await.map_err(DbError::from) }.scope_boxed()
                })
                .await;
        }
        let mut guard = Unfinished {
            conn: Some(self.checkout().await?),
        };
        // A code left by an earlier transaction on this connection is not ours.
        guard.conn.as_deref_mut().and_then(pool::error_code);
        let limit = self.transaction_limit;
        // Unless it finished, the guard marks the connection broken.
        match tokio::time::timeout(limit, self.pipelined(guard.conn()?, ctx, work)).await {
            Ok(Ok(value)) => {
                guard.finished();
                Ok(value)
            }
            Ok(Err(error)) => {
                Err(error.by_sqlstate(guard.conn.as_deref_mut().and_then(pool::error_code)))
            }
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
        // One line per key: the compiler holds this to the length of
        // `RlsContext::settings`.
        let [k0, k1, k2, k3, k4, k5, k6, k7, k8, k9] = ctx.settings();
        let (mut c1, mut c2, mut c3) = (conn, conn, conn);
        let begin = BeginReadOnly.execute(&mut c1);
        let [statement_timeout, idle_timeout] = self.limits.clone();
        let context = diesel::select((
            set_config("plan_cache_mode", "force_generic_plan", true),
            set_config("statement_timeout", statement_timeout, true),
            set_config("idle_in_transaction_session_timeout", idle_timeout, true),
            set_config(k0.0, k0.1, true),
            set_config(k1.0, k1.1, true),
            set_config(k2.0, k2.1, true),
            set_config(k3.0, k3.1, true),
            set_config(k4.0, k4.1, true),
            set_config(k5.0, k5.1, true),
            set_config(k6.0, k6.1, true),
            set_config(k7.0, k7.1, true),
            set_config(k8.0, k8.1, true),
            set_config(k9.0, k9.1, true),
        ))
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
struct Unfinished<'p> {
    conn: Option<pool::Pooled<'p>>,
}

impl Unfinished<'_> {
    fn conn(&self) -> Result<&AsyncPgConnection, DbError> {
        self.conn
            .as_deref()
            .ok_or_else(|| DbError::Unavailable("no connection".into()))
    }

    fn finished(&mut self) {
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

/// `BEGIN READ ONLY`, in one snapshot like every read (see `begin_sql`), as
/// a prepared statement (static query id), so it can be pipelined with the
/// statements after it.
struct BeginReadOnly;

/// `COMMIT` as a prepared statement.
struct Commit;

macro_rules! static_statement {
    ($name:ident, $sql:literal) => {
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

static_statement!(
    BeginReadOnly,
    "BEGIN READ ONLY ISOLATION LEVEL REPEATABLE READ"
);
static_statement!(Commit, "COMMIT");
