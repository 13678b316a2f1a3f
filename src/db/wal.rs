//! Positions in the write-ahead log: where a request's writes ended, how far
//! the primary has written, how far a replica has replayed.

use diesel::sql_types::{BigInt, Bool, Nullable};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use futures_util::FutureExt;
use scoped_futures::ScopedFutureExt;

use super::{Db, DbError, RlsContext};
use crate::consistency::{Lsn, scope};

/// A `pg_lsn` as a number (it fits: PostgreSQL's log would need exabytes).
fn as_number(lsn: &str) -> String {
    format!("({lsn} OPERATOR(pg_catalog.-) '0/0'::pg_catalog.pg_lsn)::bigint")
}

/// The primary's log insert position now, as a number, for a statement
/// of a transaction: past the commit record of every transaction its
/// snapshot sees (a commit is in the log before it is visible).
pub fn insert_position_sql() -> String {
    as_number("pg_catalog.pg_current_wal_insert_lsn()")
}

impl Db {
    /// Records, for the current request, where a write it just committed on
    /// `conn` ended. The insert position read after the COMMIT returned is
    /// past the commit record (the position read inside the transaction is
    /// before it). It reads no table. A failure loses only the token.
    pub(super) async fn record_commit_point(&self, conn: &mut AsyncPgConnection) {
        let sql = insert_position_sql();
        match diesel::select(diesel::dsl::sql::<BigInt>(&sql))
            .get_result::<i64>(conn)
            .await
        {
            Ok(lsn) => scope::record_write(Lsn(lsn as u64)),
            Err(error) => {
                tracing::warn!(%error, "cannot read the commit's WAL position; no consistency token");
            }
        }
    }

    /// How far the primary has written its log. Every transaction that had
    /// committed when this was asked ends at or before it (commits wait for
    /// their log to be written).
    pub(super) async fn wal_written(&self) -> Result<Lsn, DbError> {
        let sql = as_number("pg_catalog.pg_current_wal_lsn()");
        let lsn = self
            .read_statement(&RlsContext::anonymous(), move |conn, context| {
                let mut conn = conn;
                async move {
                    context
                        .wrap(diesel::select(diesel::dsl::sql::<BigInt>(&sql)))
                        .get_result::<i64>(&mut conn)
                        .await
                }
                .boxed()
            })
            .await?;
        Ok(Lsn(lsn as u64))
    }

    /// How far this replica has replayed the primary's log; `None` when it
    /// is not in recovery (promoted, or a primary).
    pub(super) async fn replay_position(&self) -> Result<Option<Lsn>, DbError> {
        let replayed = as_number("pg_catalog.pg_last_wal_replay_lsn()");
        let (in_recovery, replayed) = self
            .read_statement(&RlsContext::anonymous(), move |conn, context| {
                let mut conn = conn;
                async move {
                    context
                        .wrap(diesel::select((
                            diesel::dsl::sql::<Bool>("pg_catalog.pg_is_in_recovery()"),
                            diesel::dsl::sql::<Nullable<BigInt>>(&replayed),
                        )))
                        .get_result::<(bool, Option<i64>)>(&mut conn)
                        .await
                }
                .boxed()
            })
            .await?;
        Ok(match (in_recovery, replayed) {
            (true, Some(lsn)) => Some(Lsn(lsn as u64)),
            _ => None,
        })
    }
}

/// Where a transaction named by a token from `auth.consistency_token()`
/// stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TransactionPoint {
    /// It committed (or aborted, or is too old to tell): everything it
    /// wrote lies before this point of the primary's log.
    Ended(Lsn),
    /// It has not committed yet.
    Running,
}

#[derive(diesel::QueryableByName)]
struct PlacedToken {
    #[diesel(sql_type = Bool)]
    valid: bool,
    #[diesel(sql_type = Nullable<diesel::sql_types::Text>)]
    state: Option<String>,
    #[diesel(sql_type = Nullable<BigInt>)]
    lsn: Option<i64>,
}

impl Db {
    /// Places a transaction's token on the primary; `None` when the token
    /// is not one of this database's.
    pub async fn transaction_point(
        &self,
        token: &str,
    ) -> Result<Option<TransactionPoint>, DbError> {
        let token = token.to_owned();
        let placed = self
            .primary()
            .read(&RlsContext::anonymous(), |conn| {
                async move {
                    let placed: PlacedToken = diesel::sql_query(
                        "SELECT valid, state, lsn FROM auth.consistency_token_point($1)",
                    )
                    .bind::<diesel::sql_types::Text, _>(token)
                    .get_result(conn)
                    .await?;
                    Ok::<_, DbError>(placed)
                }
                .scope_boxed()
            })
            .await?;
        Ok(match (placed.valid, placed.state.as_deref(), placed.lsn) {
            (false, _, _) => None,
            (true, Some("in progress"), _) => Some(TransactionPoint::Running),
            (true, _, Some(lsn)) => Some(TransactionPoint::Ended(Lsn(lsn as u64))),
            (true, _, None) => None,
        })
    }
}
