//! `ExchangeServiceCredential`: a service key and secret for a short-lived
//! signed token, with an audit row for every attempt.

use std::time::Duration;

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use scoped_futures::ScopedFutureExt;
use secrecy::SecretString;
use serde_json::json;
use uuid::Uuid;

use super::ServiceError;
use super::names::{Permission, ServiceKey};
use crate::audit::{self, Actor, AuditEvent, Entity};
use crate::authn::throttle::{self, Reservation, ThrottlePolicy};
use crate::db::schema::auth::{
    service_permissions as sp, service_secrets as ss, service_sessions as sess, services as s,
    tenants as t,
};
use crate::db::{Db, RlsContext, authenticated_service};
use crate::secrets::{PresentedSecret, unmatched_hash};
use crate::tokens::{NewToken, TokenType, Tokens};

pub struct ExchangeRequest {
    pub key: ServiceKey,
    /// `None` when the presented string could not be a secret at all; the
    /// attempt is still looked up and audited like a wrong secret.
    pub secret: Option<PresentedSecret>,
    /// Empty: every permission the service holds.
    pub requested: Vec<Permission>,
    pub lifetime: Duration,
    pub request_id: Option<String>,
}

pub struct Exchanged {
    pub token: SecretString,
    pub expires_at: DateTime<Utc>,
    pub granted: Vec<String>,
    pub session_id: Uuid,
    pub service_id: Uuid,
}

/// Why an exchange was refused, for the audit trail only: the caller is told
/// the same thing whatever it was.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Refusal {
    UnknownKey,
    MalformedSecret,
    UnknownSecret,
    WrongSecret,
    RevokedSecret,
    DisabledService,
    TenantSuspended,
}

impl Refusal {
    fn as_str(self) -> &'static str {
        match self {
            Self::UnknownKey => "unknown_key",
            Self::MalformedSecret => "malformed_secret",
            Self::UnknownSecret => "unknown_secret",
            Self::WrongSecret => "wrong_secret",
            Self::RevokedSecret => "revoked_secret",
            Self::DisabledService => "disabled_service",
            Self::TenantSuspended => "tenant_suspended",
        }
    }
}

#[derive(Queryable)]
struct ServiceRow {
    id: Uuid,
    tenant_id: Option<Uuid>,
    status: String,
}

#[derive(Queryable)]
struct SecretRow {
    service_id: Uuid,
    secret_hash: String,
    revoked_at: Option<DateTime<Utc>>,
}

/// What the presented key and secret point at.
struct Found {
    service: Option<ServiceRow>,
    secret: Option<SecretRow>,
    tenant_active: bool,
}

pub async fn exchange(
    db: &Db,
    tokens: &Tokens,
    request: ExchangeRequest,
    now: DateTime<Utc>,
) -> Result<Exchanged, ServiceError> {
    // Before authentication the transaction may see only the service the
    // presented key names.
    let ctx = RlsContext::anonymous()
        .with_service_key(request.key.as_str())
        .with_request_id(request.request_id.as_deref());
    // Refusals are committed too (their audit row must stay), so the
    // transaction returns them as a value rather than as its error.
    db.write(&ctx, |conn| {
        async move {
            let found = lookup(conn, &request).await?;
            let (Some(service), None) = (&found.service, refusal(&request, &found)) else {
                let reason = refusal(&request, &found).unwrap_or(Refusal::UnknownKey);
                let tenant = found.service.as_ref().and_then(|svc| svc.tenant_id);
                // Anyone may present a real key: its tenant's trail takes so
                // many refusals per window, then they are only counted.
                let audited = found.service.is_none() || {
                    let counter =
                        [ThrottlePolicy::default().exchange_refusals(request.key.as_str())];
                    let policy = ThrottlePolicy::default();
                    matches!(
                        throttle::reserve(conn, &policy, &counter, now).await?,
                        Reservation::Reserved { .. }
                    )
                };
                if audited {
                    audit_refusal(
                        conn,
                        &request,
                        tenant,
                        Actor::Anonymous,
                        json!({ "reason": reason.as_str() }),
                    )
                    .await?;
                } else {
                    metrics::counter!("portcullis_audit_refusals_unrecorded_total").increment(1);
                }
                return Ok::<_, ServiceError>(Err(ServiceError::InvalidCredentials));
            };
            // The secret is proven: the rest of the transaction may write
            // this service's rows (the key alone only reads).
            // Pipelined: the permissions are read right behind the key
            // that lets this transaction read them.
            let (authenticated, granted) = futures_util::future::join(
                authenticated_service(conn, service.id),
                grant(conn, service.id, &request.requested),
            )
            .await;
            authenticated?;
            let granted = match granted? {
                Ok(granted) => granted,
                Err(missing) => {
                    let payload =
                        json!({ "reason": "permission_not_granted", "permission": missing });
                    audit_refusal(
                        conn,
                        &request,
                        service.tenant_id,
                        Actor::Service(service.id),
                        payload,
                    )
                    .await?;
                    return Ok(Err(ServiceError::PermissionNotGranted(missing)));
                }
            };
            Ok(Ok(open_session(
                conn, tokens, service, granted, &request, now,
            )
            .await?))
        }
        .scope_boxed()
    })
    .await?
}

