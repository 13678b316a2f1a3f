//! Login sessions: a rotating refresh token (stored hashed) and short-lived
//! access tokens that name the session, so revoking it ends them all.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use scoped_futures::ScopedFutureExt;
use secrecy::SecretString;
use serde_json::json;
use uuid::Uuid;

use super::{Authenticator, AuthnError, AuthnSettings, ClientInfo};
use crate::audit::{self, Actor, AuditEvent, Entity};
use crate::db::schema::auth::{refresh_sessions as rs, tenants as t, users as u};
use crate::db::{Db, RlsContext};
use crate::secrets::{self, PresentedSecret, SecretKind};
use crate::tokens::revocation::{self, SessionKind};
use crate::tokens::{NewToken, Principal, TokenType, Tokens};

/// How many rotated-away refresh tokens a session remembers for reuse
/// detection. A session refreshed more often than this within its lifetime
/// forgets the oldest; presenting one of those is refused, not detected.
const RETIRED_KEPT: usize = 100;

/// What a successful login or refresh hands back.
pub struct SessionTokens {
    pub access_token: SecretString,
    pub access_expires_at: DateTime<Utc>,
    pub refresh_token: SecretString,
    pub refresh_expires_at: DateTime<Utc>,
    pub session_id: Uuid,
    pub user_id: Uuid,
    pub tenant_id: Uuid,
}

fn access_token(
    tokens: &Tokens,
    settings: &AuthnSettings,
    tenant: Uuid,
    user: Uuid,
    session: Uuid,
    now: DateTime<Utc>,
) -> Result<crate::tokens::IssuedToken, AuthnError> {
    Ok(tokens.issue(
        &NewToken {
            typ: TokenType::User,
            subject: user,
            tenant: Some(tenant),
            session,
            permissions: Vec::new(),
            lifetime: settings.access_lifetime,
            service_key: None,
        },
        now,
    )?)
}

/// Opens a session for a user who just proved who they are.
pub(super) async fn open(
    conn: &mut AsyncPgConnection,
    tokens: &Tokens,
    settings: &AuthnSettings,
    tenant: Uuid,
    user: Uuid,
    client: &ClientInfo,
    now: DateTime<Utc>,
) -> Result<SessionTokens, AuthnError> {
    let session = Uuid::new_v4();
    let refresh = secrets::generate(SecretKind::RefreshToken, session);
    let refresh_expires_at =
        now + chrono::Duration::from_std(settings.refresh_lifetime).unwrap_or_default();
    diesel::insert_into(rs::table)
        .values((
            rs::session_id.eq(session),
            rs::tenant_id.eq(tenant),
            rs::user_id.eq(user),
            rs::refresh_token_hash_text.eq(&refresh.hash),
            rs::client_user_agent_text.eq(&client.user_agent),
            rs::client_ip_text.eq(&client.address),
            rs::created_utc.eq(now),
            rs::expiry_utc.eq(refresh_expires_at),
        ))
        .execute(conn)
        .await?;
    let access = access_token(tokens, settings, tenant, user, session, now)?;
    Ok(SessionTokens {
        access_token: access.token,
        access_expires_at: access.expires_at,
        refresh_token: refresh.shown_once,
        refresh_expires_at,
        session_id: session,
        user_id: user,
        tenant_id: tenant,
    })
}

/// The tenant of the session a refresh token names, read under the narrow
/// context that shows exactly that session.
async fn tenant_of(db: &Db, session: Uuid) -> Result<Option<Uuid>, AuthnError> {
    db.read(
        &RlsContext::anonymous().with_refresh_session(session),
        |conn| {
            async move {
                Ok::<_, AuthnError>(
                    rs::table
                        .find(session)
                        .select(rs::tenant_id)
                        .first(conn)
                        .await
                        .optional()?,
                )
            }
            .scope_boxed()
        },
    )
    .await
}

