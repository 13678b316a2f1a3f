//! One-time codes: six digits from the OS's CSPRNG, stored hashed with an
//! expiry and an attempt budget, handed to a delivery, consumed atomically.

use std::future::Future;
use std::pin::Pin;

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use rand::Rng;
use scoped_futures::ScopedFutureExt;
use secrecy::{ExposeSecret, SecretString};
use serde_json::json;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use uuid::Uuid;

use crate::names::Login;
use crate::names::TenantId;

use super::throttle::{self, Reservation};
use super::users::{PASSWORD_PROVIDER, login_is};
use super::{Authenticator, AuthnError, ClientInfo, tenant_exists};
use crate::audit::{self, Actor, AuditEvent, Entity};
use crate::db::DbError;
use crate::db::schema::auth::{
    otp_codes as oc, otp_outbox as ob, user_identities as ui, users as u,
};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Channel {
    Email,
    Sms,
    Whatsapp,
}

impl Channel {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Email => "email",
            Self::Sms => "sms",
            Self::Whatsapp => "whatsapp",
        }
    }

    /// Whether codes on this channel can go to `destination`.
    pub fn reaches(self, destination: &Login) -> bool {
        matches!(
            (self, destination),
            (Self::Email, Login::Email(_)) | (Self::Sms | Self::Whatsapp, Login::Phone(_))
        )
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Purpose {
    Login,
    VerifyEmail,
    VerifyPhone,
    ResetPassword,
}

impl Purpose {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Login => "login",
            Self::VerifyEmail => "verify_email",
            Self::VerifyPhone => "verify_phone",
            Self::ResetPassword => "reset_password",
        }
    }
}

/// A code on its way to its destination.
pub struct OtpMessage<'a> {
    pub tenant_id: Uuid,
    pub otp_id: Uuid,
    pub channel: Channel,
    pub destination: &'a Login,
    pub purpose: Purpose,
    pub code: &'a SecretString,
    pub expires_at: DateTime<Utc>,
}

pub type DeliveryFuture<'a> = Pin<Box<dyn Future<Output = Result<(), DbError>> + Send + 'a>>;

/// Hands a code to whatever sends it. Runs inside the request's
/// transaction, so a delivery that writes (the outbox) commits with the code.
pub trait OtpDelivery: Send + Sync {
    fn deliver<'a>(
        &'a self,
        conn: &'a mut AsyncPgConnection,
        message: &'a OtpMessage<'a>,
    ) -> DeliveryFuture<'a>;
}

/// Writes codes to `auth.otp_outbox` for a sender process to pick up.
pub struct OutboxDelivery;

impl OtpDelivery for OutboxDelivery {
    fn deliver<'a>(
        &'a self,
        conn: &'a mut AsyncPgConnection,
        message: &'a OtpMessage<'a>,
    ) -> DeliveryFuture<'a> {
        Box::pin(async move {
            diesel::insert_into(ob::table)
                .values((
                    ob::tenant_id.eq(message.tenant_id),
                    ob::otp_id.eq(message.otp_id),
                    ob::channel.eq(message.channel.as_str()),
                    ob::destination.eq(message.destination.value()),
                    ob::purpose.eq(message.purpose.as_str()),
                    ob::code.eq(message.code.expose_secret()),
                    ob::expires_at.eq(message.expires_at),
                ))
                .execute(conn)
                .await?;
            Ok(())
        })
    }
}

/// For `dev` only: prints the code in the server log, so a developer can
/// log in without a mail or SMS provider.
pub struct DevLogDelivery;

impl OtpDelivery for DevLogDelivery {
    fn deliver<'a>(
        &'a self,
        _conn: &'a mut AsyncPgConnection,
        message: &'a OtpMessage<'a>,
    ) -> DeliveryFuture<'a> {
        Box::pin(async move {
            tracing::warn!(
                destination = %message.destination,
                purpose = message.purpose.as_str(),
                code = message.code.expose_secret(),
                "dev delivery of a one-time code (never used outside dev)"
            );
            Ok(())
        })
    }
}