/// The service, its tenant's state and the presented secret, in one round
/// trip (the two reads pipelined).
async fn lookup(
    conn: &AsyncPgConnection,
    request: &ExchangeRequest,
) -> Result<Found, ServiceError> {
    let (mut for_service, mut for_secret) = (conn, conn);
    // The tenant is read in the same statement: visible, in this
    // pre-authentication context, only as the named service's tenant.
    let service = s::table
        .left_join(t::table)
        .filter(s::svc_key.eq(request.key.as_str()))
        .select((
            (s::svc_id, s::tenant_id, s::svc_state_code),
            t::tenant_state_code.nullable(),
        ))
        .first::<(ServiceRow, Option<String>)>(&mut for_service);
    let secret = async {
        match &request.secret {
            Some(presented) => ss::table
                .find(presented.id())
                .select((ss::svc_id, ss::secret_hash_text, ss::revoked_utc))
                .first::<SecretRow>(&mut for_secret)
                .await
                .optional(),
            None => Ok(None),
        }
    };
    let (service, secret) = futures_util::future::join(service, secret).await;
    let (service, tenant_state) = match service.optional()? {
        Some((service, tenant_state)) => (Some(service), tenant_state),
        None => (None, None),
    };
    let tenant_active = match service.as_ref().and_then(|svc| svc.tenant_id) {
        Some(_) => tenant_state.is_some_and(|state| state == "active"),
        None => true,
    };
    Ok(Found {
        service,
        secret: secret?,
        tenant_active,
    })
}

/// Why the credentials do not authenticate, if they do not.
fn refusal(request: &ExchangeRequest, found: &Found) -> Option<Refusal> {
    let Some(service) = &found.service else {
        return Some(Refusal::UnknownKey);
    };
    let Some(presented) = &request.secret else {
        return Some(Refusal::MalformedSecret);
    };
    // Compare a hash whether or not the row exists, so an unknown secret id
    // costs what a wrong secret does.
    let stored = found
        .secret
        .as_ref()
        .map_or_else(unmatched_hash, |row| row.secret_hash.clone());
    let matches = presented.matches(&stored);
    let Some(secret) = &found.secret else {
        return Some(Refusal::UnknownSecret);
    };
    if secret.service_id != service.id {
        Some(Refusal::UnknownSecret)
    } else if !matches {
        Some(Refusal::WrongSecret)
    } else if secret.revoked_at.is_some() {
        Some(Refusal::RevokedSecret)
    } else if service.status != "active" {
        Some(Refusal::DisabledService)
    } else if !found.tenant_active {
        Some(Refusal::TenantSuspended)
    } else {
        None
    }
}

/// The permissions the token will carry, or the first requested one the
/// service does not hold.
async fn grant(
    conn: &AsyncPgConnection,
    service_id: Uuid,
    requested: &[Permission],
) -> Result<Result<Vec<String>, String>, ServiceError> {
    let held: Vec<String> = sp::table
        .filter(sp::svc_id.eq(service_id))
        .select(sp::perm_key)
        .order(sp::perm_key)
        .load(&mut { conn })
        .await?;
    if requested.is_empty() {
        return Ok(Ok(held));
    }
    Ok(
        match requested
            .iter()
            .find(|p| !held.iter().any(|h| h == p.as_str()))
        {
            Some(missing) => Err(missing.to_string()),
            None => Ok(requested.iter().map(ToString::to_string).collect()),
        },
    )
}

