//! The stream's rows: positions joined to their audit rows, read in the
//! `watch` context (fenced by row-level security to the subscriber's
//! tenant and the global rows); where the stream ends; pruning.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Timestamptz};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use scoped_futures::ScopedFutureExt;
use uuid::Uuid;

use super::{Change, Effect, Kind};
use crate::admin::audit_trail::{Event, EventRow};
use crate::consistency::Lsn;
use crate::db::schema::audit::{access_changes, audit_events};
use crate::db::{Db, DbError, RlsContext, insert_position_sql};

/// Where the stream ends, as one server last saw it: the last position,
/// and a log point past the commit of every change up to it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Head {
    pub position: u64,
    pub lsn: Lsn,
}

/// Changes after a position, in order, with a log point past all their
/// commits, and where pruning had reached in the same snapshot.
pub(super) struct Batch {
    pub changes: Vec<Change>,
    pub lsn: Lsn,
    pub pruned_through: u64,
}

/// Where the stream stands, in one statement of a transaction: the bounds
/// a resume is checked against, where it ends, and a log point past the
/// commit of everything the transaction sees.
pub(super) struct Marks {
    /// Every position at or below it may have been pruned.
    pub pruned_through: u64,
    /// The last position ever handed out (a token beyond it is not from
    /// this database, or from a primary that failed over without it).
    pub last_issued: u64,
    /// The last position the transaction's context may see.
    pub last_visible: u64,
    pub lsn: Lsn,
}

#[derive(QueryableByName)]
struct MarksRow {
    #[diesel(sql_type = BigInt)]
    pruned_through: i64,
    #[diesel(sql_type = BigInt)]
    last_issued: i64,
    #[diesel(sql_type = BigInt)]
    last_visible: i64,
    #[diesel(sql_type = BigInt)]
    lsn: i64,
}

/// The `watch` context: a tenant's view, or every tenant's.
pub(super) fn context(tenant: Option<Uuid>, request_id: Option<&str>) -> RlsContext {
    let ctx = RlsContext::purpose("watch");
    match tenant {
        Some(tenant) => ctx.with_tenant(tenant),
        None => ctx,
    }
    .with_request_id(request_id)
}

#[derive(Queryable, Selectable)]
#[diesel(table_name = access_changes)]
struct PositionRow {
    change_position: i64,
    committed_utc: DateTime<Utc>,
    capability_keys: Option<Vec<String>>,
    subtree_root_id: Option<Uuid>,
    user_ids: Vec<Uuid>,
    effective_from: Option<DateTime<Utc>>,
    effective_until: Option<DateTime<Utc>>,
}

fn change(position: PositionRow, audit: Event) -> Change {
    let value = |side: &str| {
        audit
            .payload
            .get(side)
            .filter(|value| !value.is_null())
            .cloned()
    };
    Change {
        position: position.change_position as u64,
        event_id: audit.id,
        committed_at: position.committed_utc,
        tenant_id: audit.tenant_id,
        before: value("before"),
        after: value("after"),
        kind: audit.entity_kind,
        action: audit.action,
        entity_id: audit.entity_id,
        actor_kind: audit.actor_kind,
        actor_id: audit.actor_id,
        request_id: audit.request_id,
        effect: Effect {
            capabilities: position.capability_keys,
            subtree_root_id: position.subtree_root_id,
            user_ids: position.user_ids,
            effective_from: position.effective_from,
            effective_until: position.effective_until,
        },
    }
}

/// The stream's marks, read on `conn` after whatever the transaction read
/// before (the log point is then past all of it).
async fn marks_on(conn: &mut AsyncPgConnection) -> Result<Marks, DbError> {
    let row: MarksRow = diesel::sql_query(format!(
        "SELECT (SELECT pruned_through FROM audit.access_change_horizon) AS pruned_through, \
                (SELECT CASE WHEN is_called THEN last_value ELSE 0 END \
                   FROM audit.access_change_positions) AS last_issued, \
                coalesce((SELECT max(change_position) FROM audit.access_changes), 0) \
                    AS last_visible, \
                {} AS lsn",
        insert_position_sql()
    ))
    .get_result(conn)
    .await?;
    Ok(Marks {
        pruned_through: row.pruned_through as u64,
        last_issued: row.last_issued as u64,
        last_visible: row.last_visible as u64,
        lsn: Lsn(row.lsn as u64),
    })
}

