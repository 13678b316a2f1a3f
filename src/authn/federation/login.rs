//! `Authenticate` with an ID token: the identity the token proves is found
//! by its provider subject, or, on its first login, linked to the user who
//! has its email when the provider verified that email and the tenant
//! allows it. Then a session opens, as for a password.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use scoped_futures::ScopedFutureExt;
use secrecy::{ExposeSecret, SecretString};
use serde_json::json;
use uuid::Uuid;

use super::FederatedIdentity;
use crate::audit::{self, Actor, AuditEvent, Entity};
use crate::authn::login::login_succeeded;
use crate::authn::sessions::user_may_log_in;
use crate::authn::users::login_is;
use crate::authn::{Authenticator, AuthnError, ClientInfo, SessionTokens};
use crate::db::schema::auth::{
    id_token_uses as itu, tenants as t, user_identities as ui, users as u,
};
use crate::names::{Email, Login, TenantId};

/// Why a genuine identity opens no session in this tenant.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Unlinked {
    #[error("no user of this tenant is linked to this identity")]
    NotLinked,
    #[error("no user is linked to this identity, and the provider has not verified its email")]
    EmailNotVerified,
    #[error("no user is linked to this identity or has its email")]
    NoUserWithEmail,
    #[error("the user with this email is linked to another identity of this provider")]
    OtherIdentityLinked,
}

impl Unlinked {
    fn reason(self) -> &'static str {
        match self {
            Self::NotLinked => "not_linked",
            Self::EmailNotVerified => "email_not_verified",
            Self::NoUserWithEmail => "no_user_with_email",
            Self::OtherIdentityLinked => "other_identity_linked",
        }
    }
}

