//! `Authenticate`: by password or by one-time code. Every way of failing
//! answers the same and costs the same hashing work.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use scoped_futures::ScopedFutureExt;
use secrecy::SecretString;
use serde_json::json;
use uuid::Uuid;

use super::identity::Login;
use super::otp::{self, CodeUse};
use super::sessions::{self, SessionTokens};
use super::throttle::{self, ThrottleKey};
use super::{Authenticator, AuthnError, ClientInfo};
use crate::audit::{self, Actor, AuditEvent};
use crate::db::RlsContext;
use crate::db::schema::auth::{tenants as t, user_identities as ui, users as u};

/// What the first transaction of a password login finds.
struct Candidate {
    tenant_exists: bool,
    identity: Option<IdentityRow>,
    locked_for: Option<std::time::Duration>,
}

#[derive(Queryable)]
struct IdentityRow {
    identity_id: Uuid,
    user_id: Uuid,
    password_hash: Option<String>,
    user_status: String,
    tenant_status: String,
}

fn login_context(tenant: Uuid, request_id: Option<&str>) -> RlsContext {
    let ctx = RlsContext::tenant(tenant);
    match request_id {
        Some(id) => ctx.with_request_id(id),
        None => ctx,
    }
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
        entity_id: Some(format!("{}:{}", login.kind(), login.value())),
        request_id,
        payload: json!({ "reason": reason }),
    }
}

