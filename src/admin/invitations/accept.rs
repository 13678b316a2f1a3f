//! `AcceptInvitation`: someone who holds nothing but the token becomes a
//! user with a login and the invited assignment, once.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use scoped_futures::ScopedFutureExt;
use uuid::Uuid;

use super::{Found, Invitation, find, lock};
use crate::admin::Item;
use crate::admin::assignments::{self, Assignment, NewAssignment};
use crate::admin::author::Author;
use crate::admin::users::{self, User, hashing, login_taken};
use crate::admin::{AdminError, Label};
use crate::audit::Actor;
use crate::authn::throttle::{self, Reservation, ThrottleKey, ThrottlePolicy};
use crate::authn::users::{NewUser, insert_user};
use crate::authn::{Login, Passwords};
use crate::db::schema::auth::{invitations, tenants};
use crate::db::{Db, RlsContext};
use crate::names::NewPassword;
use crate::secrets::{self, PresentedSecret};

/// What the invitee sends: the token, their password, and optionally the
/// name to show (the invited email or phone otherwise).
pub struct Acceptance {
    pub token: PresentedSecret,
    pub password: NewPassword,
    pub display_name: Option<Label>,
    pub request_id: Option<String>,
    pub client_address: Option<String>,
}

/// What accepting created.
pub struct Accepted {
    pub user: User,
    pub assignment: Assignment,
}

