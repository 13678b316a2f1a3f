//! `Authenticate`: by password or by one-time code. Every way of failing
//! answers the same and costs the same hashing work.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use scoped_futures::ScopedFutureExt;
use secrecy::SecretString;
use serde_json::json;
use uuid::Uuid;

use super::otp::{self, CodeUse, Spend};
use super::sessions::{self, SessionTokens};
use super::throttle::{self, Counted, Reservation, ThrottleKey};
use super::users::{PASSWORD_PROVIDER, login_is};
use super::{Authenticator, AuthnError, ClientInfo, tenant_exists};
use crate::audit::{self, Actor, AuditEvent, Entity};
use crate::db::schema::auth::{tenants as t, user_identities as ui, users as u};
use crate::db::{DbError, RlsContext};
use crate::names::Login;
use crate::names::TenantId;

/// What the first transaction of a password login finds.
struct Candidate {
    tenant_exists: bool,
    identity: Option<IdentityRow>,
    /// The reservation locked a counter: audited if the attempt fails.
    locked_here: bool,
}

#[derive(Queryable)]
struct IdentityRow {
    identity_id: Uuid,
    user_id: Uuid,
    password_hash: Option<String>,
    user_status: String,
    tenant_status: String,
}

fn failure_event<'a>(
    tenant: Uuid,
    action: &'a str,
    login: &Login,
    request_id: Option<&'a str>,
    reason: &str,
) -> AuditEvent<'a> {
    AuditEvent {
        tenant_id: Some(tenant),
        actor: Actor::Anonymous,
        action,
        entity_kind: "login",
        entity: Some(Entity::Ref(format!("{}:{}", login.kind(), login.value()))),
        request_id,
        payload: json!({ "reason": reason }),
    }
}

/// How a reserving transaction ends without going on: a locked counter
/// (carried out as the transaction's error, so it rolls back and counts
/// nothing), or a failure.
enum Refused {
    /// `audit`: the tenant exists, so the refusal has a trail to go in.
    Locked {
        retry_after: std::time::Duration,
        audit: bool,
    },
    Failed(AuthnError),
}

impl From<DbError> for Refused {
    fn from(error: DbError) -> Self {
        Self::Failed(error.into())
    }
}

impl From<diesel::result::Error> for Refused {
    fn from(error: diesel::result::Error) -> Self {
        Self::Failed(error.into())
    }
}

