//! Assertions for the SQL decision API's signed mode. A service whose
//! database roles are in signed mode (`db provision-service
//! --signed-context on`) names its user to `auth.set_user_context` with an
//! assertion Portcullis signed, obtained by presenting the user's access
//! token: a session running arbitrary SQL through the service's role can
//! act as no user whose token it does not hold.
//!
//! `pcsa1.<key id>.<tenant id>.<user id>.<expiry, Unix seconds>.<mac>`: the
//! MAC is HMAC-SHA-256 (hex) over everything before it, under a key in
//! `auth.sql_assertion_keys` that only Portcullis and the decision
//! functions read. It never outlives the access token, nor five minutes.

use chrono::{DateTime, Duration, TimeZone, Utc};
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use hmac::{Hmac, Mac};
use scoped_futures::ScopedFutureExt;
use secrecy::SecretString;
use sha2::Sha256;
use uuid::Uuid;

use super::{Authenticator, AuthnError};
use crate::db::RlsContext;
use crate::db::schema::auth::sql_assertion_keys as k;
use crate::tokens::{Principal, TokenError};

/// The longest an assertion lives.
pub const MAX_SQL_ASSERTION_LIFETIME: Duration = Duration::minutes(5);

/// An assertion for one user, and when it stops counting.
pub struct SqlAssertion {
    pub assertion: SecretString,
    pub expires_at: DateTime<Utc>,
    pub tenant_id: Uuid,
    pub user_id: Uuid,
}

impl std::fmt::Debug for SqlAssertion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqlAssertion")
            .field("expires_at", &self.expires_at)
            .field("tenant_id", &self.tenant_id)
            .field("user_id", &self.user_id)
            .finish_non_exhaustive()
    }
}

impl Authenticator {
    /// An assertion for the user `access_token` names: the token must be a
    /// valid, unrevoked user token.
    pub async fn issue_sql_assertion(
        &self,
        access_token: &str,
        request_id: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<SqlAssertion, AuthnError> {
        let verified = match self.tokens.verify(access_token, now) {
            Ok(verified) => verified,
            Err(TokenError::RevocationUnknown) => {
                return Err(AuthnError::Db(crate::db::DbError::Unavailable(
                    "the revocation list is not current".into(),
                )));
            }
            Err(_) => return Err(AuthnError::InvalidCredentials),
        };
        let Principal::User(user) = verified.principal else {
            return Err(AuthnError::InvalidCredentials);
        };
        let token_expiry = Utc
            .timestamp_opt(verified.claims.exp, 0)
            .single()
            .ok_or(AuthnError::InvalidCredentials)?;
        let expires_at = token_expiry.min(now + MAX_SQL_ASSERTION_LIFETIME);
        let ctx = RlsContext::purpose("sql_assertion").with_request_id(request_id);
        let (key_id, secret): (String, Vec<u8>) = self
            .db
            .read(&ctx, |conn| {
                async move {
                    k::table
                        .filter(k::retired_utc.is_null().or(k::retired_utc.gt(now)))
                        .order(k::created_utc.desc())
                        .select((k::key_id, k::secret_key))
                        .first(conn)
                        .await
                        .map_err(AuthnError::from)
                }
                .scope_boxed()
            })
            .await?;
        let (tenant_id, user_id) = (user.tenant_id, user.user_id);
        let signed = format!(
            "pcsa1.{key_id}.{tenant_id}.{user_id}.{}",
            expires_at.timestamp()
        );
        let mut mac = Hmac::<Sha256>::new_from_slice(&secret)
            .map_err(|_| AuthnError::Token(TokenError::NoSigningKey))?;
        mac.update(signed.as_bytes());
        let mac = format!("{:x}", mac.finalize().into_bytes());
        Ok(SqlAssertion {
            assertion: SecretString::from(format!("{signed}.{mac}")),
            expires_at,
            tenant_id,
            user_id,
        })
    }
}
