//! Users of a tenant: create (with or without a password identity),
//! deactivate, reactivate, list. Tenant-wide, so services only.

use crate::names::NewPassword;
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use scoped_futures::ScopedFutureExt;
use uuid::Uuid;

use super::idempotency::{Attempt, IdempotencyKey};
use super::{AdminError, Administrator, Label, Subject};
use crate::authn::sessions::{self, SessionsOf};
use crate::authn::users::{NewUser, insert_user};
use crate::authn::{AuthnError, Login, PasswordError, Passwords};
use crate::db::Db;
use crate::db::schema::auth::{user_identities, users};
use crate::names::UserId;

pub const DEFAULT_PAGE_SIZE: u32 = 100;
pub const MAX_PAGE_SIZE: u32 = 1000;

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct User {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub display_name: String,
    pub active: bool,
    /// `email:…` / `phone:…`, sorted.
    pub logins: Vec<String>,
}

pub struct CreateUser {
    pub display_name: Label,
    pub logins: Vec<Login>,
    pub password: Option<NewPassword>,
}

pub async fn create(
    db: &Db,
    passwords: &Passwords,
    admin: &Administrator,
    new: CreateUser,
    key: Option<&IdempotencyKey>,
) -> Result<User, AdminError> {
    if new.password.is_some() && new.logins.is_empty() {
        return Err(AdminError::Invalid(
            Subject::Password,
            "needs an email or phone to log in with".into(),
        ));
    }
    let logins: Vec<String> = new.logins.iter().map(ToString::to_string).collect();
    let attempt = Attempt {
        operation: "create_user",
        key,
        // The password is not part of the fingerprint: it is never stored
        // outside its hash, and a retry carries the same one.
        request: format!(
            "{}|{logins:?}|{}",
            new.display_name.as_str(),
            new.password.is_some()
        ),
    };
    // Hashing runs on the hashing threads before the transaction opens.
    let hash = match &new.password {
        Some(password) => Some(passwords.hash(password.secret()).await.map_err(hashing)?),
        None => None,
    };
    let new = NewUser {
        tenant_id: admin.tenant_id,
        display_name: new.display_name.as_str().to_owned(),
        logins: new.logins,
        password: None,
    };
    let (new, hash) = (&new, hash.as_deref());
    db.write(&admin.context(), |conn| {
        async move {
            attempt
                .once(conn, &admin.ledger(), |conn| {
                    async move {
                        let id = Uuid::new_v4();
                        insert_user(conn, id, new, hash, admin.actor(), admin.request_id())
                            .await
                            .map_err(login_taken)?;
                        let user = load(conn, id).await?;
                        Ok(user)
                    }
                    .scope_boxed()
                })
                .await
        }
        .scope_boxed()
    })
    .await
}

pub(super) fn hashing(error: PasswordError) -> AdminError {
    AdminError::Hashing(error)
}

/// A login another user of the tenant already has: ALREADY_EXISTS about
/// the email or the phone.
pub(super) fn login_taken(error: AuthnError) -> AdminError {
    match error {
        AuthnError::LoginTaken(login) => AdminError::AlreadyExists(
            if login.contains('@') {
                Subject::Email
            } else {
                Subject::Phone
            },
            format!("{login} is already the login of another user"),
        ),
        AuthnError::Password(cause) => AdminError::Hashing(cause),
        other => AdminError::from(other),
    }
}

