//! Invitations: a role at a node offered to an email or phone, accepted
//! once by whoever holds the token shown at creation. Accepting creates the
//! user, their password login and the assignment in one transaction.

use chrono::{DateTime, Duration, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use scoped_futures::ScopedFutureExt;
use secrecy::SecretString;
use uuid::Uuid;

mod accept;

pub use accept::{Acceptance, Accepted, UNUSABLE, accept};

use super::assignments::missing_reference;
use super::idempotency::{Attempt, IdempotencyKey, retry_conflicts};
use super::{AdminCapability, AdminError, Administrator, Cursor, Placed};
use crate::admin::Item;
use crate::authn::Login;
use crate::db::Db;
use crate::db::schema::auth::{invitations, org_node_paths, users};
use crate::names::OrgNodeId;
use crate::secrets::{self, SecretKind};

pub const DEFAULT_VALIDITY: Duration = Duration::days(7);
pub const MAX_VALIDITY: Duration = Duration::days(30);
pub use crate::pagination::{DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE};

/// An invitation as the API shows it; the token's hash never leaves the
/// database (nor reaches the audit trail).
#[derive(
    Clone, Debug, PartialEq, Eq, Queryable, Selectable, serde::Serialize, serde::Deserialize,
)]
#[diesel(table_name = invitations)]
pub struct Invitation {
    #[diesel(column_name = invite_id)]
    pub id: Uuid,
    pub tenant_id: Uuid,
    /// The invitee's login: exactly one of the two.
    pub email_addr: Option<String>,
    pub phone_e164: Option<String>,
    /// The user who invited, when a user did (not a service or the CLI).
    pub invited_by_user_id: Option<Uuid>,
    #[diesel(column_name = target_role_id)]
    pub role_id: Uuid,
    #[diesel(column_name = target_org_node_id)]
    pub org_node_id: Uuid,
    #[diesel(column_name = created_utc)]
    pub created_at: DateTime<Utc>,
    #[diesel(column_name = expiry_utc)]
    pub expires_at: DateTime<Utc>,
    #[diesel(column_name = accepted_utc)]
    pub accepted_at: Option<DateTime<Utc>>,
    pub accepted_user_id: Option<Uuid>,
    #[diesel(column_name = revoked_utc)]
    pub revoked_at: Option<DateTime<Utc>>,
}

impl Invitation {
    /// Where the invitation went: the email or the phone number.
    pub fn destination(&self) -> &str {
        self.email_addr
            .as_deref()
            .or(self.phone_e164.as_deref())
            .unwrap_or_default()
    }
}

pub struct NewInvitation {
    pub destination: Login,
    pub role_id: Uuid,
    pub org_node_id: OrgNodeId,
    /// `None`: [`DEFAULT_VALIDITY`] from now.
    pub expires_at: Option<DateTime<Utc>>,
}

/// A created invitation and its token, shown once. A repeat of the call
/// with the same idempotency key gets the invitation without the token:
/// only its hash was kept.
pub struct Issued {
    pub invitation: Invitation,
    pub token: Option<SecretString>,
}

pub async fn create(
    db: &Db,
    admin: &Administrator,
    new: &NewInvitation,
    key: Option<&IdempotencyKey>,
) -> Result<Issued, AdminError> {
    retry_conflicts(key, || create_once(db, admin, new, key)).await
}

/// One attempt of [`create`].
async fn create_once(
    db: &Db,
    admin: &Administrator,
    new: &NewInvitation,
    key: Option<&IdempotencyKey>,
) -> Result<Issued, AdminError> {
    let now = admin.now();
    let expires_at = match new.expires_at {
        None => now + DEFAULT_VALIDITY,
        Some(at) if at <= now => {
            return Err(AdminError::Invalid(
                Item::InvitationExpiry,
                "must be in the future".into(),
            ));
        }
        Some(at) if at > now + MAX_VALIDITY => {
            return Err(AdminError::Invalid(
                Item::InvitationExpiry,
                format!("must be within {} days", MAX_VALIDITY.num_days()),
            ));
        }
        Some(at) => at,
    };
    let tenant = admin.tenant_id;
    let attempt = Attempt {
        operation: "create_invitation",
        key,
        request: format!(
            "{}:{}|{}|{}|{:?}",
            new.destination.kind(),
            new.destination,
            new.role_id,
            new.org_node_id,
            new.expires_at
        ),
    };
    let id = Uuid::new_v4();
    let token = secrets::generate(SecretKind::InviteToken, id);
    let token_hash = &token.hash;
    let invitation = db
        .write(&admin.context(), |conn| {
            async move {
                let (role, node) = (new.role_id, new.org_node_id);
                admin
                    .require_to_hand_out(conn, AdminCapability::InvitationsWrite, role, node)
                    .await?;
                attempt
                    .once(conn, &admin.ledger(), |conn| {
                        async move {
                            if login_in_use(conn, &new.destination).await? {
                                return Err(AdminError::AlreadyExists(
                                    Item::login(&new.destination),
                                    format!(
                                        "{} is already the login of a user in this tenant",
                                        new.destination
                                    ),
                                ));
                            }
                            let created: Invitation = diesel::insert_into(invitations::table)
                                .values((
                                    invitations::invite_id.eq(id),
                                    invitations::tenant_id.eq(tenant),
                                    invitations::email_addr.eq(new.destination.email()),
                                    invitations::phone_e164.eq(new.destination.phone()),
                                    invitations::invited_by_user_id.eq(admin.user_id()),
                                    invitations::target_role_id.eq(new.role_id),
                                    invitations::target_org_node_id.eq(new.org_node_id),
                                    invitations::invite_token_hash_text.eq(token_hash),
                                    invitations::created_utc.eq(now),
                                    invitations::expiry_utc.eq(expires_at),
                                ))
                                .returning(Invitation::as_returning())
                                .get_result(conn)
                                .await
                                .map_err(missing_reference)?;
                            admin
                                .record_change(
                                    conn,
                                    "invitation.created",
                                    ("invitation", id),
                                    None,
                                    &created,
                                )
                                .await?;
                            Ok(created)
                        }
                        .scope_boxed()
                    })
                    .await
            }
            .scope_boxed()
        })
        .await?;
    // A repeat gets the first call's invitation, and no token: it was
    // shown to the first caller only.
    let fresh = invitation.id == id;
    Ok(Issued {
        invitation,
        token: fresh.then_some(token.shown_once),
    })
}