impl Authenticator {
    pub async fn authenticate_password(
        &self,
        tenant: Uuid,
        login: &Login,
        password: &SecretString,
        client: &ClientInfo,
        request_id: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<SessionTokens, AuthnError> {
        let keys = self.settings.throttle.keys(
            Some(&format!("{}:{}", login.kind(), login.value())),
            client.address.as_deref(),
        );
        let ctx = login_context(tenant, request_id);
        let keys_ref = &keys;
        let candidate = self
            .db
            .read(&ctx, |conn| {
                async move {
                    let tenant_exists = t::table
                        .find(tenant)
                        .select(t::id)
                        .first::<Uuid>(conn)
                        .await
                        .optional()?
                        .is_some();
                    let identity: Option<IdentityRow> = ui::table
                        .inner_join(u::table.on(u::id.eq(ui::user_id)))
                        .inner_join(t::table.on(t::id.eq(u::tenant_id)))
                        .filter(ui::kind.eq(login.kind()))
                        .filter(ui::login.eq(login.value()))
                        .select((ui::id, u::id, ui::password_hash, u::status, t::status))
                        .first(conn)
                        .await
                        .optional()?;
                    let locked_for = throttle::locked_for(conn, tenant, keys_ref, now).await?;
                    Ok::<_, AuthnError>(Candidate {
                        tenant_exists,
                        identity,
                        locked_for,
                    })
                }
                .scope_boxed()
            })
            .await?;

        if let Some(retry_after) = candidate.locked_for {
            if candidate.tenant_exists {
                self.db
                    .write(&ctx, |conn| {
                        async move {
                            audit::record(
                                conn,
                                failure_event(
                                    tenant,
                                    "auth.login_locked",
                                    login,
                                    request_id,
                                    "locked",
                                ),
                            )
                            .await?;
                            Ok::<_, AuthnError>(())
                        }
                        .scope_boxed()
                    })
                    .await?;
            }
            return Err(AuthnError::Locked { retry_after });
        }

        // The same hashing work whether or not there is a hash to check.
        let stored = candidate
            .identity
            .as_ref()
            .and_then(|i| i.password_hash.as_deref());
        let verified = self.passwords.verify(password, stored).await?;
        let identity = candidate.identity.filter(|i| {
            verified.matches && i.user_status == "active" && i.tenant_status == "active"
        });
        let rehash = match &identity {
            Some(_) if verified.needs_rehash => Some(self.passwords.hash(password).await?),
            _ => None,
        };

        let (settings, tokens) = (&self.settings, &self.tokens);
        let rehash = &rehash;
        self.db
            .write(&ctx, |conn| {
                async move {
                    let Some(identity) = identity else {
                        if !candidate.tenant_exists {
                            return Ok::<_, AuthnError>(Err(AuthnError::InvalidCredentials));
                        }
                        let attempt = Attempt {
                            tenant,
                            login,
                            keys: keys_ref,
                            request_id,
                            now,
                        };
                        record_failed_login(
                            conn,
                            &settings.throttle,
                            &attempt,
                            "invalid_credentials",
                        )
                        .await?;
                        return Ok(Err(AuthnError::InvalidCredentials));
                    };
                    if let Some(login_key) = <[ThrottleKey]>::first(keys_ref) {
                        throttle::reset(conn, tenant, login_key).await?;
                    }
                    if let Some(hash) = rehash {
                        diesel::update(ui::table.find(identity.identity_id))
                            .set((ui::password_hash.eq(hash), ui::updated_at.eq(now)))
                            .execute(conn)
                            .await?;
                    }
                    Ok(Ok(login_succeeded(
                        conn,
                        tokens,
                        settings,
                        tenant,
                        identity.user_id,
                        client,
                        "password",
                        request_id,
                        now,
                    )
                    .await?))
                }
                .scope_boxed()
            })
            .await?
    }

    pub async fn authenticate_otp(
        &self,
        tenant: Uuid,
        destination: &Login,
        code: &SecretString,
        client: &ClientInfo,
        request_id: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<SessionTokens, AuthnError> {
        let keys: Vec<ThrottleKey> = self.settings.throttle.keys(None, client.address.as_deref());
        let ctx = login_context(tenant, request_id);
        let (settings, tokens, keys) = (&self.settings, &self.tokens, &keys);
        self.db
            .write(&ctx, |conn| {
                async move {
                    if let Some(retry_after) = throttle::locked_for(conn, tenant, keys, now).await?
                    {
                        return Ok::<_, AuthnError>(Err(AuthnError::Locked { retry_after }));
                    }
                    let consumed =
                        otp::consume(conn, tenant, destination, code, CodeUse::Login, now).await?;
                    let user = match consumed {
                        Some(user) if sessions::user_may_log_in(conn, tenant, user).await? => user,
                        _ => {
                            if t::table
                                .find(tenant)
                                .select(t::id)
                                .first::<Uuid>(conn)
                                .await
                                .optional()?
                                .is_some()
                            {
                                let attempt = Attempt {
                                    tenant,
                                    login: destination,
                                    keys,
                                    request_id,
                                    now,
                                };
                                record_failed_login(
                                    conn,
                                    &settings.throttle,
                                    &attempt,
                                    "invalid_code",
                                )
                                .await?;
                            }
                            return Ok(Err(AuthnError::InvalidCredentials));
                        }
                    };
                    Ok(Ok(login_succeeded(
                        conn, tokens, settings, tenant, user, client, "otp", request_id, now,
                    )
                    .await?))
                }
                .scope_boxed()
            })
            .await?
    }
}

/// One login attempt, for the books.
struct Attempt<'a> {
    tenant: Uuid,
    login: &'a Login,
    keys: &'a [ThrottleKey],
    request_id: Option<&'a str>,
    now: DateTime<Utc>,
}

/// Counts a failure against the attempt's throttle keys and audits it, and
/// the lock it caused, if any.
async fn record_failed_login(
    conn: &mut AsyncPgConnection,
    policy: &super::ThrottlePolicy,
    attempt: &Attempt<'_>,
    reason: &str,
) -> Result<(), AuthnError> {
    let locked =
        throttle::record_failure(conn, policy, attempt.tenant, attempt.keys, attempt.now).await?;
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
    if locked.is_some() {
        metrics::counter!("portcullis_login_lockouts_total").increment(1);
        audit::record(conn, event("auth.login_locked")).await?;
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
async fn login_succeeded(
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
            entity_id: Some(session.session_id.to_string()),
            request_id,
            payload: json!({ "method": method, "user_agent": &client.user_agent, "client_addr": &client.address }),
        },
    )
    .await?;
    Ok(session)
}
