//! The revoked-session list every replica keeps in memory, refreshed from
//! `auth.token_revocations` every poll interval. A token whose session is on
//! it is refused; if the list could not be refreshed for longer than
//! [`MAX_STALENESS`], tokens are refused as unverifiable rather than trusted.

use std::collections::HashMap;
use std::sync::RwLock;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use scoped_futures::ScopedFutureExt;
use uuid::Uuid;

use super::MAX_LEEWAY;
use crate::db::schema::auth::token_revocations as tr;
use crate::db::{Db, DbError, RlsContext};

/// The promise made to operators: a revoked token stops working everywhere
/// within five seconds. A replica that cannot confirm its list is this fresh
/// refuses tokens.
pub const MAX_STALENESS: Duration = Duration::from_secs(5);

/// Rows are re-read this far behind the newest one seen, so a revocation
/// whose transaction committed late is not missed.
const OVERLAP: chrono::Duration = chrono::Duration::seconds(30);

/// Which kind of session a revocation lists.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SessionKind {
    Service,
    User,
}

impl SessionKind {
    fn as_str(self) -> &'static str {
        match self {
            Self::Service => "service",
            Self::User => "user",
        }
    }
}

/// Lists revoked sessions (id, when their tokens expire) for every
/// replica, in the caller's transaction; a session already listed stays
/// as it was. The one writer of `auth.token_revocations`.
pub async fn record(
    conn: &mut diesel_async::AsyncPgConnection,
    kind: SessionKind,
    sessions: &[(Uuid, DateTime<Utc>)],
) -> Result<(), DbError> {
    if sessions.is_empty() {
        return Ok(());
    }
    let rows: Vec<_> = sessions
        .iter()
        .map(|(session, expires_at)| {
            (
                tr::session_id.eq(*session),
                tr::token_kind.eq(kind.as_str()),
                tr::expires_at.eq(*expires_at),
            )
        })
        .collect();
    diesel::insert_into(tr::table)
        .values(&rows)
        .on_conflict_do_nothing()
        .execute(conn)
        .await?;
    Ok(())
}

/// The oldest expiry a revoked session may have and still matter at `now`:
/// its tokens are accepted for up to [`MAX_LEEWAY`] after it.
pub fn still_accepted_after(now: DateTime<Utc>) -> DateTime<Utc> {
    now - chrono::Duration::from_std(MAX_LEEWAY).unwrap_or_default()
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("the revocation list is stale")]
pub struct Stale;

#[derive(Default)]
struct State {
    /// Revoked session id → when its tokens expire (they are still
    /// accepted for the leeway after that, so the entry is kept that long).
    revoked: HashMap<Uuid, DateTime<Utc>>,
    /// Newest `revoked_at` seen.
    watermark: Option<DateTime<Utc>>,
    synced_at: Option<Instant>,
}

#[derive(Default)]
pub struct RevocationList {
    state: RwLock<State>,
}

impl RevocationList {
    /// Whether the session's tokens are revoked; an error when the list has
    /// not been confirmed recently enough to say.
    pub fn is_revoked(&self, session: Uuid) -> Result<bool, Stale> {
        let state = self
            .state
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        match state.synced_at {
            Some(at) if at.elapsed() <= MAX_STALENESS => Ok(state.revoked.contains_key(&session)),
            _ => Err(Stale),
        }
    }

    /// Records a revocation made by this replica, effective at once here.
    pub fn insert(&self, session: Uuid, expires_at: DateTime<Utc>) {
        let mut state = self
            .state
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        state.revoked.insert(session, expires_at);
    }

    /// Reads revocations since the last sync and forgets expired ones.
    pub async fn sync(&self, db: &Db) -> Result<usize, DbError> {
        let since = {
            let state = self
                .state
                .read()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            state.watermark.map(|w| w - OVERLAP)
        };
        // The database's clock, not this replica's: every replica keeps
        // the same entries.
        let (kept_since, rows) = db
            .read(&RlsContext::purpose("revocation_sync"), |conn| {
                async move {
                    let now: DateTime<Utc> =
                        diesel::select(diesel::dsl::sql::<diesel::sql_types::Timestamptz>("now()"))
                            .get_result(conn)
                            .await?;
                    let kept_since = still_accepted_after(now);
                    let mut query = tr::table
                        .select((tr::session_id, tr::revoked_at, tr::expires_at))
                        .filter(tr::expires_at.gt(kept_since))
                        .into_boxed();
                    if let Some(since) = since {
                        query = query.filter(tr::revoked_at.ge(since));
                    }
                    let rows: Vec<(Uuid, DateTime<Utc>, DateTime<Utc>)> = query.load(conn).await?;
                    Ok::<_, DbError>((kept_since, rows))
                }
                .scope_boxed()
            })
            .await?;
        let mut state = self
            .state
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        for (session, revoked_at, expires_at) in &rows {
            state.revoked.insert(*session, *expires_at);
            if state.watermark.is_none_or(|w| *revoked_at > w) {
                state.watermark = Some(*revoked_at);
            }
        }
        state
            .revoked
            .retain(|_, expires_at| *expires_at > kept_since);
        state.synced_at = Some(Instant::now());
        Ok(rows.len())
    }

    /// Keeps the list fresh until the task is aborted.
    pub async fn run(&self, db: Db, interval: Duration) {
        let mut ticker = tokio::time::interval(interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut failing = false;
        loop {
            ticker.tick().await;
            match self.sync(&db).await {
                Ok(_) if failing => {
                    tracing::info!("revocation list synced again");
                    failing = false;
                }
                Ok(_) => {}
                Err(error) if !failing => {
                    tracing::warn!(%error, "cannot sync the revocation list; tokens are refused once it is {MAX_STALENESS:?} old");
                    failing = true;
                }
                Err(_) => {}
            }
        }
    }

    /// Marks the list as confirmed without reading the database: for tests
    /// of token handling that have no database.
    pub fn assume_synced(&self) {
        let mut state = self
            .state
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        state.synced_at = Some(Instant::now());
    }
}
