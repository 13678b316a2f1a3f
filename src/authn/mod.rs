//! User authentication: password, one-time-code and federated (OpenID
//! Connect) login, rotating refresh
//! sessions, password reset, brute-force protection.

mod fair_queue;
pub mod federation;
mod login;
pub mod otp;
pub mod password;
mod reset;
pub mod sessions;
mod sql_assertion;
pub mod throttle;
pub mod users;

use std::sync::Arc;
use std::time::Duration;

pub use crate::names::{Email, Login, LoginError, Phone};
pub use federation::{Federation, IdTokenError};
pub use otp::{Channel, DevLogDelivery, OtpDelivery, OtpIssued, OutboxDelivery, Purpose};
pub use password::{HashCost, MAX_PASSWORD_BYTES, MIN_PASSWORD_CHARS, PasswordError, Passwords};
pub use sessions::{SessionScope, SessionTokens};
pub use sql_assertion::{MAX_SQL_ASSERTION_LIFETIME, SqlAssertion};
pub use throttle::ThrottlePolicy;

use crate::db::{Db, DbError, RlsContext};
use crate::tokens::{TokenError, Tokens};
use uuid::Uuid;

#[derive(Debug, thiserror::Error)]
pub enum AuthnError {
    /// The one answer to every failed login, whatever failed.
    #[error("invalid credentials")]
    InvalidCredentials,
    #[error("id token refused: {0}")]
    IdToken(#[from] IdTokenError),
    /// A genuine federated identity that opens no session here.
    #[error("{0}")]
    Unlinked(federation::Unlinked),
    #[error("invalid refresh token")]
    InvalidRefreshToken,
    #[error("too many failed attempts; retry in {} s", retry_after.as_secs().max(1))]
    Locked { retry_after: Duration },
    #[error("too many codes requested for this destination; retry in {} s", retry_after.as_secs().max(1))]
    TooManyCodes { retry_after: Duration },
    #[error("no such session")]
    UnknownSession,
    /// The caller is known but may not do this.
    #[error("{0}")]
    Forbidden(&'static str),
    #[error("no user logs in as {0}")]
    UnknownLogin(String),
    #[error("{0} is already the login of another user")]
    LoginTaken(String),
    #[error(transparent)]
    Password(#[from] PasswordError),
    #[error("cannot sign a token: {0}")]
    Token(#[from] TokenError),
    #[error(transparent)]
    Db(#[from] DbError),
}

impl From<diesel::result::Error> for AuthnError {
    fn from(error: diesel::result::Error) -> Self {
        Self::Db(DbError::from(error))
    }
}

/// Whether the tenant exists (a login or code for one that does not is
/// answered like any other failure, but has nothing to be counted in).
async fn tenant_exists(
    conn: &mut diesel_async::AsyncPgConnection,
    tenant: uuid::Uuid,
) -> Result<bool, diesel::result::Error> {
    use diesel::prelude::*;
    use diesel_async::RunQueryDsl;

    use crate::db::schema::auth::tenants;
    Ok(tenants::table
        .find(tenant)
        .select(tenants::tenant_id)
        .first::<uuid::Uuid>(conn)
        .await
        .optional()?
        .is_some())
}

/// Who is on the other end, as far as we can tell.
#[derive(Clone, Debug, Default)]
pub struct ClientInfo {
    pub user_agent: Option<String>,
    pub address: Option<String>,
}

impl ClientInfo {
    /// The context of an unauthenticated call in `tenant`: it may count
    /// against this client's address throttles, and no other's.
    fn context(&self, tenant: Uuid, request_id: Option<&str>) -> RlsContext {
        RlsContext::tenant(tenant)
            .with_client_address(self.address.as_deref())
            .with_request_id(request_id)
    }
}

#[derive(Clone, Debug)]
pub struct AuthnSettings {
    pub access_lifetime: Duration,
    pub refresh_lifetime: Duration,
    pub otp_lifetime: Duration,
    pub otp_attempt_max: i32,
    /// Codes per destination per window.
    pub otp_requests_per_window: u32,
    pub otp_request_window: Duration,
    pub throttle: ThrottlePolicy,
}

impl Default for AuthnSettings {
    fn default() -> Self {
        Self {
            access_lifetime: Duration::from_secs(15 * 60),
            refresh_lifetime: Duration::from_secs(30 * 24 * 3600),
            otp_lifetime: Duration::from_secs(10 * 60),
            otp_attempt_max: 5,
            otp_requests_per_window: 5,
            otp_request_window: Duration::from_secs(15 * 60),
            throttle: ThrottlePolicy::default(),
        }
    }
}

/// Everything authentication needs: its share of [`crate::app::App`].
pub struct Authenticator {
    pub db: Db,
    pub tokens: Arc<Tokens>,
    pub passwords: Arc<Passwords>,
    pub delivery: Arc<dyn OtpDelivery>,
    pub federation: Arc<Federation>,
    pub settings: AuthnSettings,
}
