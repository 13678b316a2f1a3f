//! Operator tasks on users, run from the CLI (and the demo seed).

use diesel::prelude::*;
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use scoped_futures::ScopedFutureExt;
use serde_json::json;
use uuid::Uuid;

use super::AuthnError;
use super::password::Passwords;
use crate::audit::{self, Actor, AuditEvent, Entity};
use crate::db::schema::auth::{user_identities as ui, users as u};
use crate::db::{Db, RlsContext};
use crate::names::Login;
use crate::names::NewPassword;

/// The provider of the identity that holds a user's password and the
/// verification of their logins (the seed's `password` provider).
pub const PASSWORD_PROVIDER: &str = "password";

/// The filter for the user whose email or phone is `login` (each unique
/// in a tenant; an email is stored lower-case).
pub fn login_is(login: &Login) -> LoginIs<'_> {
    u::email_addr
        .eq(login.email())
        .or(u::phone_e164.eq(login.phone()))
}

pub type LoginIs<'a> = diesel::dsl::Or<
    diesel::dsl::Eq<u::email_addr, Option<&'a str>>,
    diesel::dsl::Eq<u::phone_e164, Option<&'a str>>,
>;

pub struct NewUser {
    pub tenant_id: Uuid,
    pub display_name: String,
    pub logins: Vec<Login>,
    /// `None`: the user cannot log in with a password (codes only).
    pub password: Option<NewPassword>,
}

/// Creates a user from operator tooling (the CLI), audited as `system`.
pub async fn create_user(
    db: &Db,
    passwords: &Passwords,
    new: &NewUser,
) -> Result<Uuid, AuthnError> {
    let hash = match &new.password {
        Some(password) => Some(passwords.hash(password.secret()).await?),
        None => None,
    };
    let hash = hash.as_deref();
    db.write(&RlsContext::operator().with_tenant(new.tenant_id), |conn| {
        async move {
            let id = Uuid::new_v4();
            insert_user(conn, id, new, hash, Actor::System, None).await?;
            Ok(id)
        }
        .scope_boxed()
    })
    .await
}

/// Inserts user `id` with its logins (at most one email and one phone, each
/// unique in the tenant), its `password` identity (the hash, if any) and
/// the audit row, in the caller's transaction.
pub async fn insert_user(
    conn: &mut AsyncPgConnection,
    id: Uuid,
    new: &NewUser,
    password_hash: Option<&str>,
    actor: Actor,
    request_id: Option<&str>,
) -> Result<(), AuthnError> {
    let email = new.logins.iter().find_map(Login::email);
    let phone = new.logins.iter().find_map(Login::phone);
    let inserted = diesel::insert_into(u::table)
        .values((
            u::user_id.eq(id),
            u::tenant_id.eq(new.tenant_id),
            u::display_label.eq(&new.display_name),
            u::email_addr.eq(email),
            u::phone_e164.eq(phone),
        ))
        .execute(conn)
        .await;
    match inserted {
        Err(DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, info)) => {
            let taken = if info.constraint_name() == Some("users_tenant_phone_key") {
                phone
            } else {
                email
            };
            return Err(AuthnError::LoginTaken(taken.unwrap_or_default().to_owned()));
        }
        other => other?,
    };
    diesel::insert_into(ui::table)
        .values((
            ui::tenant_id.eq(new.tenant_id),
            ui::user_id.eq(id),
            ui::ident_provider_code.eq(PASSWORD_PROVIDER),
            ui::password_hash_text.eq(password_hash),
        ))
        .execute(conn)
        .await?;
    let logins: Vec<String> = new.logins.iter().map(ToString::to_string).collect();
    audit::record(
        conn,
        AuditEvent {
            tenant_id: Some(new.tenant_id),
            actor,
            action: "user.created",
            entity_kind: "user",
            entity: Some(Entity::Id(id)),
            request_id,
            // The user as the API shows it (`admin::users::User`), and
            // whether a password was set.
            payload: json!({
                "after": {
                    "id": id,
                    "tenant_id": new.tenant_id,
                    "display_name": &new.display_name,
                    "active": true,
                    "logins": logins,
                    "password": password_hash.is_some(),
                }
            }),
        },
    )
    .await?;
    Ok(())
}

/// Sets the password of the user who logs in as `login`; `only_if_unset`
/// leaves an existing password alone (for idempotent seeding).
pub async fn set_password(
    db: &Db,
    passwords: &Passwords,
    tenant: Uuid,
    login: &Login,
    password: &NewPassword,
    only_if_unset: bool,
) -> Result<bool, AuthnError> {
    let hash = passwords.hash(password.secret()).await?;
    let hash = &hash;
    db.write(&RlsContext::operator().with_tenant(tenant), |conn| {
        async move {
            let user: Uuid = u::table
                .filter(login_is(login))
                .select(u::user_id)
                .first(conn)
                .await
                .optional()?
                .ok_or_else(|| AuthnError::UnknownLogin(login.to_string()))?;
            let mut target = ui::table
                .filter(ui::user_id.eq(user))
                .filter(ui::ident_provider_code.eq(PASSWORD_PROVIDER))
                .into_boxed();
            if only_if_unset {
                target = target.filter(ui::password_hash_text.is_null());
            }
            let ids: Vec<Uuid> = target.select(ui::ident_id).load(conn).await?;
            if ids.is_empty() {
                return Ok(false);
            }
            diesel::update(ui::table.filter(ui::ident_id.eq_any(&ids)))
                .set((
                    ui::password_hash_text.eq(hash),
                    ui::updated_utc.eq(diesel::dsl::now),
                ))
                .execute(conn)
                .await?;
            audit::record(
                conn,
                AuditEvent {
                    tenant_id: Some(tenant),
                    actor: Actor::System,
                    action: "user.password_set",
                    entity_kind: "user",
                    entity: Some(Entity::Id(user)),
                    request_id: None,
                    payload: json!({}),
                },
            )
            .await?;
            Ok(true)
        }
        .scope_boxed()
    })
    .await
}