fn code_hash(otp_id: Uuid, code: &str) -> String {
    let mut hasher = Sha256::new();
    hasher.update(b"portcullis.otp.v1:");
    hasher.update(otp_id.as_bytes());
    hasher.update(code.as_bytes());
    format!("{:x}", hasher.finalize())
}

/// The answer to `RequestOtp`, the same whether or not the destination is known.
pub struct OtpIssued {
    pub otp_id: Uuid,
    pub expires_at: DateTime<Utc>,
}

impl Authenticator {
    #[allow(clippy::too_many_arguments)]
    pub async fn request_otp(
        &self,
        tenant: TenantId,
        destination: &Login,
        channel: Channel,
        purpose: Purpose,
        client: &ClientInfo,
        request_id: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<OtpIssued, AuthnError> {
        let tenant = tenant.get();
        let otp_id = Uuid::new_v4();
        let expires_at =
            now + chrono::Duration::from_std(self.settings.otp_lifetime).unwrap_or_default();
        let code = SecretString::from(format!(
            "{:06}",
            rand::rngs::OsRng.gen_range(0..1_000_000u32)
        ));
        let ctx = client.context(tenant, request_id);
        let (settings, delivery, code) = (&self.settings, &self.delivery, &code);
        self.db
            .write(&ctx, |conn| {
                async move {
                    // Codes cost a message each: a client address may ask
                    // for so many per window, in any tenant.
                    let per_address = settings
                        .throttle
                        .address_requests(client.address.as_deref(), "otp_requests");
                    if let Reservation::Locked(retry_after) =
                        throttle::reserve(conn, &settings.throttle, per_address.as_slice(), now).await?
                    {
                        return Err(AuthnError::TooManyCodes { retry_after });
                    }
                    if !tenant_exists(conn, tenant).await? {
                        // Nothing can be stored for a tenant that does not exist;
                        // the answer looks the same.
                        return Ok::<_, AuthnError>(());
                    }
                    let window_start = now - chrono::Duration::from_std(settings.otp_request_window).unwrap_or_default();
                    let recent: i64 = oc::table
                        .filter(oc::destination_text.eq(destination.value()))
                        .filter(oc::created_utc.gt(window_start))
                        .count()
                        .get_result(conn)
                        .await?;
                    if recent >= i64::from(settings.otp_requests_per_window) {
                        return Err(AuthnError::TooManyCodes {
                            retry_after: settings.otp_request_window,
                        });
                    }
                    let user: Option<Uuid> = u::table
                        .filter(login_is(destination))
                        .select(u::user_id)
                        .first(conn)
                        .await
                        .optional()?;
                    // A row even for an unknown destination: the same work, and
                    // the per-destination limit counts it too. It can never be
                    // used: no user.
                    diesel::insert_into(oc::table)
                        .values((
                            oc::otp_id.eq(otp_id),
                            oc::tenant_id.eq(tenant),
                            oc::user_id.eq(user),
                            oc::destination_text.eq(destination.value()),
                            oc::channel_code.eq(channel.as_str()),
                            oc::purpose_code.eq(purpose.as_str()),
                            oc::code_hash_text.eq(code_hash(otp_id, code.expose_secret())),
                            oc::attempt_max.eq(settings.otp_attempt_max),
                            oc::created_utc.eq(now),
                            oc::expiry_utc.eq(expires_at),
                        ))
                        .execute(conn)
                        .await?;
                    if user.is_some() {
                        let message = OtpMessage {
                            tenant_id: tenant,
                            otp_id,
                            channel,
                            destination,
                            purpose,
                            code,
                            expires_at,
                        };
                        delivery.deliver(conn, &message).await?;
                    }
                    audit::record(
                        conn,
                        AuditEvent {
                            tenant_id: Some(tenant),
                            actor: Actor::Anonymous,
                            action: "auth.otp_requested",
                            entity_kind: "otp_code",
                            entity: Some(Entity::Id(otp_id)),
                            request_id,
                            payload: json!({ "channel": channel.as_str(), "purpose": purpose.as_str(), "known": user.is_some() }),
                        },
                    )
                    .await?;
                    Ok(())
                }
                .scope_boxed()
            })
            .await?;
        Ok(OtpIssued { otp_id, expires_at })
    }
}

/// Whether a right code is used up now, or only checked (a wrong one
/// spends an attempt either way).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Spend {
    Consume,
    CheckOnly,
}

