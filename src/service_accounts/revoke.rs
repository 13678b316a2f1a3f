//! `RevokeServiceToken`: by the token itself (holding it is enough, in the
//! spirit of RFC 7009) or by session id (the caller's own sessions).

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use scoped_futures::ScopedFutureExt;
use serde_json::json;
use uuid::Uuid;

use super::ServiceError;
use crate::audit::{self, Actor, AuditEvent, Entity};
use crate::db::schema::auth::{service_sessions as sess, services};
use crate::db::{Db, RlsContext};
use crate::tokens::revocation::{self, SessionKind};
use crate::tokens::{Principal, TokenType, Tokens};

/// Revokes the session a service token belongs to. A string that is not a
/// valid token of ours, or a user token, revokes nothing and is not an error.
pub async fn revoke_by_token(
    db: &Db,
    tokens: &Tokens,
    caller: &Principal,
    token: &str,
    request_id: Option<&str>,
    now: DateTime<Utc>,
) -> Result<(), ServiceError> {
    let Ok(claims) = tokens.verify_signature(token, now) else {
        return Ok(());
    };
    let (TokenType::Service, Ok(service_id), Ok(session_id)) = (
        claims.typ,
        Uuid::parse_str(&claims.sub),
        Uuid::parse_str(&claims.sid),
    ) else {
        return Ok(());
    };
    let ctx = with_request(RlsContext::anonymous().with_service(service_id), request_id);
    let revoked = db
        .write(&ctx, |conn| {
            async move { revoke(conn, caller, session_id, request_id).await }.scope_boxed()
        })
        .await?;
    if let Some(expires_at) = revoked {
        tokens.revocations().insert(session_id, expires_at);
    }
    Ok(())
}

/// Revokes one of the calling service's own sessions.
pub async fn revoke_session(
    db: &Db,
    tokens: &Tokens,
    caller: &Principal,
    session_id: Uuid,
    request_id: Option<&str>,
) -> Result<(), ServiceError> {
    let Principal::Service(_) = caller else {
        return Err(ServiceError::UnknownSession);
    };
    // The caller's own context: RLS shows it only its own sessions.
    let ctx = with_request(caller.rls_context(), request_id);
    let found = db
        .write(&ctx, |conn| {
            async move {
                let exists: Option<Uuid> = sess::table
                    .find(session_id)
                    .select(sess::svc_session_id)
                    .first(conn)
                    .await
                    .optional()?;
                if exists.is_none() {
                    return Ok::<_, ServiceError>(None);
                }
                Ok(Some(revoke(conn, caller, session_id, request_id).await?))
            }
            .scope_boxed()
        })
        .await?;
    match found {
        None => Err(ServiceError::UnknownSession),
        Some(revoked) => {
            if let Some(expires_at) = revoked {
                tokens.revocations().insert(session_id, expires_at);
            }
            Ok(())
        }
    }
}

/// Marks the session revoked, lists it for every replica and audits it.
/// Returns its expiry when this call revoked it (None: it already was).
async fn revoke(
    conn: &mut AsyncPgConnection,
    caller: &Principal,
    session_id: Uuid,
    request_id: Option<&str>,
) -> Result<Option<DateTime<Utc>>, ServiceError> {
    let revoked: Option<(Uuid, DateTime<Utc>)> = diesel::update(
        sess::table
            .filter(sess::svc_session_id.eq(session_id))
            .filter(sess::revoked_utc.is_null()),
    )
    .set(sess::revoked_utc.eq(diesel::dsl::now))
    .returning((sess::svc_id, sess::expiry_utc))
    .get_result(conn)
    .await
    .optional()?;
    let Some((service_id, expires_at)) = revoked else {
        return Ok(None);
    };
    // Recorded in the service's tenant, where its administrators look.
    let tenant: Option<Uuid> = services::table
        .find(service_id)
        .select(services::tenant_id)
        .first(conn)
        .await
        .optional()?
        .flatten();
    revocation::record(conn, SessionKind::Service, &[(session_id, expires_at)]).await?;
    let (kind, id) = caller.actor();
    audit::record(
        conn,
        AuditEvent {
            tenant_id: tenant,
            actor: if kind == "service" {
                Actor::Service(id)
            } else {
                Actor::User(id)
            },
            action: "service.token_revoked",
            entity_kind: "service_session",
            entity: Some(Entity::Id(session_id)),
            request_id,
            payload: json!({ "service_id": service_id }),
        },
    )
    .await?;
    Ok(Some(expires_at))
}

fn with_request(ctx: RlsContext, request_id: Option<&str>) -> RlsContext {
    ctx.with_request_id(request_id)
}