async fn login_in_use(conn: &mut AsyncPgConnection, login: &Login) -> Result<bool, AdminError> {
    let found = users::table
        .filter(crate::authn::users::login_is(login))
        .select(users::user_id)
        .first::<Uuid>(conn)
        .await
        .optional()?;
    Ok(found.is_some())
}

/// Revokes a pending (or expired) invitation; revoking it again changes
/// nothing. An accepted one is refused: its user and assignment exist, and
/// are ended or deactivated on their own.
pub async fn revoke(
    db: &Db,
    admin: &Administrator,
    invitation: Uuid,
) -> Result<Invitation, AdminError> {
    db.write(&admin.context(), |conn| {
        async move {
            let placed = Placed::Invitation(invitation);
            admin
                .require_where(conn, AdminCapability::InvitationsWrite, placed)
                .await?;
            let before = lock(conn, invitation)
                .await?
                .ok_or(AdminError::NotFound(Item::Invitation))?
                .0;
            if before.accepted_at.is_some() {
                return Err(AdminError::Conflict(
                    Item::Invitation,
                    "already accepted; end the assignment or deactivate the user instead".into(),
                ));
            }
            if before.revoked_at.is_some() {
                return Ok(before);
            }
            let after: Invitation = diesel::update(invitations::table.find(invitation))
                .set(invitations::revoked_utc.eq(diesel::dsl::now))
                .returning(Invitation::as_returning())
                .get_result(conn)
                .await?;
            admin
                .record_change(
                    conn,
                    "invitation.revoked",
                    ("invitation", invitation),
                    Some(&before),
                    &after,
                )
                .await?;
            Ok(after)
        }
        .scope_boxed()
    })
    .await
}

/// Which pending invitations to list: a page of the whole tenant (services
/// only), or of a node and its subtree.
pub struct InvitationQuery {
    pub at_node: Option<OrgNodeId>,
    pub page_size: u32,
    pub after: Option<Cursor>,
}

/// Pending invitations (neither accepted, revoked nor expired), oldest
/// first, and the cursor of the next page if there is more.
pub async fn list_pending(
    db: &Db,
    admin: &Administrator,
    query: InvitationQuery,
) -> Result<(Vec<Invitation>, Option<Cursor>), AdminError> {
    admin.require_node_for_users(query.at_node, Item::OrgNode)?;
    if let Some(node) = query.at_node {
        admin
            .require(db, AdminCapability::InvitationsRead, node, Item::OrgNode)
            .await?;
    }
    let size = i64::from(query.page_size.clamp(1, MAX_PAGE_SIZE));
    db.read(&admin.context(), |conn| {
        async move {
            let mut select = invitations::table
                .filter(invitations::accepted_utc.is_null())
                .filter(invitations::revoked_utc.is_null())
                .filter(invitations::expiry_utc.gt(diesel::dsl::now))
                .order((invitations::created_utc, invitations::invite_id))
                .limit(size + 1)
                .select(Invitation::as_select())
                .into_boxed();
            if let Some(node) = query.at_node {
                select = select.filter(
                    invitations::target_org_node_id.eq_any(
                        org_node_paths::table
                            .filter(org_node_paths::ancestor_org_node_id.eq(node))
                            .select(org_node_paths::descendant_org_node_id),
                    ),
                );
            }
            if let Some(after) = query.after {
                select = select.filter(
                    invitations::created_utc
                        .gt(after.at)
                        .or(invitations::created_utc
                            .eq(after.at)
                            .and(invitations::invite_id.gt(after.id))),
                );
            }
            let mut page: Vec<Invitation> = select.load(conn).await?;
            let more = page.len() as i64 > size;
            page.truncate(size as usize);
            let next = more
                .then(|| page.last())
                .flatten()
                .map(|last| Cursor::new(last.created_at, last.id));
            Ok((page, next))
        }
        .scope_boxed()
    })
    .await
}

pub(super) type Found = Option<(Invitation, String)>;

pub(super) async fn find(
    conn: &mut AsyncPgConnection,
    id: Uuid,
    for_update: bool,
) -> Result<Found, AdminError> {
    let query = invitations::table
        .find(id)
        .select((Invitation::as_select(), invitations::invite_token_hash_text));
    let found = if for_update {
        query.for_update().first(conn).await
    } else {
        query.first(conn).await
    };
    Ok(found.optional()?)
}

pub(super) async fn lock(conn: &mut AsyncPgConnection, id: Uuid) -> Result<Found, AdminError> {
    find(conn, id, true).await
}