/// How stale a secret's recorded last use may be.
const LAST_USED_PRECISION: chrono::TimeDelta = chrono::TimeDelta::minutes(1);

async fn open_session(
    conn: &AsyncPgConnection,
    tokens: &Tokens,
    service: &ServiceRow,
    granted: Vec<String>,
    request: &ExchangeRequest,
    now: DateTime<Utc>,
) -> Result<Exchanged, ServiceError> {
    let session_id = Uuid::new_v4();
    let issued = tokens.issue(
        &NewToken {
            typ: TokenType::Service,
            subject: service.id,
            tenant: service.tenant_id,
            session: session_id,
            permissions: granted.clone(),
            lifetime: request.lifetime,
            service_key: Some(request.key.as_str().to_owned()),
        },
        now,
    )?;
    let secret_id = request.secret.as_ref().map(PresentedSecret::id);
    // The session, the secret's last use and the audit row, pipelined: one
    // round trip, and the foreign-key locks they take on the service's rows
    // are held for less time before the COMMIT releases them. A write that
    // fails aborts the transaction, so the writes after it fail too.
    let (mut for_session, mut for_secret) = (conn, conn);
    let session = diesel::insert_into(sess::table)
        .values((
            sess::svc_session_id.eq(session_id),
            sess::svc_id.eq(service.id),
            sess::secret_id.eq(secret_id),
            sess::token_hash_text.eq(&issued.hash),
            sess::perm_keys.eq(&granted),
            sess::created_utc.eq(now),
            sess::expiry_utc.eq(issued.expires_at),
        ))
        .execute(&mut for_session);
    // A secret's last use is recorded to the minute, not on every exchange:
    // writing it every time made every exchange of one secret update the
    // same row, so concurrent exchanges queued on its lock and PostgreSQL
    // spent a fifth of its CPU on the multixacts of their foreign-key locks.
    // A row that does not match takes no lock.
    let recorded_before = now - LAST_USED_PRECISION;
    let last_use = diesel::update(
        ss::table
            .filter(ss::secret_id.nullable().eq(secret_id))
            .filter(
                ss::last_used_utc
                    .is_null()
                    .or(ss::last_used_utc.lt(recorded_before)),
            ),
    )
    .set(ss::last_used_utc.eq(now))
    .execute(&mut for_secret);
    let expires_at = issued.expires_at.to_rfc3339();
    let audited = audit::record(
        conn,
        AuditEvent {
            tenant_id: service.tenant_id,
            actor: Actor::Service(service.id),
            action: "service.credential_exchanged",
            entity_kind: "service_session",
            entity: Some(Entity::Id(session_id)),
            request_id: request.request_id.as_deref(),
            payload: json!({
                "secret_id": secret_id.map(|id| id.to_string()),
                "permissions": &granted,
                "expires_at": expires_at,
            }),
        },
    );
    let (session, last_use, audited) =
        futures_util::future::join3(session, last_use, audited).await;
    session?;
    last_use?;
    audited?;
    Ok(Exchanged {
        token: issued.token,
        expires_at: issued.expires_at,
        granted,
        session_id,
        service_id: service.id,
    })
}

async fn audit_refusal(
    conn: &mut AsyncPgConnection,
    request: &ExchangeRequest,
    tenant_id: Option<Uuid>,
    actor: Actor,
    mut payload: serde_json::Value,
) -> Result<(), ServiceError> {
    payload["secret_id"] = json!(request.secret.as_ref().map(|p| p.id().to_string()));
    audit::record(
        conn,
        AuditEvent {
            tenant_id,
            actor,
            action: "service.credential_refused",
            entity_kind: "service",
            entity: Some(Entity::Ref(request.key.to_string())),
            request_id: request.request_id.as_deref(),
            payload,
        },
    )
    .await?;
    Ok(())
}