impl Authenticator {
    pub async fn authenticate_federated(
        &self,
        tenant: TenantId,
        id_token: &SecretString,
        nonce: Option<&str>,
        client: &ClientInfo,
        request_id: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<SessionTokens, AuthnError> {
        let identity = self
            .federation
            .verify(id_token.expose_secret(), nonce, now)
            .await
            .inspect_err(|error| {
                metrics::counter!("portcullis_id_token_rejections_total", "reason" => error.reason())
                    .increment(1);
            })?;
        let tenant = tenant.get();
        let ctx = client.context(tenant, request_id);
        let (settings, tokens, identity) = (&self.settings, &self.tokens, &identity);
        self.db
            .write(&ctx, |conn| {
                async move {
                    let Some((tenant_active, may_link)) = tenant_policy(conn, tenant).await? else {
                        return Ok(Err(AuthnError::InvalidCredentials));
                    };
                    if !tenant_active {
                        refuse(conn, tenant, identity, request_id, "inactive").await?;
                        return Ok(Err(AuthnError::InvalidCredentials));
                    }
                    if !first_use(conn, tenant, identity, now).await? {
                        refuse(conn, tenant, identity, request_id, "replayed").await?;
                        return Ok(Err(AuthnError::InvalidCredentials));
                    }
                    let user = match linked_user(conn, identity).await? {
                        Some(user) => user,
                        None => {
                            match link(conn, tenant, identity, may_link, request_id, now).await? {
                                Ok(user) => user,
                                Err(unlinked) => {
                                    refuse(conn, tenant, identity, request_id, unlinked.reason())
                                        .await?;
                                    return Ok(Err(AuthnError::Unlinked(unlinked)));
                                }
                            }
                        }
                    };
                    if !user_may_log_in(conn, tenant, user).await? {
                        refuse(conn, tenant, identity, request_id, "inactive").await?;
                        return Ok(Err(AuthnError::InvalidCredentials));
                    }
                    let method = identity.provider.code();
                    login_succeeded(
                        conn, tokens, settings, tenant, user, client, method, request_id, now,
                    )
                    .await
                    .map(Ok)
                }
                .scope_boxed()
            })
            .await?
    }
}

/// Whether the tenant is active and lets first logins link by email;
/// `None` when there is no such tenant.
async fn tenant_policy(
    conn: &mut AsyncPgConnection,
    tenant: Uuid,
) -> Result<Option<(bool, bool)>, AuthnError> {
    let row: Option<(String, bool)> = t::table
        .find(tenant)
        .select((t::tenant_state_code, t::federated_email_link_flag))
        .first(conn)
        .await
        .optional()?;
    Ok(row.map(|(state, may_link)| (state == "active", may_link)))
}

/// Records the token's use; false when it was used before. The nonce comes
/// with the token, so only this tells a stolen token's replay from its
/// first use. Uses past their token's life are forgotten here too.
async fn first_use(
    conn: &mut AsyncPgConnection,
    tenant: Uuid,
    identity: &FederatedIdentity,
    now: DateTime<Utc>,
) -> Result<bool, AuthnError> {
    diesel::delete(
        itu::table
            .filter(itu::tenant_id.eq(tenant))
            .filter(itu::expiry_utc.lt(now)),
    )
    .execute(conn)
    .await?;
    let recorded = diesel::insert_into(itu::table)
        .values((
            itu::token_sha256.eq(identity.token_sha256.as_slice()),
            itu::tenant_id.eq(tenant),
            itu::expiry_utc.eq(identity.usable_until),
        ))
        .on_conflict_do_nothing()
        .execute(conn)
        .await?;
    Ok(recorded == 1)
}

/// The user this identity is already linked to in the tenant.
async fn linked_user(
    conn: &mut AsyncPgConnection,
    identity: &FederatedIdentity,
) -> Result<Option<Uuid>, AuthnError> {
    Ok(ui::table
        .filter(ui::ident_provider_code.eq(identity.provider.code()))
        .filter(ui::provider_subject_key.eq(&identity.subject_key))
        .select(ui::user_id)
        .first(conn)
        .await
        .optional()?)
}

/// Links a first login to the user with the token's email, when the
/// provider verified it and the tenant allows it.
async fn link(
    conn: &mut AsyncPgConnection,
    tenant: Uuid,
    identity: &FederatedIdentity,
    may_link: bool,
    request_id: Option<&str>,
    now: DateTime<Utc>,
) -> Result<Result<Uuid, Unlinked>, AuthnError> {
    if !may_link {
        return Ok(Err(Unlinked::NotLinked));
    }
    // An unverified email proves nothing about whose account it is.
    let email = match (&identity.email, identity.email_verified) {
        (Some(email), true) => Email::parse(email).ok(),
        _ => None,
    };
    let Some(email) = email else {
        return Ok(Err(Unlinked::EmailNotVerified));
    };
    let login = Login::Email(email);
    let Some(user) = u::table
        .filter(login_is(&login))
        .select(u::user_id)
        .first::<Uuid>(conn)
        .await
        .optional()?
    else {
        return Ok(Err(Unlinked::NoUserWithEmail));
    };
    let inserted: Option<Uuid> = diesel::insert_into(ui::table)
        .values((
            ui::tenant_id.eq(tenant),
            ui::user_id.eq(user),
            ui::ident_provider_code.eq(identity.provider.code()),
            ui::provider_subject_key.eq(&identity.subject_key),
            ui::email_verified_flag.eq(true),
            ui::created_utc.eq(now),
            ui::updated_utc.eq(now),
        ))
        .on_conflict_do_nothing()
        .returning(ui::ident_id)
        .get_result(conn)
        .await
        .optional()?;
    let Some(ident_id) = inserted else {
        // A concurrent first login linked it, or the user already has an
        // identity of this provider.
        return Ok(match linked_user(conn, identity).await? {
            Some(linked) if linked == user => Ok(user),
            _ => Err(Unlinked::OtherIdentityLinked),
        });
    };
    audit::record(
        conn,
        AuditEvent {
            tenant_id: Some(tenant),
            actor: Actor::User(user),
            action: "auth.identity_linked",
            entity_kind: "user_identity",
            entity: Some(Entity::Id(ident_id)),
            request_id,
            payload: json!({
                "provider": identity.provider.code(),
                "issuer": identity.issuer,
                "email": login.value(),
            }),
        },
    )
    .await?;
    Ok(Ok(user))
}

/// Audits a genuine identity that opened no session.
async fn refuse(
    conn: &mut AsyncPgConnection,
    tenant: Uuid,
    identity: &FederatedIdentity,
    request_id: Option<&str>,
    reason: &str,
) -> Result<(), AuthnError> {
    audit::record(
        conn,
        AuditEvent {
            tenant_id: Some(tenant),
            actor: Actor::Anonymous,
            action: "auth.login_failed",
            entity_kind: "federated_identity",
            entity: Some(Entity::Ref(format!(
                "{}:{}",
                identity.provider.code(),
                identity.subject_key
            ))),
            request_id,
            payload: json!({ "reason": reason, "issuer": identity.issuer }),
        },
    )
    .await?;
    Ok(())
}
