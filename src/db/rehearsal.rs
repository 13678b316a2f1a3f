//! A rehearsal: work done through an ordinary [`Db`] handle, every read
//! and write of it in one transaction that is always rolled back. The
//! domain code runs unchanged (the same checks, the same statements, the
//! same audit rows), and nothing it does can persist, because the door it
//! goes through never commits.

use diesel_async::TransactionManager;
use diesel_async::{AnsiTransactionManager, AsyncPgConnection, SimpleAsyncConnection};
use std::sync::Arc;

use super::pool::OwnedPooled;
use super::scope::{GENERIC_PLANS, Work, context_sql};
use super::{Db, DbError, RlsContext};

/// The rehearsal's one connection, inside its open transaction.
pub(super) struct Stage {
    conn: tokio::sync::Mutex<OwnedPooled>,
}

impl Db {
    /// Runs `rehearsal` with a handle whose every transaction is one
    /// transaction on one connection, rolled back at the end whatever
    /// happened: each call through the handle sees what the calls before
    /// it did, and nothing is committed, so no row, audit event,
    /// idempotency record or commit notification outlives it. The whole
    /// rehearsal shares the transaction limit of one call.
    pub async fn rehearse<T, F, Fut>(&self, rehearsal: F) -> Result<T, DbError>
    where
        F: FnOnce(Db) -> Fut,
        Fut: std::future::Future<Output = T>,
    {
        let mut conn = self.pool.get_owned().await?;
        // One snapshot for the whole rehearsal, so what it reads before and
        // after its writes differs by the writes alone. It begins with no
        // context (it can read nothing); each call sets its own.
        let begin = format!("BEGIN ISOLATION LEVEL REPEATABLE READ; SELECT {GENERIC_PLANS}");
        if let Err(error) = AnsiTransactionManager::begin_transaction_sql(&mut *conn, &begin).await
        {
            return Err(super::scope::failed(&mut conn, DbError::from(error)).await);
        }
        let stage = Arc::new(Stage {
            conn: tokio::sync::Mutex::new(conn),
        });
        let staged = self.staged(stage.clone());
        let outcome = tokio::time::timeout(self.transaction_limit, rehearsal(staged)).await;
        let Ok(stage) = Arc::try_unwrap(stage) else {
            // A handle escaped the rehearsal: its connection is dropped
            // with its transaction open, and the pool discards it.
            return Err(DbError::Unavailable("a rehearsal outlived its call".into()));
        };
        let mut conn = stage.conn.into_inner();
        let Ok(value) = outcome else {
            AnsiTransactionManager::transaction_manager_status_mut(&mut *conn).set_in_error();
            return Err(DbError::silent(self.transaction_limit));
        };
        AnsiTransactionManager::rollback_transaction(&mut *conn).await?;
        Ok(value)
    }
}

impl Stage {
    /// `work` in the rehearsal's transaction with `ctx` set for it
    /// (transaction-locally, like every context).
    pub(super) async fn run<'a, T, E, F>(
        &self,
        ctx: &RlsContext,
        limits: &[String; 2],
        work: F,
    ) -> Result<T, E>
    where
        F: for<'conn> FnOnce(&'conn mut AsyncPgConnection) -> Work<'a, 'conn, T, E> + Send + 'a,
        E: From<DbError> + Send + 'a,
        T: Send + 'a,
    {
        // Work that called the door again from inside its own work would
        // wait for itself: refuse it instead.
        let Ok(mut conn) = self.conn.try_lock() else {
            return Err(E::from(DbError::Unavailable(
                "a rehearsal's work called the database from inside its own work".into(),
            )));
        };
        let set = format!("SELECT {}", context_sql(ctx, limits));
        if let Err(error) = conn.batch_execute(&set).await {
            return Err(E::from(DbError::from(error)));
        }
        work(&mut conn).await
    }
}
