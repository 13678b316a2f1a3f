//! Brute-force protection: failed logins counted per key (the login, and
//! the client address) in the database, so a lockout holds across replicas.
//! Past the threshold each further failure locks the key for twice as long
//! as the one before, up to a ceiling; a quiet window resets the count.

use std::time::Duration;

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{Integer, Interval, Text, Timestamptz, Uuid as SqlUuid};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use crate::db::DbError;
use crate::db::schema::auth::login_throttles as lt;

#[derive(Clone, Debug)]
pub struct ThrottlePolicy {
    /// Failures per login before it locks.
    pub login_threshold: i32,
    /// Failures per client address before it locks.
    pub address_threshold: i32,
    /// Failures older than this are forgotten.
    pub window: Duration,
    /// The first lock; each further failure doubles it.
    pub base_delay: Duration,
    pub max_delay: Duration,
}

impl Default for ThrottlePolicy {
    fn default() -> Self {
        Self {
            login_threshold: 5,
            address_threshold: 50,
            window: Duration::from_secs(15 * 60),
            base_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(15 * 60),
        }
    }
}

/// A throttled key: `login:<kind>:<value>` or `addr:<ip>`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ThrottleKey {
    pub key: String,
    pub threshold: i32,
}

impl ThrottlePolicy {
    pub fn keys(&self, login: Option<&str>, address: Option<&str>) -> Vec<ThrottleKey> {
        let mut keys = Vec::new();
        if let Some(login) = login {
            keys.push(ThrottleKey {
                key: format!("login:{login}"),
                threshold: self.login_threshold,
            });
        }
        if let Some(address) = address {
            keys.push(ThrottleKey {
                key: format!("addr:{address}"),
                threshold: self.address_threshold,
            });
        }
        keys
    }

    /// The lock after `failures` failures (none below the threshold).
    fn delay(&self, failures: i32, threshold: i32) -> Option<Duration> {
        let over = failures.checked_sub(threshold)?;
        let factor = 2u32
            .checked_pow(u32::try_from(over).ok()?.min(30))
            .unwrap_or(u32::MAX);
        Some(self.base_delay.saturating_mul(factor).min(self.max_delay))
    }
}

/// How long until every key is unlocked, if any is locked now.
pub async fn locked_for(
    conn: &mut AsyncPgConnection,
    tenant: Uuid,
    keys: &[ThrottleKey],
    now: DateTime<Utc>,
) -> Result<Option<Duration>, DbError> {
    let names: Vec<&str> = keys.iter().map(|k| k.key.as_str()).collect();
    let until: Option<Option<DateTime<Utc>>> = lt::table
        .filter(lt::tenant_id.eq(tenant))
        .filter(lt::key.eq_any(names))
        .filter(lt::locked_until.gt(now))
        .select(diesel::dsl::max(lt::locked_until))
        .first(conn)
        .await
        .optional()?;
    Ok(until
        .flatten()
        .map(|until| (until - now).to_std().unwrap_or_default()))
}

#[derive(QueryableByName)]
struct Counted {
    #[diesel(sql_type = Integer)]
    failures: i32,
}

/// Counts a failure against each key; returns the longest lock it caused.
pub async fn record_failure(
    conn: &mut AsyncPgConnection,
    policy: &ThrottlePolicy,
    tenant: Uuid,
    keys: &[ThrottleKey],
    now: DateTime<Utc>,
) -> Result<Option<Duration>, DbError> {
    let mut longest = None;
    for key in keys {
        let counted: Counted = diesel::sql_query(
            "INSERT INTO auth.login_throttles AS t (tenant_id, key, failures, window_started_at) VALUES ($1, $2, 1, $3) \
             ON CONFLICT (tenant_id, key) DO UPDATE SET \
               failures = CASE WHEN t.window_started_at <= $3 - $4 THEN 1 ELSE t.failures + 1 END, \
               window_started_at = CASE WHEN t.window_started_at <= $3 - $4 THEN $3 ELSE t.window_started_at END \
             RETURNING failures",
        )
        .bind::<SqlUuid, _>(tenant)
        .bind::<Text, _>(&key.key)
        .bind::<Timestamptz, _>(now)
        .bind::<Interval, _>(diesel::data_types::PgInterval::from_microseconds(
            i64::try_from(policy.window.as_micros()).unwrap_or(i64::MAX),
        ))
        .get_result(conn)
        .await?;
        if let Some(delay) = policy.delay(counted.failures, key.threshold) {
            let until = now + chrono::Duration::from_std(delay).unwrap_or_default();
            diesel::update(
                lt::table
                    .filter(lt::tenant_id.eq(tenant))
                    .filter(lt::key.eq(&key.key)),
            )
            .set(lt::locked_until.eq(until))
            .execute(conn)
            .await?;
            longest = longest.max(Some(delay));
        }
    }
    Ok(longest)
}

/// A successful login clears its login key (not the address key).
pub async fn reset(
    conn: &mut AsyncPgConnection,
    tenant: Uuid,
    key: &ThrottleKey,
) -> Result<(), DbError> {
    diesel::update(
        lt::table
            .filter(lt::tenant_id.eq(tenant))
            .filter(lt::key.eq(&key.key)),
    )
    .set((
        lt::failures.eq(0),
        lt::locked_until.eq(None::<DateTime<Utc>>),
    ))
    .execute(conn)
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lock_doubles_past_the_threshold_up_to_the_ceiling() {
        let policy = ThrottlePolicy::default();
        assert_eq!(policy.delay(4, 5), None);
        assert_eq!(policy.delay(5, 5), Some(Duration::from_secs(1)));
        assert_eq!(policy.delay(6, 5), Some(Duration::from_secs(2)));
        assert_eq!(policy.delay(8, 5), Some(Duration::from_secs(8)));
        assert_eq!(policy.delay(40, 5), Some(Duration::from_secs(900)));
    }
}
