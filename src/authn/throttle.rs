//! Brute-force protection, kept in the database so it holds across
//! replicas. Every attempt is *reserved* before the expensive step (a
//! password hash, a code comparison): counted as a failure up front, in one
//! atomic upsert per counter, and refused while a counter is locked. So N
//! concurrent wrong passwords verify at most the threshold, and an attempt
//! whose client gives up mid-way has still been counted. A success gives
//! its reservation back.
//!
//! Two kinds of lock: past the threshold a *doubling* counter locks for
//! twice as long as the time before, up to a ceiling (logins); a *cap*
//! locks until its window ends (codes per destination per day, requests per
//! address). A quiet window resets a counter.

use std::time::Duration;

use chrono::{DateTime, Utc};
use diesel::sql_types::{Integer, Interval, Nullable, Text, Timestamptz, Uuid as SqlUuid};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use crate::db::DbError;

#[derive(Clone, Debug)]
pub struct ThrottlePolicy {
    /// Failures per login before it locks.
    pub login_threshold: i32,
    /// Failures per client address (in any tenant, or none) before it locks.
    pub address_threshold: i32,
    /// Failures older than this are forgotten.
    pub window: Duration,
    /// The first lock; each further failure doubles it.
    pub base_delay: Duration,
    pub max_delay: Duration,
    /// Failed code verifications per destination, across codes, per
    /// [`Self::code_failure_window`].
    pub code_failures_per_destination: i32,
    pub code_failure_window: Duration,
    /// `RequestOtp` and `ResetPassword` calls per client address per
    /// [`Self::request_window`].
    pub requests_per_address: i32,
    pub request_window: Duration,
    /// Refused credential exchanges audited per presented service key per
    /// [`Self::request_window`]; later ones are counted, not audited.
    pub audited_refusals_per_key: i32,
}

impl Default for ThrottlePolicy {
    fn default() -> Self {
        Self {
            login_threshold: 5,
            address_threshold: 50,
            window: Duration::from_secs(15 * 60),
            base_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(15 * 60),
            code_failures_per_destination: 10,
            code_failure_window: Duration::from_secs(24 * 3600),
            requests_per_address: 30,
            request_window: Duration::from_secs(3600),
            audited_refusals_per_key: 20,
        }
    }
}

/// How long an acceptance in progress keeps others of the same invitation
/// out (given back at once when it ends).
pub const INVITATION_HOLD: Duration = Duration::from_secs(30);

/// How a counter past its threshold locks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LockRule {
    /// `base_delay`, doubling with each further failure, up to `max_delay`.
    Doubling,
    /// Until the counter's window ends.
    Cap,
}

/// Where a counter lives: per tenant (`auth.login_throttles`), or for
/// callers who may not name a real tenant (`auth.anonymous_throttles`,
/// visible only under the client address or service key it counts).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Counted {
    Tenant {
        tenant: Uuid,
        key: String,
    },
    Address {
        address: String,
        counter: &'static str,
    },
    ServiceKey {
        key: String,
        counter: &'static str,
    },
    Invitation {
        id: Uuid,
    },
}

/// One counter an attempt is reserved against.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ThrottleKey {
    pub counted: Counted,
    pub threshold: i32,
    pub window: Duration,
    pub lock: LockRule,
}

impl ThrottlePolicy {
    /// A password login's counters: the login in its tenant, and the client
    /// address across tenants (so unknown tenants count too).
    pub fn login_keys(
        &self,
        login: Option<(Uuid, String)>,
        address: Option<&str>,
    ) -> Vec<ThrottleKey> {
        let mut keys = Vec::new();
        if let Some((tenant, login)) = login {
            keys.push(self.doubling(
                Counted::Tenant {
                    tenant,
                    key: format!("login:{login}"),
                },
                self.login_threshold,
            ));
        }
        keys.extend(self.address_failures(address));
        keys
    }

    /// The client address's failure counter (logins, codes, invitations).
    pub fn address_failures(&self, address: Option<&str>) -> Option<ThrottleKey> {
        address.map(|address| {
            self.doubling(
                Counted::Address {
                    address: address.to_owned(),
                    counter: "failures",
                },
                self.address_threshold,
            )
        })
    }

    /// Failed code verifications for one destination of a tenant, across
    /// every code sent to it.
    pub fn code_failures(&self, tenant: Uuid, destination: &str) -> ThrottleKey {
        ThrottleKey {
            counted: Counted::Tenant {
                tenant,
                key: format!("code_failures:{destination}"),
            },
            threshold: self.code_failures_per_destination,
            window: self.code_failure_window,
            lock: LockRule::Cap,
        }
    }