/// Sets the user's status; the status it already has changes nothing.
/// Deactivating also revokes the user's sessions and lists them for every
/// replica, so their access tokens stop working within a poll interval;
/// reactivating brings none back.
pub async fn set_active(
    db: &Db,
    admin: &Administrator,
    user: UserId,
    active: bool,
    access_lifetime: std::time::Duration,
) -> Result<User, AdminError> {
    let user = user.get();
    let (status, action) = if active {
        ("active", "user.reactivated")
    } else {
        ("inactive", "user.deactivated")
    };
    db.write(&admin.context(), |conn| {
        async move {
            users::table
                .find(user)
                .select(users::id)
                .for_update()
                .first::<Uuid>(conn)
                .await
                .optional()?
                .ok_or(AdminError::NotFound(Subject::User))?;
            let before = load(conn, user).await?;
            if before.active == active {
                return Ok(before);
            }
            diesel::update(users::table.find(user))
                .set((
                    users::status.eq(status),
                    users::updated_at.eq(diesel::dsl::now),
                ))
                .execute(conn)
                .await?;
            let after = load(conn, user).await?;
            admin
                .record_change(conn, action, ("user", user), Some(&before), &after)
                .await?;
            if !active {
                let owner = SessionsOf::User(user);
                let now = admin.now();
                let revoked =
                    sessions::revoke_all(conn, access_lifetime, owner, "user_deactivated", now)
                        .await?;
                admin
                    .record_change(
                        conn,
                        "auth.sessions_revoked",
                        ("user", user),
                        None::<&serde_json::Value>,
                        &serde_json::json!({ "reason": "user_deactivated", "sessions": revoked }),
                    )
                    .await?;
            }
            Ok(after)
        }
        .scope_boxed()
    })
    .await
}

/// A page of users by id, after `after`; the last id if there may be more.
pub async fn list(
    db: &Db,
    admin: &Administrator,
    page_size: u32,
    after: Option<Uuid>,
) -> Result<(Vec<User>, Option<Uuid>), AdminError> {
    let size = i64::from(page_size.clamp(1, MAX_PAGE_SIZE));
    db.read(&admin.context(), |conn| {
        async move {
            let mut query = users::table
                .order(users::id)
                .limit(size + 1)
                .select((
                    users::id,
                    users::tenant_id,
                    users::display_name,
                    users::status,
                ))
                .into_boxed();
            if let Some(after) = after {
                query = query.filter(users::id.gt(after));
            }
            let mut rows: Vec<(Uuid, Uuid, String, String)> = query.load(conn).await?;
            let more = rows.len() as i64 > size;
            rows.truncate(size as usize);
            let ids: Vec<Uuid> = rows.iter().map(|r| r.0).collect();
            let logins: Vec<(Uuid, String, String)> = user_identities::table
                .filter(user_identities::user_id.eq_any(&ids))
                .order((user_identities::kind, user_identities::login))
                .select((
                    user_identities::user_id,
                    user_identities::kind,
                    user_identities::login,
                ))
                .load(conn)
                .await?;
            let page: Vec<User> = rows
                .into_iter()
                .map(|(id, tenant_id, display_name, status)| User {
                    logins: logins
                        .iter()
                        .filter(|(user, ..)| *user == id)
                        .map(|(_, kind, login)| format!("{kind}:{login}"))
                        .collect(),
                    active: status == "active",
                    id,
                    tenant_id,
                    display_name,
                })
                .collect();
            let next = more.then(|| page.last().map(|u| u.id)).flatten();
            Ok((page, next))
        }
        .scope_boxed()
    })
    .await
}

pub(super) async fn load(conn: &mut AsyncPgConnection, id: Uuid) -> Result<User, AdminError> {
    let (tenant_id, display_name, status): (Uuid, String, String) = users::table
        .find(id)
        .select((users::tenant_id, users::display_name, users::status))
        .first(conn)
        .await
        .optional()?
        .ok_or(AdminError::NotFound(Subject::User))?;
    let logins: Vec<(String, String)> = user_identities::table
        .filter(user_identities::user_id.eq(id))
        .order((user_identities::kind, user_identities::login))
        .select((user_identities::kind, user_identities::login))
        .load(conn)
        .await?;
    Ok(User {
        id,
        tenant_id,
        display_name,
        active: status == "active",
        logins: logins
            .into_iter()
            .map(|(kind, login)| format!("{kind}:{login}"))
            .collect(),
    })
}
