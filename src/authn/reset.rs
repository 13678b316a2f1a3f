//! `ResetPassword`: a reset code and a new password. The code is checked
//! (a wrong one spends an attempt and is counted) before anything is
//! hashed; the change revokes every session of the user.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use scoped_futures::ScopedFutureExt;
use secrecy::SecretString;
use serde_json::json;

use super::otp::{CodeUse, Spend, consume};
use super::sessions;
use super::throttle::{self, Reservation, ThrottleKey};
use super::users::PASSWORD_PROVIDER;
use super::{Authenticator, AuthnError, ClientInfo, tenant_exists};
use crate::audit::{self, Actor, AuditEvent, Entity};
use crate::db::schema::auth::user_identities as ui;
use crate::names::Login;
use crate::names::NewPassword;
use crate::names::TenantId;

impl Authenticator {
    /// `ResetPassword`: consumes a `reset_password` code, sets the new
    /// password on the user's identities and revokes every session. The
    /// code is checked (and the attempt counted) before any hashing, so a
    /// wrong code costs no argon2 work.
    #[allow(clippy::too_many_arguments)]
    pub async fn reset_password(
        &self,
        tenant: TenantId,
        destination: &Login,
        code: &SecretString,
        new_password: &NewPassword,
        client: &ClientInfo,
        request_id: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<(), AuthnError> {
        let tenant = tenant.get();
        let ctx = client.context(tenant, request_id);
        let settings = &self.settings;
        let policy = &settings.throttle;
        // Counted per address (every reset), and per address and
        // destination as failures until the code proves right.
        let requests: Vec<ThrottleKey> = policy
            .address_requests(client.address.as_deref(), "password_resets")
            .into_iter()
            .collect();
        let mut failures: Vec<ThrottleKey> = policy
            .address_failures(client.address.as_deref())
            .into_iter()
            .collect();
        failures.push(policy.code_failures(tenant, destination.value()));
        let (requests, failures_ref) = (&requests, &failures);
        let checked = self
            .db
            .write(&ctx, |conn| {
                async move {
                    if !tenant_exists(conn, tenant).await? {
                        return Ok::<_, AuthnError>(Err(AuthnError::InvalidCredentials));
                    }
                    let all: Vec<ThrottleKey> = requests.iter().chain(failures_ref).cloned().collect();
                    let locked_here = match throttle::reserve(conn, policy, &all, now).await? {
                        Reservation::Locked(retry_after) => {
                            return Ok(Err(AuthnError::Locked { retry_after }));
                        }
                        Reservation::Reserved { locked } => locked,
                    };
                    let user =
                        consume(conn, tenant, destination, code, CodeUse::ResetPassword, Spend::CheckOnly, now)
                            .await?;
                    if user.is_none() && locked_here {
                        metrics::counter!("portcullis_login_lockouts_total").increment(1);
                        audit::record(
                            conn,
                            AuditEvent {
                                tenant_id: Some(tenant),
                                actor: Actor::Anonymous,
                                action: "auth.otp_locked",
                                entity_kind: "login",
                                entity: Some(Entity::Ref(format!("{}:{}", destination.kind(), destination.value()))),
                                request_id,
                                payload: json!({ "reason": "invalid_code", "purpose": "reset_password" }),
                            },
                        )
                        .await?;
                    }
                    Ok(user.ok_or(AuthnError::InvalidCredentials))
                }
                .scope_boxed()
            })
            .await?;
        // A locked counter must roll the reservation back; a wrong code
        // stays counted.
        if let Err(AuthnError::Locked { .. }) = &checked {
            return checked.map(drop);
        }
        checked?;
        let hash = &self
            .passwords
            .hash_for(client.address.as_deref(), new_password.secret())
            .await?;
        let revoked = self
            .db
            .write(&ctx, |conn| {
                async move {
                    let Some(user) = consume(
                        conn,
                        tenant,
                        destination,
                        code,
                        CodeUse::ResetPassword,
                        Spend::Consume,
                        now,
                    )
                    .await?
                    else {
                        return Ok::<_, AuthnError>(Err(AuthnError::InvalidCredentials));
                    };
                    if !sessions::user_may_log_in(conn, tenant, user).await? {
                        return Ok(Err(AuthnError::InvalidCredentials));
                    }
                    throttle::release(conn, failures_ref).await?;
                    // The password lives on the user's `password` identity.
                    let password_identity = ui::table
                        .filter(ui::user_id.eq(user))
                        .filter(ui::ident_provider_code.eq(PASSWORD_PROVIDER));
                    diesel::update(password_identity)
                        .set((ui::password_hash_text.eq(hash), ui::updated_utc.eq(now)))
                        .execute(conn)
                        .await?;
                    let revoked = sessions::revoke_all(
                        conn,
                        settings.access_lifetime,
                        sessions::SessionsOf::User(user),
                        "password_reset",
                        now,
                    )
                    .await?;
                    audit::record(
                        conn,
                        AuditEvent {
                            tenant_id: Some(tenant),
                            actor: Actor::User(user),
                            action: "auth.password_reset",
                            entity_kind: "user",
                            entity: Some(Entity::Id(user)),
                            request_id,
                            payload: json!({ "revoked_sessions": revoked.len() }),
                        },
                    )
                    .await?;
                    Ok(Ok(revoked))
                }
                .scope_boxed()
            })
            .await??;
        let until =
            now + chrono::Duration::from_std(self.settings.access_lifetime).unwrap_or_default();
        for session in revoked {
            self.tokens.revocations().insert(session, until);
        }
        Ok(())
    }
}