/// Up to `limit` changes with positions in `(after, up_to]`, of `kinds`
/// (all when empty), that `ctx` may see.
pub(super) async fn read(
    db: &Db,
    ctx: &RlsContext,
    after: u64,
    up_to: u64,
    kinds: &[Kind],
    limit: usize,
) -> Result<Batch, DbError> {
    let kinds: Vec<&'static str> = kinds.iter().map(|kind| kind.as_str()).collect();
    db.read(ctx, |conn| {
        async move {
            let mut query = access_changes::table
                .inner_join(audit_events::table)
                .filter(access_changes::change_position.gt(after as i64))
                .filter(access_changes::change_position.le(up_to as i64))
                .order(access_changes::change_position.asc())
                .limit(limit as i64)
                .select((PositionRow::as_select(), EventRow::as_select()))
                .into_boxed();
            if !kinds.is_empty() {
                query = query.filter(audit_events::entity_kind_code.eq_any(kinds));
            }
            let rows: Vec<(PositionRow, EventRow)> = query.load(conn).await?;
            let marks = marks_on(conn).await?;
            Ok(Batch {
                changes: rows
                    .into_iter()
                    .map(|(position, audit)| change(position, audit.into()))
                    .collect(),
                lsn: marks.lsn,
                pruned_through: marks.pruned_through,
            })
        }
        .scope_boxed()
    })
    .await
}

/// The stream's marks as `ctx` sees them.
pub(super) async fn marks(db: &Db, ctx: &RlsContext) -> Result<Marks, DbError> {
    db.read(ctx, |conn| {
        async move { marks_on(conn).await }.scope_boxed()
    })
    .await
}

/// Where the stream ends now, over every tenant.
pub(super) async fn head(db: &Db) -> Result<Head, DbError> {
    let marks = marks(db, &context(None, None)).await?;
    Ok(Head {
        position: marks.last_visible.max(marks.pruned_through),
        lsn: marks.lsn,
    })
}

#[derive(QueryableByName)]
struct Pruned {
    #[diesel(sql_type = BigInt)]
    removed: i64,
}

/// Removes the changes committed before `now - retention`, and moves the
/// horizon past them in the same transaction (a resume from before it is
/// refused); returns how many went.
pub async fn prune(
    db: &Db,
    retention: std::time::Duration,
    now: DateTime<Utc>,
) -> Result<u64, DbError> {
    let retention = chrono::Duration::from_std(retention).unwrap_or(chrono::Duration::MAX);
    let cutoff = now
        .checked_sub_signed(retention)
        .unwrap_or(DateTime::<Utc>::MIN_UTC);
    db.write(&RlsContext::purpose("watch_retention"), |conn| {
        async move {
            let pruned: Vec<Pruned> = diesel::sql_query(
                "WITH cut AS (
                     SELECT max(change_position) AS through
                       FROM audit.access_changes WHERE committed_utc < $1),
                 gone AS (
                     DELETE FROM audit.access_changes
                      WHERE change_position <= (SELECT through FROM cut)
                     RETURNING 1)
                 UPDATE audit.access_change_horizon
                    SET pruned_through = (SELECT through FROM cut), pruned_utc = now()
                  WHERE (SELECT through FROM cut) > pruned_through
                 RETURNING (SELECT count(*) FROM gone) AS removed",
            )
            .bind::<Timestamptz, _>(cutoff)
            .load(conn)
            .await?;
            Ok(pruned.into_iter().next().map_or(0, |p| p.removed as u64))
        }
        .scope_boxed()
    })
    .await
}
