//! Safe retries of create calls: the first call with a key stores its
//! answer in the same transaction as the change; a repeat with the same key
//! and the same request gets that answer back and creates nothing.

use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use serde::Serialize;
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};

pub use crate::names::IdempotencyKey;

use super::{AdminError, Administrator};
use crate::admin::Subject;
use crate::db::schema::auth::idempotency_keys;

/// Where a caller's keys are kept, and as whom: a tenant's administrator
/// in that tenant's table, a global administrator in the global one.
pub trait Ledger: Sync {
    /// Claims `key` of `operation` for this caller with the request's
    /// hash; `false` if it was claimed before. A concurrent claim waits on
    /// the first one's index entry until that transaction ends.
    fn claim(
        &self,
        conn: &mut AsyncPgConnection,
        operation: &'static str,
        key: &str,
        request_hash: &[u8],
    ) -> impl Future<Output = QueryResult<bool>> + Send;

    /// The hash and the answer recorded for a claimed key.
    fn recorded(
        &self,
        conn: &mut AsyncPgConnection,
        operation: &'static str,
        key: &str,
    ) -> impl Future<Output = QueryResult<(Vec<u8>, Option<serde_json::Value>)>> + Send;

    /// Records the answer of the call that claimed the key.
    fn answer(
        &self,
        conn: &mut AsyncPgConnection,
        operation: &'static str,
        key: &str,
        response: serde_json::Value,
    ) -> impl Future<Output = QueryResult<()>> + Send;
}

impl Ledger for Administrator {
    async fn claim(
        &self,
        conn: &mut AsyncPgConnection,
        operation: &'static str,
        key: &str,
        request_hash: &[u8],
    ) -> QueryResult<bool> {
        let claimed = diesel::insert_into(idempotency_keys::table)
            .values((
                idempotency_keys::tenant_id.eq(self.tenant_id),
                idempotency_keys::caller.eq(self.caller_ref()),
                idempotency_keys::operation.eq(operation),
                idempotency_keys::key.eq(key),
                idempotency_keys::request_hash.eq(request_hash),
            ))
            .on_conflict_do_nothing()
            .execute(conn)
            .await?;
        Ok(claimed == 1)
    }

    async fn recorded(
        &self,
        conn: &mut AsyncPgConnection,
        operation: &'static str,
        key: &str,
    ) -> QueryResult<(Vec<u8>, Option<serde_json::Value>)> {
        idempotency_keys::table
            .find((self.tenant_id, self.caller_ref(), operation, key))
            .select((idempotency_keys::request_hash, idempotency_keys::response))
            .first(conn)
            .await
    }

    async fn answer(
        &self,
        conn: &mut AsyncPgConnection,
        operation: &'static str,
        key: &str,
        response: serde_json::Value,
    ) -> QueryResult<()> {
        diesel::update(idempotency_keys::table.find((
            self.tenant_id,
            self.caller_ref(),
            operation,
            key,
        )))
        .set(idempotency_keys::response.eq(response))
        .execute(conn)
        .await?;
        Ok(())
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
    /// Claims the key, or returns the answer of the call that claimed it.
    /// A key reused with a different request is refused.
    pub async fn replay<T: DeserializeOwned>(
        &self,
        conn: &mut AsyncPgConnection,
        ledger: &impl Ledger,
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
                Subject::IdempotencyKey,
                "already used for a different request".into(),
            ));
        }
        let response = response.ok_or_else(|| {
            AdminError::Conflict(
                Subject::IdempotencyKey,
                "the first call has no answer".into(),
            )
        })?;
        serde_json::from_value(response).map(Some).map_err(|e| {
            AdminError::Conflict(Subject::IdempotencyKey, format!("stored answer: {e}"))
        })
    }

    /// Stores the answer of the call that claimed the key.
    pub async fn store<T: Serialize>(
        &self,
        conn: &mut AsyncPgConnection,
        ledger: &impl Ledger,
        answer: &T,
    ) -> Result<(), AdminError> {
        let Some(key) = self.key else {
            return Ok(());
        };
        let response = serde_json::to_value(answer)
            .map_err(|e| AdminError::Conflict(Subject::IdempotencyKey, format!("answer: {e}")))?;
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
}
