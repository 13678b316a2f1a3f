//! Users of a tenant: create (with or without a password identity),
//! deactivate, reactivate, list. Tenant-wide, so services only.

use crate::names::NewPassword;
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use scoped_futures::ScopedFutureExt;
use uuid::Uuid;

use super::idempotency::{Attempt, IdempotencyKey, retry_conflicts};
use super::{AdminError, Administrator, Item, Label};
use crate::authn::sessions::{self, SessionsOf};
use crate::authn::users::{NewUser, insert_user};
use crate::authn::{AuthnError, Login, PasswordError, Passwords};
use crate::db::Db;
use crate::db::schema::auth::users;
use crate::names::UserId;

pub use crate::pagination::{DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE};

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
            Item::Password,
            "needs an email or phone to log in with".into(),
        ));
    }
    // Hashed once, on the hashing threads, before any transaction opens: a
    // create that runs again after a conflict reuses the hash.
    let hash = match &new.password {
        Some(password) => Some(passwords.hash(password.secret()).await.map_err(hashing)?),
        None => None,
    };
    retry_conflicts(key, || create_once(db, admin, &new, hash.as_deref(), key)).await
}

/// One attempt of [`create`], with the password already hashed.
async fn create_once(
    db: &Db,
    admin: &Administrator,
    new: &CreateUser,
    hash: Option<&str>,
    key: Option<&IdempotencyKey>,
) -> Result<User, AdminError> {
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
    let new = NewUser {
        tenant_id: admin.tenant_id,
        display_name: new.display_name.as_str().to_owned(),
        logins: new.logins.clone(),
        password: None,
    };
    let new = &new;
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
                Item::Email
            } else {
                Item::Phone
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
                .select(users::user_id)
                .for_update()
                .first::<Uuid>(conn)
                .await
                .optional()?
                .ok_or(AdminError::NotFound(Item::User))?;
            let before = load(conn, user).await?;
            if before.active == active {
                return Ok(before);
            }
            diesel::update(users::table.find(user))
                .set((
                    users::user_state_code.eq(status),
                    users::updated_utc.eq(diesel::dsl::now),
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
                .order(users::user_id)
                .limit(size + 1)
                .select(UserRow::as_select())
                .into_boxed();
            if let Some(after) = after {
                query = query.filter(users::user_id.gt(after));
            }
            let mut rows: Vec<UserRow> = query.load(conn).await?;
            let more = rows.len() as i64 > size;
            rows.truncate(size as usize);
            let page: Vec<User> = rows.into_iter().map(User::from).collect();
            let next = more.then(|| page.last().map(|u| u.id)).flatten();
            Ok((page, next))
        }
        .scope_boxed()
    })
    .await
}

pub(super) async fn load(conn: &mut AsyncPgConnection, id: Uuid) -> Result<User, AdminError> {
    let row: UserRow = users::table
        .find(id)
        .select(UserRow::as_select())
        .first(conn)
        .await
        .optional()?
        .ok_or(AdminError::NotFound(Item::User))?;
    Ok(row.into())
}

/// A user as stored: the seed's columns.
#[derive(Queryable, Selectable)]
#[diesel(table_name = users)]
struct UserRow {
    user_id: Uuid,
    tenant_id: Uuid,
    display_label: String,
    user_state_code: String,
    email_addr: Option<String>,
    phone_e164: Option<String>,
}

impl From<UserRow> for User {
    fn from(row: UserRow) -> Self {
        let logins = [("email", row.email_addr), ("phone", row.phone_e164)]
            .into_iter()
            .filter_map(|(kind, login)| login.map(|login| format!("{kind}:{login}")))
            .collect();
        Self {
            id: row.user_id,
            tenant_id: row.tenant_id,
            display_name: row.display_label,
            active: row.user_state_code == "active",
            logins,
        }
    }
}