impl Authenticator {
    pub async fn authenticate_password(
        &self,
        tenant: TenantId,
        login: &Login,
        password: &SecretString,
        client: &ClientInfo,
        request_id: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<SessionTokens, AuthnError> {
        let attempt = Attempt {
            tenant: tenant.get(),
            login,
            request_id,
        };
        let ctx = client.context(attempt.tenant, request_id);
        let (candidate, keys) = self
            .reserve_password_attempt(&ctx, &attempt, client, now)
            .await?;
        // The same hashing work whether or not there is a hash to check.
        let stored = candidate
            .identity
            .as_ref()
            .and_then(|i| i.password_hash.as_deref());
        let verified = self
            .passwords
            .verify_for(client.address.as_deref(), password, stored)
            .await?;
        let Candidate {
            tenant_exists,
            identity,
            locked_here,
        } = candidate;
        let identity = identity.filter(|i| {
            verified.matches && i.user_status == "active" && i.tenant_status == "active"
        });
        let Some(identity) = identity else {
            if tenant_exists {
                self.db
                    .write(&ctx, |conn| {
                        async move {
                            record_failed_login(conn, &attempt, locked_here, "invalid_credentials")
                                .await
                        }
                        .scope_boxed()
                    })
                    .await?;
            }
            return Err(AuthnError::InvalidCredentials);
        };
        let rehash = if verified.needs_rehash {
            let hash = self.passwords.hash_for(client.address.as_deref(), password);
            Some(hash.await?)
        } else {
            None
        };
        let outcome = self
            .password_login_succeeded(&ctx, &attempt, &identity, rehash, &keys, client, now)
            .await;
        if let Err(AuthnError::Db(error)) = &outcome {
            // The password was right and only the database failed; the
            // attempt was counted when it was reserved. Unless it is given
            // back, an outage locks out the users who kept logging in.
            tracing::warn!(%error, "a login with the right password failed; giving its attempt back");
            self.give_back_later(ctx, keys);
        }
        outcome
    }

    /// Gives a reserved attempt back in the background, as soon as the
    /// database answers again (a few tries over about 25 s).
    fn give_back_later(&self, ctx: RlsContext, keys: Vec<ThrottleKey>) {
        let db = self.db.clone();
        tokio::spawn(async move {
            let mut pause = std::time::Duration::from_millis(100);
            let keys = &keys;
            for _ in 0..8 {
                let given = db
                    .write(&ctx, |conn| {
                        async move { throttle::release(conn, keys).await }.scope_boxed()
                    })
                    .await;
                if given.is_ok() {
                    return;
                }
                tokio::time::sleep(pause).await;
                pause *= 2;
            }
            tracing::warn!("a counted login attempt could not be given back");
        });
    }

    /// Counts the attempt before the hash is checked, in a transaction of
    /// its own: concurrent guesses queue on the counters and at most the
    /// threshold of them is ever verified, and a guess whose client gives
    /// up mid-hash has been counted all the same. Finds whom the login
    /// names, if anyone.
    async fn reserve_password_attempt(
        &self,
        ctx: &RlsContext,
        attempt: &Attempt<'_>,
        client: &ClientInfo,
        now: DateTime<Utc>,
    ) -> Result<(Candidate, Vec<ThrottleKey>), AuthnError> {
        let policy = &self.settings.throttle;
        let (tenant, login) = (attempt.tenant, attempt.login);
        let reserved = self
            .db
            .write(ctx, |conn| {
                async move {
                    let tenant_exists = tenant_exists(conn, tenant).await?;
                    // A tenant that does not exist has no login counter;
                    // the client address counts the attempt.
                    let keys = policy.login_keys(
                        tenant_exists
                            .then(|| (tenant, format!("{}:{}", login.kind(), login.value()))),
                        client.address.as_deref(),
                    );
                    let locked_here = match throttle::reserve(conn, policy, &keys, now).await? {
                        Reservation::Locked(retry_after) => {
                            return Err(Refused::Locked {
                                retry_after,
                                audit: tenant_exists,
                            });
                        }
                        Reservation::Reserved { locked } => locked,
                    };
                    // The user the login names, and their password identity.
                    let identity: Option<IdentityRow> = u::table
                        .inner_join(t::table.on(t::tenant_id.eq(u::tenant_id)))
                        .inner_join(ui::table.on(ui::user_id.eq(u::user_id)))
                        .filter(ui::ident_provider_code.eq(PASSWORD_PROVIDER))
                        .filter(login_is(login))
                        .select((
                            ui::ident_id,
                            u::user_id,
                            ui::password_hash_text,
                            u::user_state_code,
                            t::tenant_state_code,
                        ))
                        .first(conn)
                        .await
                        .optional()?;
                    let candidate = Candidate {
                        tenant_exists,
                        identity,
                        locked_here,
                    };
                    Ok((candidate, keys))
                }
                .scope_boxed()
            })
            .await;
        match reserved {
            Ok(found) => Ok(found),
            Err(Refused::Failed(error)) => Err(error),
            Err(Refused::Locked { retry_after, audit }) => {
                if audit {
                    self.db
                        .write(ctx, |conn| {
                            async move {
                                let event = failure_event(
                                    tenant,
                                    "auth.login_locked",
                                    login,
                                    attempt.request_id,
                                    "locked",
                                );
                                audit::record(conn, event).await?;
                                Ok::<_, AuthnError>(())
                            }
                            .scope_boxed()
                        })
                        .await?;
                }
                Err(AuthnError::Locked { retry_after })
            }
        }
    }

    /// The login's counter starts again and the address gives this attempt
    /// back; the hash is upgraded when its cost is outdated; a session
    /// opens.
    #[allow(clippy::too_many_arguments)]
    async fn password_login_succeeded(
        &self,
        ctx: &RlsContext,
        attempt: &Attempt<'_>,
        identity: &IdentityRow,
        rehash: Option<String>,
        keys: &[ThrottleKey],
        client: &ClientInfo,
        now: DateTime<Utc>,
    ) -> Result<SessionTokens, AuthnError> {
        let (settings, tokens, rehash) = (&self.settings, &self.tokens, &rehash);
        self.db
            .write(ctx, |conn| {
                async move {
                    for key in keys {
                        match key.counted {
                            Counted::Tenant { .. } => throttle::reset(conn, key).await?,
                            _ => throttle::release(conn, std::slice::from_ref(key)).await?,
                        }
                    }
                    if let Some(hash) = rehash {
                        diesel::update(ui::table.find(identity.identity_id))
                            .set((ui::password_hash_text.eq(hash), ui::updated_utc.eq(now)))
                            .execute(conn)
                            .await?;
                    }
                    login_succeeded(
                        conn,
                        tokens,
                        settings,
                        attempt.tenant,
                        identity.user_id,
                        client,
                        "password",
                        attempt.request_id,
                        now,
                    )
                    .await
                }
                .scope_boxed()
            })
            .await
    }

    pub async fn authenticate_otp(
        &self,
        tenant: TenantId,
        destination: &Login,
        code: &SecretString,
        client: &ClientInfo,
        request_id: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<SessionTokens, AuthnError> {
        let tenant = tenant.get();
        let ctx = client.context(tenant, request_id);
        let (settings, tokens) = (&self.settings, &self.tokens);
        let policy = &settings.throttle;
        let outcome = self
            .db
            .write(&ctx, |conn| {
                async move {
                    let tenant_exists = tenant_exists(conn, tenant).await?;
                    // The address, and the destination across all its codes.
                    let mut keys: Vec<ThrottleKey> = policy
                        .address_failures(client.address.as_deref())
                        .into_iter()
                        .collect();
                    if tenant_exists {
                        keys.push(policy.code_failures(tenant, destination.value()));
                    }
                    let locked_here = match throttle::reserve(conn, policy, &keys, now).await? {
                        Reservation::Locked(retry_after) => {
                            return Err(Refused::Locked {
                                retry_after,
                                audit: false,
                            });
                        }
                        Reservation::Reserved { locked } => locked,
                    };
                    let consumed = otp::consume(
                        conn,
                        tenant,
                        destination,
                        code,
                        CodeUse::Login,
                        Spend::Consume,
                        now,
                    )
                    .await
                    .map_err(Refused::Failed)?;
                    let user = match consumed {
                        Some(user)
                            if sessions::user_may_log_in(conn, tenant, user)
                                .await
                                .map_err(Refused::Failed)? =>
                        {
                            user
                        }
                        _ => {
                            if tenant_exists {
                                let attempt = Attempt {
                                    tenant,
                                    login: destination,
                                    request_id,
                                };
                                record_failed_login(conn, &attempt, locked_here, "invalid_code")
                                    .await
                                    .map_err(Refused::Failed)?;
                            }
                            return Ok(Err(AuthnError::InvalidCredentials));
                        }
                    };
                    throttle::release(conn, &keys).await?;
                    Ok(Ok(login_succeeded(
                        conn, tokens, settings, tenant, user, client, "otp", request_id, now,
                    )
                    .await
                    .map_err(Refused::Failed)?))
                }
                .scope_boxed()
            })
            .await;
        match outcome {
            Ok(answer) => answer,
            Err(Refused::Failed(error)) => Err(error),
            Err(Refused::Locked { retry_after, .. }) => Err(AuthnError::Locked { retry_after }),
        }
    }
}

/// One failed login attempt, for the books.
struct Attempt<'a> {
    tenant: Uuid,
    login: &'a Login,
    request_id: Option<&'a str>,
}

/// Audits a failure (already counted when it was reserved), and the lock
/// its reservation caused, if any.
async fn record_failed_login(
    conn: &mut AsyncPgConnection,
    attempt: &Attempt<'_>,
    locked: bool,
    reason: &str,
) -> Result<(), AuthnError> {
    // A code's lock is the destination's daily cap; a password's, the
    // login's or the address's doubling lock.
    let lock_action = if reason == "invalid_code" {
        "auth.otp_locked"
    } else {
        "auth.login_locked"
    };
    let event = |action| {
        failure_event(
            attempt.tenant,
            action,
            attempt.login,
            attempt.request_id,
            reason,
        )
    };
    audit::record(conn, event("auth.login_failed")).await?;
    if locked {
        metrics::counter!("portcullis_login_lockouts_total").increment(1);
        audit::record(conn, event(lock_action)).await?;
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
pub(super) async fn login_succeeded(
    conn: &mut AsyncPgConnection,
    tokens: &crate::tokens::Tokens,
    settings: &super::AuthnSettings,
    tenant: Uuid,
    user: Uuid,
    client: &ClientInfo,
    method: &str,
    request_id: Option<&str>,
    now: DateTime<Utc>,
) -> Result<SessionTokens, AuthnError> {
    let session = sessions::open(conn, tokens, settings, tenant, user, client, now).await?;
    audit::record(
        conn,
        AuditEvent {
            tenant_id: Some(tenant),
            actor: Actor::User(user),
            action: "auth.login_succeeded",
            entity_kind: "refresh_session",
            entity: Some(Entity::Id(session.session_id)),
            request_id,
            payload: json!({ "method": method, "user_agent": &client.user_agent, "client_addr": &client.address }),
        },
    )
    .await?;
    Ok(session)
}