    /// Calls of one kind (`otp_requests`, `password_resets`) from a client
    /// address.
    pub fn address_requests(
        &self,
        address: Option<&str>,
        counter: &'static str,
    ) -> Option<ThrottleKey> {
        address.map(|address| ThrottleKey {
            counted: Counted::Address {
                address: address.to_owned(),
                counter,
            },
            threshold: self.requests_per_address,
            window: self.request_window,
            lock: LockRule::Cap,
        })
    }

    /// Refused exchanges for a presented service key.
    pub fn exchange_refusals(&self, key: &str) -> ThrottleKey {
        ThrottleKey {
            counted: Counted::ServiceKey {
                key: key.to_owned(),
                counter: "refusals",
            },
            threshold: self.audited_refusals_per_key,
            window: self.request_window,
            lock: LockRule::Cap,
        }
    }

    /// One acceptance of an invitation hashing at a time: the first
    /// holds it for [`INVITATION_HOLD`] unless it gives it back.
    pub fn invitation_attempt(&self, id: Uuid) -> ThrottleKey {
        ThrottleKey {
            counted: Counted::Invitation { id },
            threshold: 1,
            window: INVITATION_HOLD,
            lock: LockRule::Cap,
        }
    }

    fn doubling(&self, counted: Counted, threshold: i32) -> ThrottleKey {
        ThrottleKey {
            counted,
            threshold,
            window: self.window,
            lock: LockRule::Doubling,
        }
    }

    /// The doubling lock after `failures` failures (none below the threshold).
    fn delay(&self, failures: i32, threshold: i32) -> Option<Duration> {
        let over = failures.checked_sub(threshold)?;
        let factor = 2u32
            .checked_pow(u32::try_from(over).ok()?.min(30))
            .unwrap_or(u32::MAX);
        Some(self.base_delay.saturating_mul(factor).min(self.max_delay))
    }
}

/// The outcome of reserving an attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reservation {
    /// Counted; `locked` says whether this attempt reached a threshold and
    /// locked a counter (for the audit trail and the lockout metric).
    Reserved { locked: bool },
    /// A counter is locked: nothing was counted, and nothing may be tried
    /// for this long.
    Locked(Duration),
}

#[derive(diesel::QueryableByName)]
struct Counter {
    #[diesel(sql_type = Integer)]
    failures: i32,
    #[diesel(sql_type = Timestamptz)]
    window_started_at: DateTime<Utc>,
}

#[derive(diesel::QueryableByName)]
struct LockedUntil {
    #[diesel(sql_type = Nullable<Timestamptz>)]
    locked_until: Option<DateTime<Utc>>,
}

/// Counts one attempt against every key, atomically per key (concurrent
/// reservations queue on the counter's row). When a key is locked, returns
/// [`Reservation::Locked`] having counted nothing *only if the caller rolls
/// the transaction back*: return an error from the scoped transaction.
pub async fn reserve(
    conn: &mut AsyncPgConnection,
    policy: &ThrottlePolicy,
    keys: &[ThrottleKey],
    now: DateTime<Utc>,
) -> Result<Reservation, DbError> {
    let mut locked_here = false;
    let mut wait: Option<Duration> = None;
    for key in keys {
        let counted: Option<Counter> = counter_sql(
            &key.counted,
            "INSERT INTO {table} AS t ({columns}, failures, window_started_at) VALUES ({values}, 1, $N) \
             ON CONFLICT ({columns}) DO UPDATE SET \
               failures = CASE WHEN t.window_started_at <= $N - $W THEN 1 ELSE t.failures + 1 END, \
               window_started_at = CASE WHEN t.window_started_at <= $N - $W THEN $N ELSE t.window_started_at END, \
               locked_until = CASE WHEN t.window_started_at <= $N - $W THEN NULL ELSE t.locked_until END \
             WHERE t.locked_until IS NULL OR t.locked_until <= $N OR t.window_started_at <= $N - $W \
             RETURNING failures, window_started_at",
        )
        .bind::<Timestamptz, _>(now)
        .bind::<Interval, _>(interval(key.window))
        .get_result(conn)
        .await
        .map(Some)
        .or_else(|e| match e {
            diesel::result::Error::NotFound => Ok(None),
            e => Err(e),
        })?;
        let Some(counted) = counted else {
            // The row is there and locked (the upsert's WHERE refused).
            let until: LockedUntil = counter_sql(
                &key.counted,
                "SELECT locked_until FROM {table} WHERE ({columns}) = ({values})",
            )
            .get_result(conn)
            .await?;
            let left = until
                .locked_until
                .map(|u| (u - now).to_std().unwrap_or_default())
                .unwrap_or_default();
            wait = wait.max(Some(left));
            continue;
        };
        let lock_for = match key.lock {
            LockRule::Doubling => policy.delay(counted.failures, key.threshold),
            LockRule::Cap => (counted.failures >= key.threshold).then(|| {
                let ends = counted.window_started_at
                    + chrono::Duration::from_std(key.window).unwrap_or_default();
                (ends - now).to_std().unwrap_or_default()
            }),
        };
        if let Some(delay) = lock_for {
            let until = now + chrono::Duration::from_std(delay).unwrap_or_default();
            counter_sql(
                &key.counted,
                "UPDATE {table} SET locked_until = $N WHERE ({columns}) = ({values})",
            )
            .bind::<Timestamptz, _>(until)
            .execute(conn)
            .await?;
            locked_here = true;
        }
    }
    Ok(match wait {
        Some(wait) => Reservation::Locked(wait),
        None => Reservation::Reserved {
            locked: locked_here,
        },
    })
}