#[derive(Queryable)]
struct SessionRow {
    user_id: Uuid,
    token_hash: String,
    retired: Vec<String>,
    expires_at: DateTime<Utc>,
    revoked_at: Option<DateTime<Utc>>,
}

async fn lock_session(
    conn: &mut AsyncPgConnection,
    session: Uuid,
) -> Result<Option<SessionRow>, AuthnError> {
    Ok(rs::table
        .find(session)
        .select((
            rs::user_id,
            rs::refresh_token_hash_text,
            rs::retired_token_hashes_text,
            rs::expiry_utc,
            rs::revoked_utc,
        ))
        .for_update()
        .first(conn)
        .await
        .optional()?)
}

/// Marks the session revoked and lists it, so its access tokens die too.
pub(super) async fn revoke_in(
    conn: &mut AsyncPgConnection,
    settings: &AuthnSettings,
    session: Uuid,
    reason: &str,
    now: DateTime<Utc>,
) -> Result<bool, AuthnError> {
    revoke_session_row(conn, settings.access_lifetime, session, reason, now).await
}

async fn revoke_session_row(
    conn: &mut AsyncPgConnection,
    access_lifetime: std::time::Duration,
    session: Uuid,
    reason: &str,
    now: DateTime<Utc>,
) -> Result<bool, AuthnError> {
    let updated = diesel::update(rs::table.find(session).filter(rs::revoked_utc.is_null()))
        .set((rs::revoked_utc.eq(now), rs::revoked_reason_code.eq(reason)))
        .execute(conn)
        .await?;
    if updated > 0 {
        // Access tokens of the session live at most this long from now.
        let until = now + chrono::Duration::from_std(access_lifetime).unwrap_or_default();
        revocation::record(conn, SessionKind::User, &[(session, until)]).await?;
    }
    Ok(updated > 0)
}

fn event<'a>(
    tenant: Uuid,
    user: Uuid,
    action: &'a str,
    session: Uuid,
    request_id: Option<&'a str>,
) -> AuditEvent<'a> {
    AuditEvent {
        tenant_id: Some(tenant),
        actor: Actor::User(user),
        action,
        entity_kind: "refresh_session",
        entity: Some(Entity::Id(session)),
        request_id,
        payload: json!({}),
    }
}