/// Accepts an invitation: the user, their login with the password, and the
/// assignment (from now, open-ended) are created together, or nothing is.
/// The invitation row is locked while it is checked and marked accepted, so
/// of concurrent accepts exactly one succeeds.
pub async fn accept(
    db: &Db,
    passwords: &Passwords,
    policy: &ThrottlePolicy,
    acceptance: Acceptance,
    now: DateTime<Utc>,
) -> Result<Accepted, AdminError> {
    let id = acceptance.token.id();
    let address = acceptance.client_address.as_deref();
    // Each attempt counts against the client address until it succeeds,
    // and only one acceptance of an invitation hashes at a time.
    let failures: Vec<ThrottleKey> = policy.address_failures(address).into_iter().collect();
    let hold = [policy.invitation_attempt(id)];
    let (token, failures_ref, hold) = (&acceptance.token, &failures, &hold);
    // Which tenant, through the narrow context that shows exactly this
    // invitation; refused before any password hashing if it cannot succeed.
    let lookup = RlsContext::anonymous()
        .with_invitation(id)
        .with_client_address(address);
    let tenant = db
        .write(&lookup, |conn| {
            async move {
                if let Reservation::Locked(retry_after) =
                    throttle::reserve(conn, policy, failures_ref, now).await?
                {
                    return Err(AdminError::TooManyAttempts { retry_after });
                }
                let found = find(conn, id, false).await?;
                let invitation = match usable(found, token, now) {
                    Ok(invitation) => invitation,
                    // Committed: the failed attempt stays counted.
                    Err(refusal) => return Ok(Err(refusal)),
                };
                if let Reservation::Locked(_) = throttle::reserve(conn, policy, hold, now).await? {
                    return Ok(Err(refused(id, "another acceptance is in progress")));
                }
                Ok(Ok(invitation.tenant_id))
            }
            .scope_boxed()
        })
        .await??;
    let hash = passwords
        .hash_for(address, acceptance.password.secret())
        .await
        .map_err(hashing)?;
    let ctx = RlsContext::tenant(tenant)
        .with_invitation(id)
        .with_client_address(address)
        .with_request_id(acceptance.request_id.as_deref());
    let (acceptance, hash) = (&acceptance, hash.as_str());
    let failures_ref = &failures;
    let accepted = db
        .write(&ctx, |conn| {
            async move {
                let before = usable(lock(conn, id).await?, &acceptance.token, now)?;
                // A suspended tenant's users cannot log in: no new ones join.
                let status: String = tenants::table
                    .find(tenant)
                    .select(tenants::tenant_state_code)
                    .first(conn)
                    .await?;
                if status != "active" {
                    return Err(refused(id, "tenant suspended"));
                }
                let login = Login::parse_destination(before.destination()).map_err(|e| {
                    AdminError::Conflict(Item::InviteToken, format!("the invited login {e}"))
                })?;
                // The invitee acts as the user they become.
                let user_id = Uuid::new_v4();
                let author = Author {
                    tenant_id: Some(tenant),
                    actor: Actor::User(user_id),
                    request_id: acceptance.request_id.as_deref(),
                };
                let new_user = NewUser {
                    tenant_id: tenant,
                    display_name: acceptance
                        .display_name
                        .as_ref()
                        .map_or(before.destination(), Label::as_str)
                        .to_owned(),
                    logins: vec![login],
                    password: None,
                };
                insert_user(
                    conn,
                    user_id,
                    &new_user,
                    Some(hash),
                    author.actor,
                    author.request_id,
                )
                .await
                .map_err(|e| match login_taken(e) {
                    AdminError::AlreadyExists(..) => AdminError::Conflict(
                        Item::InviteToken,
                        format!(
                            "{} is already the login of a user in this tenant",
                            before.destination()
                        ),
                    ),
                    other => other,
                })?;
                let held = NewAssignment {
                    user_id: user_id.into(),
                    role_id: before.role_id,
                    org_node_id: before.org_node_id.into(),
                    start_utc: Some(now),
                    end_utc: None,
                };
                let assignment = assignments::insert(conn, &author, tenant, &held, now).await?;
                let after: Invitation = diesel::update(invitations::table.find(id))
                    .set((
                        invitations::accepted_utc.eq(now),
                        invitations::accepted_user_id.eq(user_id),
                    ))
                    .returning(Invitation::as_returning())
                    .get_result(conn)
                    .await?;
                let entity = ("invitation", id);
                author
                    .record_change(conn, "invitation.accepted", entity, Some(&before), &after)
                    .await?;
                throttle::release(conn, failures_ref).await?;
                Ok(Accepted {
                    user: users::load(conn, user_id).await?,
                    assignment,
                })
            }
            .scope_boxed()
        })
        .await;
    if accepted.is_err() {
        // Refused after the hold was taken (a suspended tenant, a login
        // taken meanwhile): the next attempt need not wait for it.
        let released = db
            .write(&lookup, |conn| {
                async move { throttle::release(conn, hold).await }.scope_boxed()
            })
            .await;
        if let Err(error) = released {
            tracing::warn!(%error, invitation = %id, "cannot release an acceptance hold");
        }
    }
    accepted
}

/// The invitation if the token is its own and it may still be accepted.
/// Whatever is wrong, the caller gets one answer (an unknown id costs the
/// same comparison as a wrong token); the log says why, for operators.
fn usable(
    found: Found,
    token: &PresentedSecret,
    now: DateTime<Utc>,
) -> Result<Invitation, AdminError> {
    let (invitation, stored) = match found {
        Some((invitation, stored)) => (Some(invitation), stored),
        None => (None, secrets::unmatched_hash()),
    };
    let matched = token.matches(&stored);
    let invitation = match invitation {
        Some(invitation) if matched => invitation,
        _ => return Err(AdminError::UnusableInvitation),
    };
    let why = if invitation.accepted_at.is_some() {
        "already accepted"
    } else if invitation.revoked_at.is_some() {
        "revoked"
    } else if invitation.expires_at <= now {
        "expired"
    } else {
        return Ok(invitation);
    };
    Err(refused(invitation.id, why))
}

/// The one answer to an invite token that cannot be used.
pub const UNUSABLE: &str =
    "not a usable invitation (unknown, expired, revoked or already accepted)";

fn refused(invitation: Uuid, why: &'static str) -> AdminError {
    tracing::info!(%invitation, why, "invitation not accepted");
    AdminError::UnusableInvitation
}
