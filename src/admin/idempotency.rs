//! Safe retries of create calls: the first call with a key stores its
//! answer in the same transaction as the change; a repeat with the same key
//! and the same request gets that answer back and creates nothing.

use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use scoped_futures::ScopedBoxFuture;
use serde::Serialize;
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};
use uuid::Uuid;

pub use crate::names::IdempotencyKey;

use super::{AdminError, Item};
use crate::db::schema::auth::{global_idempotency_keys, idempotency_keys};

/// Where a caller's keys are kept: a tenant's administrator's in that
/// tenant's table, a global administrator's in the global one (which only
/// a global administrator's transaction sees).
pub struct Ledger {
    tenant: Option<Uuid>,
    /// The caller as keys record it (`service:<id>`, `user:<id>`, `system`).
    caller: String,
}

impl Ledger {
    pub fn tenant(tenant: Uuid, caller: String) -> Self {
        Self {
            tenant: Some(tenant),
            caller,
        }
    }

    pub fn global(caller: String) -> Self {
        Self {
            tenant: None,
            caller,
        }
    }

    /// Claims `key` of `operation` for this caller with the request's
    /// hash; `false` if it was claimed before. A concurrent claim waits on
    /// the first one's index entry until that transaction ends.
    async fn claim(
        &self,
        conn: &mut AsyncPgConnection,
        operation: &'static str,
        key: &str,
        request_hash: &[u8],
    ) -> QueryResult<bool> {
        let caller = self.caller.as_str();
        let claimed = match self.tenant {
            Some(tenant) => {
                diesel::insert_into(idempotency_keys::table)
                    .values((
                        idempotency_keys::tenant_id.eq(tenant),
                        idempotency_keys::caller.eq(caller),
                        idempotency_keys::operation.eq(operation),
                        idempotency_keys::key.eq(key),
                        idempotency_keys::request_hash.eq(request_hash),
                    ))
                    .on_conflict_do_nothing()
                    .execute(conn)
                    .await?
            }
            None => {
                diesel::insert_into(global_idempotency_keys::table)
                    .values((
                        global_idempotency_keys::caller.eq(caller),
                        global_idempotency_keys::operation.eq(operation),
                        global_idempotency_keys::key.eq(key),
                        global_idempotency_keys::request_hash.eq(request_hash),
                    ))
                    .on_conflict_do_nothing()
                    .execute(conn)
                    .await?
            }
        };
        Ok(claimed == 1)
    }

    /// The hash and the answer recorded for a claimed key.
    async fn recorded(
        &self,
        conn: &mut AsyncPgConnection,
        operation: &'static str,
        key: &str,
    ) -> QueryResult<(Vec<u8>, Option<serde_json::Value>)> {
        let caller = self.caller.as_str();
        match self.tenant {
            Some(tenant) => {
                idempotency_keys::table
                    .find((tenant, caller, operation, key))
                    .select((idempotency_keys::request_hash, idempotency_keys::response))
                    .first(conn)
                    .await
            }
            None => {
                global_idempotency_keys::table
                    .find((caller, operation, key))
                    .select((
                        global_idempotency_keys::request_hash,
                        global_idempotency_keys::response,
                    ))
                    .first(conn)
                    .await
            }
        }
    }

    /// Records the answer of the call that claimed the key.
    async fn answer(
        &self,
        conn: &mut AsyncPgConnection,
        operation: &'static str,
        key: &str,
        response: serde_json::Value,
    ) -> QueryResult<()> {
        let caller = self.caller.as_str();
        match self.tenant {
            Some(tenant) => {
                diesel::update(idempotency_keys::table.find((tenant, caller, operation, key)))
                    .set(idempotency_keys::response.eq(response))
                    .execute(conn)
                    .await?
            }
            None => {
                diesel::update(global_idempotency_keys::table.find((caller, operation, key)))
                    .set(global_idempotency_keys::response.eq(response))
                    .execute(conn)
                    .await?
            }
        };
        Ok(())
    }
}

/// How many times a keyed create runs at most when its transaction loses
/// a race (a deadlock or serialization failure, rolled back whole).
const CONFLICT_ATTEMPTS: usize = 3;

/// Runs `create` again when its transaction conflicted with another, up to
/// [`CONFLICT_ATTEMPTS`] times in all, if it carries an idempotency key:
/// the conflicting transaction was rolled back, and the key makes a repeat
/// answer once whatever happened. Without a key the conflict is the
/// caller's to retry (`ABORTED`).
pub async fn retry_conflicts<T, F, Fut>(
    key: Option<&IdempotencyKey>,
    mut create: F,
) -> Result<T, AdminError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, AdminError>>,
{
    let attempts = if key.is_some() { CONFLICT_ATTEMPTS } else { 1 };
    let mut attempt = 1;
    loop {
        match create().await {
            Err(AdminError::Db(crate::db::DbError::Conflict)) if attempt < attempts => {
                tracing::info!(
                    attempt,
                    "a keyed create conflicted with another transaction; again"
                );
                attempt += 1;
            }
            outcome => return outcome,
        }
    }
}