impl Authenticator {
    /// `RefreshSession`: rotates the refresh token. Presenting a token the
    /// session already rotated away from is reuse: the session is revoked.
    pub async fn refresh(
        &self,
        presented: &str,
        request_id: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<SessionTokens, AuthnError> {
        let (db, tokens, settings) = (&self.db, &*self.tokens, &self.settings);
        let presented = PresentedSecret::parse(SecretKind::RefreshToken, presented)
            .ok_or(AuthnError::InvalidRefreshToken)?;
        let session = presented.id();
        let tenant = tenant_of(db, session)
            .await?
            .ok_or(AuthnError::InvalidRefreshToken)?;
        let ctx = RlsContext::tenant(tenant).with_refresh_session(session);
        let ctx = ctx.with_request_id(request_id);
        let presented = &presented;
        // Refusals commit too: reuse detection's revocation and audit must stay.
        let outcome = db
            .write(&ctx, |conn| {
                async move {
                    let Some(row) = lock_session(conn, session).await? else {
                        return Ok::<_, AuthnError>(Err(Refused::Invalid));
                    };
                    if row.revoked_at.is_some() {
                        return Ok(Err(Refused::Invalid));
                    }
                    if !presented.matches(&row.token_hash) {
                        let hash = presented.hash();
                        if !row.retired.iter().any(|old| old == &hash) {
                            return Ok(Err(Refused::Invalid));
                        }
                        revoke_in(conn, settings, session, "refresh_token_reuse", now).await?;
                        audit::record(
                            conn,
                            event(
                                tenant,
                                row.user_id,
                                "auth.refresh_reuse_detected",
                                session,
                                request_id,
                            ),
                        )
                        .await?;
                        return Ok(Err(Refused::Reused));
                    }
                    if row.expires_at <= now || !user_may_log_in(conn, tenant, row.user_id).await? {
                        return Ok(Err(Refused::Invalid));
                    }
                    let next = secrets::generate(SecretKind::RefreshToken, session);
                    let mut retired = row.retired;
                    retired.push(row.token_hash);
                    let keep_from = retired.len().saturating_sub(RETIRED_KEPT);
                    diesel::update(rs::table.find(session))
                        .set((
                            rs::refresh_token_hash_text.eq(&next.hash),
                            rs::retired_token_hashes_text.eq(&retired[keep_from..]),
                            rs::rotation_count.eq(rs::rotation_count + 1),
                            rs::last_refreshed_utc.eq(now),
                        ))
                        .execute(conn)
                        .await?;
                    audit::record(
                        conn,
                        event(
                            tenant,
                            row.user_id,
                            "auth.session_refreshed",
                            session,
                            request_id,
                        ),
                    )
                    .await?;
                    let access = access_token(tokens, settings, tenant, row.user_id, session, now)?;
                    Ok(Ok(SessionTokens {
                        access_token: access.token,
                        access_expires_at: access.expires_at,
                        refresh_token: next.shown_once,
                        refresh_expires_at: row.expires_at,
                        session_id: session,
                        user_id: row.user_id,
                        tenant_id: tenant,
                    }))
                }
                .scope_boxed()
            })
            .await?;
        match outcome {
            Ok(tokens) => Ok(tokens),
            Err(Refused::Invalid) => Err(AuthnError::InvalidRefreshToken),
            Err(Refused::Reused) => {
                // Effective on this replica at once; the others within the poll.
                let until =
                    now + chrono::Duration::from_std(settings.access_lifetime).unwrap_or_default();
                tokens.revocations().insert(session, until);
                Err(AuthnError::InvalidRefreshToken)
            }
        }
    }
}

/// Why a refresh was refused (the caller is told the same either way).
enum Refused {
    Invalid,
    Reused,
}

/// Whether the user and the tenant are still active.
pub(super) async fn user_may_log_in(
    conn: &mut AsyncPgConnection,
    tenant: Uuid,
    user: Uuid,
) -> Result<bool, AuthnError> {
    let statuses: Option<(String, String)> = u::table
        .inner_join(t::table)
        .filter(u::user_id.eq(user))
        .filter(u::tenant_id.eq(tenant))
        .select((u::user_state_code, t::tenant_state_code))
        .first(conn)
        .await
        .optional()?;
    Ok(statuses.is_some_and(|(user, tenant)| user == "active" && tenant == "active"))
}

/// `RevokeSession` by refresh token: holding any genuine token of the
/// session is enough to end it. Anything else revokes nothing and is not an
/// error (RFC 7009).
impl Authenticator {
    pub async fn revoke_by_refresh_token(
        &self,
        presented: &str,
        request_id: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<(), AuthnError> {
        let (db, tokens, settings) = (&self.db, &*self.tokens, &self.settings);
        let Some(presented) = PresentedSecret::parse(SecretKind::RefreshToken, presented) else {
            return Ok(());
        };
        let session = presented.id();
        let Some(tenant) = tenant_of(db, session).await? else {
            return Ok(());
        };
        let ctx = RlsContext::tenant(tenant).with_refresh_session(session);
        let presented = &presented;
        let revoked = db
            .write(&ctx, |conn| {
                async move {
                    let Some(row) = lock_session(conn, session).await? else {
                        return Ok::<_, AuthnError>(false);
                    };
                    let hash = presented.hash();
                    let genuine = presented.matches(&row.token_hash)
                        || row.retired.iter().any(|old| old == &hash);
                    if !genuine || !revoke_in(conn, settings, session, "logout", now).await? {
                        return Ok(false);
                    }
                    audit::record(
                        conn,
                        event(
                            tenant,
                            row.user_id,
                            "auth.session_revoked",
                            session,
                            request_id,
                        ),
                    )
                    .await?;
                    Ok(true)
                }
                .scope_boxed()
            })
            .await?;
        if revoked {
            tokens.revocations().insert(
                session,
                now + chrono::Duration::from_std(settings.access_lifetime).unwrap_or_default(),
            );
        }
        Ok(())
    }

    /// `RevokeSession` by id, for a caller allowed to act on the sessions of
    /// `scope`. An id the caller cannot see is `UnknownSession`.
    pub async fn revoke_by_id(
        &self,
        scope: SessionScope,
        session: Uuid,
        request_id: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<(), AuthnError> {
        let (db, tokens, settings) = (&self.db, &*self.tokens, &self.settings);
        let SessionScope {
            tenant,
            user,
            actor,
        } = scope;
        let ctx = RlsContext::tenant(tenant);
        let found = db
            .write(&ctx, |conn| {
                async move {
                    let mut query = rs::table.find(session).select(rs::user_id).into_boxed();
                    if let Some(user) = user {
                        query = query.filter(rs::user_id.eq(user));
                    }
                    let Some(owner) = query.first::<Uuid>(conn).await.optional()? else {
                        return Ok::<_, AuthnError>(false);
                    };
                    if revoke_in(conn, settings, session, "revoked", now).await? {
                        let mut event =
                            event(tenant, owner, "auth.session_revoked", session, request_id);
                        event.actor = actor;
                        audit::record(conn, event).await?;
                    }
                    Ok(true)
                }
                .scope_boxed()
            })
            .await?;
        if !found {
            return Err(AuthnError::UnknownSession);
        }
        tokens.revocations().insert(
            session,
            now + chrono::Duration::from_std(settings.access_lifetime).unwrap_or_default(),
        );
        Ok(())
    }
}

/// Whose sessions a caller may revoke by id.
pub struct SessionScope {
    pub tenant: Uuid,
    /// `None`: any user's of the tenant.
    pub user: Option<Uuid>,
    pub actor: Actor,
}

impl SessionScope {
    /// Whose sessions `caller` may revoke by id: a user their own; a service
    /// bound to a tenant, holding `sessions.revoke`, any of its tenant's.
    pub fn for_caller(caller: &Principal) -> Result<Self, AuthnError> {
        match caller {
            Principal::User(user) => Ok(Self {
                tenant: user.tenant_id,
                user: Some(user.user_id),
                actor: Actor::User(user.user_id),
            }),
            Principal::Service(service) => {
                if !caller.has_permission("sessions.revoke") {
                    return Err(AuthnError::Forbidden(
                        "RevokeSession by id needs the permission sessions.revoke",
                    ));
                }
                let Some(tenant) = service.tenant_id else {
                    return Err(AuthnError::Forbidden(
                        "only a service bound to a tenant may revoke user sessions by id",
                    ));
                };
                Ok(Self {
                    tenant,
                    user: None,
                    actor: Actor::Service(service.service_id),
                })
            }
        }
    }
}

/// Whose refresh sessions to revoke at once.
#[derive(Clone, Copy, Debug)]
pub enum SessionsOf {
    User(Uuid),
    /// Every user of the transaction's tenant (RLS fences the rest).
    Tenant,
}

/// Revokes every live refresh session of `owner` and lists each for every
/// replica, so its access tokens stop working too (they live at most
/// `access_lifetime` from now). Returns the sessions revoked.
pub async fn revoke_all(
    conn: &mut AsyncPgConnection,
    access_lifetime: std::time::Duration,
    owner: SessionsOf,
    reason: &str,
    now: DateTime<Utc>,
) -> Result<Vec<Uuid>, AuthnError> {
    let mut query = rs::table
        .filter(rs::revoked_utc.is_null())
        .select(rs::session_id)
        .into_boxed();
    if let SessionsOf::User(user) = owner {
        query = query.filter(rs::user_id.eq(user));
    }
    let live: Vec<Uuid> = query.load(conn).await?;
    for session in &live {
        revoke_session_row(conn, access_lifetime, *session, reason, now).await?;
    }
    Ok(live)
}
