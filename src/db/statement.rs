//! The checks' transaction: one statement, scoped by a context it sets
//! itself, in the implicit transaction PostgreSQL gives a lone statement.
//! One `Bind`/`Execute`/`Sync`: one write, one reply, one flush, where
//! `BEGIN`, the context, the read and `COMMIT` take four of each.

use diesel::pg::Pg;
use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};
use diesel_async::AsyncPgConnection;
use futures_util::future::BoxFuture;

use super::context::CONTEXT_KEYS;
use super::pipeline::{Unfinished, push_set_configs};
use super::scope::{Db, checkout_from, lost_or};
use super::{DbError, RlsContext};

impl Db {
    /// Runs `work`, a single read built with the [`InContext`] it is handed,
    /// as one statement whose own implicit transaction is the scope. A
    /// statement sees one snapshot and cannot outlive its transaction, so
    /// the context (transaction-local) is gone when it answers, as with
    /// [`Db::read_pipelined`]. Without the statement cache it falls back to
    /// [`Db::read`].
    ///
    /// The statement is planned before it runs, so what a transaction sets
    /// to be planned well (`plan_cache_mode`) must be the role's default
    /// (`ALTER ROLE … SET`, done by provisioning); likewise its
    /// `statement_timeout`. The wait for the answer is bounded here.
    pub async fn read_statement<T, F>(&self, ctx: &RlsContext, work: F) -> Result<T, DbError>
    where
        F: for<'c> FnOnce(
                &'c AsyncPgConnection,
                InContext,
            ) -> BoxFuture<'c, diesel::QueryResult<T>>
            + Send,
        T: Send,
    {
        let context = InContext {
            settings: ctx.settings(),
        };
        let pool = self.routed_pool().await;
        // A rehearsal's reads are its transaction's own.
        if self.stage.is_some() || !pool.statement_cache() {
            use scoped_futures::ScopedFutureExt;
            return self
                .on_pool(pool.clone())
                .read(ctx, |conn| {
                    async move { work(conn, context).await.map_err(DbError::from) }.scope_boxed()
                })
                .await;
        }
        let pooled = checkout_from(pool).await?;
        let mut guard = Unfinished::new(pooled);
        let limit = self.transaction_limit;
        // Unless it answered, the guard marks the connection broken.
        match tokio::time::timeout(limit, work(guard.conn()?, context)).await {
            Ok(Ok(value)) => {
                guard.finished();
                Ok(value)
            }
            Ok(Err(error)) => {
                let error = lost_or(guard.conn()?, DbError::from(error)).await;
                let code = guard.error_code();
                // A statement that failed leaves no transaction open, so
                // the connection goes back to the pool, unless it was lost.
                if !matches!(error, DbError::Unavailable(_)) {
                    guard.finished();
                }
                Err(error.by_sqlstate(code))
            }
            Err(_) => Err(DbError::silent(limit)),
        }
    }
}

/// The context a [`Db::read_statement`] sets, to wrap its one read in.
pub struct InContext {
    settings: [(&'static str, String); CONTEXT_KEYS],
}

impl InContext {
    /// `query` as a statement that sets the context before it reads.
    pub fn wrap<Q>(&self, query: Q) -> Scoped<'_, Q> {
        Scoped {
            query,
            settings: &self.settings,
        }
    }
}

/// `SELECT * FROM (query) AS scoped WHERE (SELECT num_nulls(set_config(…,
/// true), …) = 0)`: the condition refers to no row, so PostgreSQL runs it
/// once as a gate (a `One-Time Filter`) before anything under it is read,
/// and the policies read their `current_setting`s after it. Were that order
/// ever lost, the policies would see an empty context and no rows: a check
/// would be denied, not leaked.
pub struct Scoped<'a, Q> {
    query: Q,
    settings: &'a [(&'static str, String); CONTEXT_KEYS],
}

impl<Q: QueryId> QueryId for Scoped<'_, Q> {
    type QueryId = Scoped<'static, Q::QueryId>;
    const HAS_STATIC_QUERY_ID: bool = Q::HAS_STATIC_QUERY_ID;
}

impl<Q: Query> Query for Scoped<'_, Q> {
    type SqlType = Q::SqlType;
}

impl<Q: QueryFragment<Pg>> QueryFragment<Pg> for Scoped<'_, Q> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> diesel::QueryResult<()> {
        out.push_sql("SELECT * FROM (");
        self.query.walk_ast(out.reborrow())?;
        // Qualified: an overload planted on the search path would run here,
        // as the application role, before every check.
        out.push_sql(") AS scoped WHERE (SELECT pg_catalog.num_nulls(");
        let settings = self.settings.iter();
        push_set_configs(
            &mut out,
            settings.map(|(name, value)| (*name, value.as_str())),
        )?;
        out.push_sql(") = 0)");
        Ok(())
    }
}