/// One create call: which operation, its key, and what it asked for.
pub struct Attempt<'a> {
    pub operation: &'static str,
    pub key: Option<&'a IdempotencyKey>,
    /// Everything in the request that shapes the result.
    pub request: String,
}

impl Attempt<'_> {
    /// The one shape of every create, in the caller's write transaction:
    /// the answer of the first call with this key if there was one;
    /// otherwise `create` (the insert and its audit row), whose answer is
    /// stored under the key.
    pub async fn once<'a, 'c, T>(
        &self,
        conn: &'c mut AsyncPgConnection,
        ledger: &Ledger,
        create: impl for<'r> FnOnce(
            &'r mut AsyncPgConnection,
        ) -> ScopedBoxFuture<'a, 'r, Result<T, AdminError>>,
    ) -> Result<T, AdminError>
    where
        T: Serialize + DeserializeOwned,
    {
        if let Some(first) = self.replay(conn, ledger).await? {
            return Ok(first);
        }
        let created = create(conn).await?;
        self.store(conn, ledger, &created).await?;
        Ok(created)
    }

    /// Claims the key, or returns the answer of the call that claimed it.
    /// A key reused with a different request is refused.
    async fn replay<T: DeserializeOwned>(
        &self,
        conn: &mut AsyncPgConnection,
        ledger: &Ledger,
    ) -> Result<Option<T>, AdminError> {
        let Some(key) = self.key else {
            return Ok(None);
        };
        let hash = Sha256::digest(self.request.as_bytes()).to_vec();
        if ledger
            .claim(conn, self.operation, key.as_str(), &hash)
            .await?
        {
            return Ok(None);
        }
        let (stored_hash, response) = ledger.recorded(conn, self.operation, key.as_str()).await?;
        if stored_hash != hash {
            return Err(AdminError::Invalid(
                Item::IdempotencyKey,
                "already used for a different request".into(),
            ));
        }
        let response = response.ok_or_else(|| {
            AdminError::Conflict(Item::IdempotencyKey, "the first call has no answer".into())
        })?;
        serde_json::from_value(response)
            .map(Some)
            .map_err(|e| AdminError::Conflict(Item::IdempotencyKey, format!("stored answer: {e}")))
    }

    /// Stores the answer of the call that claimed the key.
    async fn store<T: Serialize>(
        &self,
        conn: &mut AsyncPgConnection,
        ledger: &Ledger,
        answer: &T,
    ) -> Result<(), AdminError> {
        let Some(key) = self.key else {
            return Ok(());
        };
        let response = serde_json::to_value(answer)
            .map_err(|e| AdminError::Conflict(Item::IdempotencyKey, format!("answer: {e}")))?;
        ledger
            .answer(conn, self.operation, key.as_str(), response)
            .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_printable_ascii_and_bounded() {
        assert_eq!(IdempotencyKey::parse(""), Ok(None));
        assert!(IdempotencyKey::parse("9b2f3c1e-retry").unwrap().is_some());
        for bad in ["a b", "é", &"k".repeat(201)] {
            assert!(IdempotencyKey::parse(bad).is_err(), "{bad}");
        }
    }

    /// Runs a create that conflicts `conflicts` times, then succeeds;
    /// how many times it ran and what it answered.
    async fn conflicting(
        key: Option<&IdempotencyKey>,
        conflicts: usize,
    ) -> (usize, Result<u8, AdminError>) {
        let mut calls = 0;
        let outcome = retry_conflicts(key, || {
            calls += 1;
            let conflicted = calls <= conflicts;
            async move {
                if conflicted {
                    Err(AdminError::Db(crate::db::DbError::Conflict))
                } else {
                    Ok(7)
                }
            }
        })
        .await;
        (calls, outcome)
    }

    fn key() -> IdempotencyKey {
        IdempotencyKey::parse("k-1").unwrap().unwrap()
    }

    #[tokio::test]
    async fn a_keyed_create_that_conflicted_runs_again() {
        let (calls, outcome) = conflicting(Some(&key()), 2).await;
        assert_eq!((calls, outcome.unwrap()), (3, 7));
    }

    #[tokio::test]
    async fn a_keyed_create_gives_up_after_three_conflicts() {
        let (calls, outcome) = conflicting(Some(&key()), 5).await;
        assert_eq!(calls, 3);
        assert!(matches!(
            outcome,
            Err(AdminError::Db(crate::db::DbError::Conflict))
        ));
    }

    #[tokio::test]
    async fn a_create_without_a_key_does_not_run_again() {
        let (calls, outcome) = conflicting(None, 1).await;
        assert_eq!(calls, 1);
        assert!(matches!(
            outcome,
            Err(AdminError::Db(crate::db::DbError::Conflict))
        ));
    }
}