/// What a consumed code may be used for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CodeUse {
    /// `Authenticate`: login codes, and verification codes (which also mark
    /// the identity verified).
    Login,
    ResetPassword,
}

#[derive(Queryable)]
struct LiveCode {
    id: Uuid,
    user_id: Option<Uuid>,
    purpose: String,
    code_hash: String,
    attempt_count: i32,
    attempt_max: i32,
}

/// Consumes the newest live code for `destination` if `code` is it: at most
/// once, even concurrently (the row is locked). A wrong code spends one
/// attempt; at `attempt_max` the code is dead. Returns the code's user.
pub(super) async fn consume(
    conn: &mut AsyncPgConnection,
    tenant: Uuid,
    destination: &Login,
    code: &SecretString,
    usage: CodeUse,
    spend: Spend,
    now: DateTime<Utc>,
) -> Result<Option<Uuid>, AuthnError> {
    let purposes: &[&str] = match usage {
        CodeUse::Login => &["login", "verify_email", "verify_phone"],
        CodeUse::ResetPassword => &["reset_password"],
    };
    let live: Option<LiveCode> = oc::table
        .filter(oc::tenant_id.eq(tenant))
        .filter(oc::destination_text.eq(destination.value()))
        .filter(oc::purpose_code.eq_any(purposes))
        .filter(oc::consumed_utc.is_null())
        .filter(oc::expiry_utc.gt(now))
        .order(oc::created_utc.desc())
        .select((
            oc::otp_id,
            oc::user_id,
            oc::purpose_code,
            oc::code_hash_text,
            oc::attempt_count,
            oc::attempt_max,
        ))
        .for_update()
        .first(conn)
        .await
        .optional()?;
    let Some(live) = live else {
        return Ok(None);
    };
    if live.attempt_count >= live.attempt_max {
        return Ok(None);
    }
    let matches: bool = code_hash(live.id, code.expose_secret())
        .as_bytes()
        .ct_eq(live.code_hash.as_bytes())
        .into();
    if !matches {
        diesel::update(oc::table.find(live.id))
            .set(oc::attempt_count.eq(oc::attempt_count + 1))
            .execute(conn)
            .await?;
        return Ok(None);
    }
    if spend == Spend::CheckOnly {
        return Ok(live.user_id);
    }
    diesel::update(oc::table.find(live.id))
        .set(oc::consumed_utc.eq(now))
        .execute(conn)
        .await?;
    if let Some(user) = live.user_id
        && (live.purpose == "verify_email" || live.purpose == "verify_phone")
    {
        // The code went to the user's own login: that login is verified.
        let target = ui::table
            .filter(ui::user_id.eq(user))
            .filter(ui::ident_provider_code.eq(PASSWORD_PROVIDER));
        match destination {
            Login::Email(_) => {
                diesel::update(target)
                    .set((ui::email_verified_flag.eq(true), ui::updated_utc.eq(now)))
                    .execute(conn)
                    .await?
            }
            Login::Phone(_) => {
                diesel::update(target)
                    .set((ui::phone_verified_flag.eq(true), ui::updated_utc.eq(now)))
                    .execute(conn)
                    .await?
            }
        };
    }
    Ok(live.user_id)
}