/// Gives a successful attempt's reservation back: one failure fewer, and
/// no lock once below the threshold.
pub async fn release(conn: &mut AsyncPgConnection, keys: &[ThrottleKey]) -> Result<(), DbError> {
    for key in keys {
        counter_sql(
            &key.counted,
            "UPDATE {table} SET failures = greatest(failures - 1, 0), \
               locked_until = CASE WHEN failures - 1 < $T THEN NULL ELSE locked_until END \
             WHERE ({columns}) = ({values})",
        )
        .bind::<Integer, _>(key.threshold)
        .execute(conn)
        .await?;
    }
    Ok(())
}

/// A successful login clears its login counter entirely.
pub async fn reset(conn: &mut AsyncPgConnection, key: &ThrottleKey) -> Result<(), DbError> {
    counter_sql(
        &key.counted,
        "UPDATE {table} SET failures = 0, locked_until = NULL WHERE ({columns}) = ({values})",
    )
    .execute(conn)
    .await?;
    Ok(())
}

fn interval(window: Duration) -> diesel::data_types::PgInterval {
    diesel::data_types::PgInterval::from_microseconds(
        i64::try_from(window.as_micros()).unwrap_or(i64::MAX),
    )
}

/// `sql` with `{table}`, `{columns}` and `{values}` filled in for the
/// counter's table, its key bound first; `$N`, `$W` and `$T` become the
/// placeholders of the binds that follow, in the order the caller adds them.
fn counter_sql(
    counted: &Counted,
    sql: &str,
) -> diesel::query_builder::BoxedSqlQuery<'static, diesel::pg::Pg, diesel::query_builder::SqlQuery>
{
    let (table, columns, arity) = match counted {
        Counted::Tenant { .. } => ("auth.login_throttles", "tenant_id, key", 2),
        Counted::Address { .. } | Counted::ServiceKey { .. } | Counted::Invitation { .. } => {
            ("auth.anonymous_throttles", "scope, subject, counter", 3)
        }
    };
    let values: Vec<String> = (1..=arity).map(|i| format!("${i}")).collect();
    let mut next = arity;
    let mut sql = sql
        .replace("{table}", table)
        .replace("{columns}", columns)
        .replace("{values}", &values.join(", "));
    for placeholder in ["$N", "$W", "$T"] {
        if sql.contains(placeholder) {
            next += 1;
            sql = sql.replace(placeholder, &format!("${next}"));
        }
    }
    let query = diesel::sql_query(sql).into_boxed();
    match counted {
        Counted::Tenant { tenant, key } => query
            .bind::<SqlUuid, _>(*tenant)
            .bind::<Text, _>(key.clone()),
        Counted::Address { address, counter } => query
            .bind::<Text, _>("address")
            .bind::<Text, _>(address.clone())
            .bind::<Text, _>(*counter),
        Counted::ServiceKey { key, counter } => query
            .bind::<Text, _>("service_key")
            .bind::<Text, _>(key.clone())
            .bind::<Text, _>(*counter),
        Counted::Invitation { id } => query
            .bind::<Text, _>("invitation")
            .bind::<Text, _>(id.to_string())
            .bind::<Text, _>("accept"),
    }
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

    #[test]
    fn placeholders_follow_the_counter_key() {
        let tenant = Counted::Tenant {
            tenant: Uuid::nil(),
            key: "login:x".into(),
        };
        let query = counter_sql(
            &tenant,
            "UPDATE {table} SET locked_until = $N WHERE ({columns}) = ({values})",
        );
        let sql = diesel::debug_query::<diesel::pg::Pg, _>(&query).to_string();
        assert!(sql.starts_with(
            "UPDATE auth.login_throttles SET locked_until = $3 WHERE (tenant_id, key) = ($1, $2)"
        ), "{sql}");
        let address = Counted::Address {
            address: "192.0.2.1".into(),
            counter: "failures",
        };
        let query = counter_sql(&address, "x $N $W ({values})");
        let sql = diesel::debug_query::<diesel::pg::Pg, _>(&query).to_string();
        assert!(sql.starts_with("x $4 $5 ($1, $2, $3)"), "{sql}");
    }
}
