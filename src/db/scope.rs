//! The RLS-scoped transaction: the only way to run SQL against the database.

use diesel::sql_types::{Bool, Text};
use diesel_async::{AnsiTransactionManager, AsyncPgConnection, RunQueryDsl, TransactionManager};
use scoped_futures::ScopedBoxFuture;

use super::pool::{self, Pool, PoolSettings};
use super::{DbError, RlsContext};

diesel::define_sql_function! {
    /// PostgreSQL's `set_config(setting, value, is_local)`.
    fn set_config(setting: Text, value: Text, is_local: Bool) -> Text;
}

/// The `app.*` keys, in the order of [`RlsContext::settings`].
pub(crate) const CONTEXT_KEYS: [&str; 8] = [
    "app.tenant_id",
    "app.user_id",
    "app.service_id",
    "app.service_key",
    "app.refresh_session_id",
    "app.request_id",
    "app.purpose",
    "app.global_admin",
];

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
    pool: Pool,
}

/// A snapshot of the pool for health and metrics.
#[derive(Clone, Copy, Debug)]
pub struct PoolStatus {
    pub connections: u32,
    pub idle: u32,
}

impl Db {
    /// Builds the pool; no connection is made until the first request.
    pub fn new(database_url: &str, settings: &PoolSettings) -> Self {
        Self {
            pool: pool::build(database_url, settings),
        }
    }

    /// Runs `work` in a `READ ONLY` transaction scoped by `ctx`.
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

    /// Whether the database answers a trivial statement through the normal
    /// door (an empty context, so it can read nothing).
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
        let state = self.pool.state();
        PoolStatus {
            connections: state.connections,
            idle: state.idle_connections,
        }
    }

    async fn scoped<'a, T, E, F>(&self, access: Access, ctx: &RlsContext, work: F) -> Result<T, E>
    where
        F: for<'conn> FnOnce(&'conn mut AsyncPgConnection) -> Work<'a, 'conn, T, E> + Send + 'a,
        E: From<DbError> + Send + 'a,
        T: Send + 'a,
    {
        let mut conn = self.pool.get().await.map_err(DbError::from)?;
        let conn: &mut AsyncPgConnection = &mut conn;
        let begin = match access {
            Access::ReadOnly => "BEGIN READ ONLY",
            Access::ReadWrite => "BEGIN",
        };
        AnsiTransactionManager::begin_transaction_sql(conn, begin)
            .await
            .map_err(DbError::from)?;
        // If this future is dropped mid-way (deadline, cancelled call), the
        // connection goes back with its transaction open; the pool sees that
        // and discards it, so nothing leaks to the next request.
        let outcome = match set_context(conn, ctx).await {
            Ok(()) => work(conn).await,
            Err(error) => Err(E::from(error)),
        };
        match outcome {
            Ok(value) => {
                AnsiTransactionManager::commit_transaction(conn)
                    .await
                    .map_err(DbError::from)?;
                Ok(value)
            }
            Err(error) => {
                if let Err(rollback) = AnsiTransactionManager::rollback_transaction(conn).await {
                    tracing::warn!(error = %rollback, "rollback failed; connection discarded");
                }
                Err(error)
            }
        }
    }
}

/// Sets every `app.*` key in one statement, transaction-locally, so a
/// connection returned to the pool (or shared through PgBouncer in
/// transaction mode) carries nothing to the next request.
async fn set_context(conn: &mut AsyncPgConnection, ctx: &RlsContext) -> Result<(), DbError> {
    let [
        tenant,
        user,
        service,
        service_key,
        refresh_session,
        request,
        purpose,
        admin,
    ] = ctx.settings();
    let [
        k_tenant,
        k_user,
        k_service,
        k_service_key,
        k_refresh_session,
        k_request,
        k_purpose,
        k_admin,
    ] = CONTEXT_KEYS;
    diesel::select((
        set_config(k_tenant, tenant, true),
        set_config(k_user, user, true),
        set_config(k_service, service, true),
        set_config(k_service_key, service_key, true),
        set_config(k_refresh_session, refresh_session, true),
        set_config(k_request, request, true),
        set_config(k_purpose, purpose, true),
        set_config(k_admin, admin, true),
    ))
    .execute(conn)
    .await?;
    Ok(())
}
