//! User authentication: password and one-time-code login, rotating refresh
//! sessions, password reset, brute-force protection.

use std::sync::Arc;
use std::time::{Duration, Instant};

use diesel::sql_types::Text;
use diesel_async::RunQueryDsl;
use portcullis::authn::users::{NewUser, create_user};
use portcullis::authn::{AuthnSettings, Email, HashCost, Login, Passwords, Phone, ThrottlePolicy};
use portcullis::db::{Db, DbError, RlsContext};
use portcullis::names::NewPassword;
use portcullis::proto::v1::authentication_client::AuthenticationClient;
use portcullis::proto::v1::{
    AuthenticateRequest, AuthenticateResponse, OtpChannel, OtpCredentials, OtpPurpose,
    PasswordCredentials, RefreshSessionRequest, RequestOtpRequest, ResetPasswordRequest,
    RevokeSessionRequest, authenticate_request, password_credentials, revoke_session_request,
};
use scoped_futures::ScopedFutureExt;
use tonic::transport::Channel;
use tonic::{Code, Status};
use uuid::Uuid;

use crate::support::fixtures::{execute, populate};
use crate::support::server::{TestServer, test_settings};
use crate::support::services::{create_service, token_of, verify};
use crate::support::{TestDb, audit_rows};

const PASSWORD: &str = "correct horse battery staple";
const REFUSED: &str = "invalid credentials";

struct Setup {
    test: TestDb,
    db: Db,
    server: TestServer,
    client: AuthenticationClient<Channel>,
    tenant: Uuid,
    user: Uuid,
    email: String,
    phone: String,
    /// A service token allowed to call VerifyToken.
    verifier: String,
}

async fn setup() -> Setup {
    setup_with(AuthnSettings::default(), HashCost::INSECURE_FAST_FOR_TESTS).await
}

async fn setup_with(settings: AuthnSettings, cost: HashCost) -> Setup {
    setup_serving(settings, cost, test_settings()).await
}

async fn setup_serving(
    settings: AuthnSettings,
    cost: HashCost,
    server_settings: portcullis::app::ServerSettings,
) -> Setup {
    let test = TestDb::new().await;
    let db = test.db();
    let world = populate(&db).await;
    let passwords = Arc::new(Passwords::new(cost, 2, Duration::from_secs(30)).unwrap());
    let short = &Uuid::new_v4().simple().to_string()[..8];
    let email = format!("Person-{short}@Example.Test");
    let phone = format!("+3361{}", &Uuid::new_v4().as_u128().to_string()[..7]);
    let user = create_user(
        &db,
        &passwords,
        &NewUser {
            tenant_id: world.tenant,
            display_name: "Person".into(),
            logins: vec![
                Login::Email(Email::parse(&email).unwrap()),
                Login::Phone(Phone::parse(&phone).unwrap()),
            ],
            password: Some(NewPassword::parse(PASSWORD).unwrap()),
        },
    )
    .await
    .unwrap();
    let verifier_service = create_service(&db, None, &["tokens.verify"]).await;
    let server = TestServer::build(db.clone())
        .authn(settings)
        .settings(|s| *s = server_settings)
        .app(|app| app.passwords = passwords)
        .start()
        .await;
    let channel = server.channel().await;
    let verifier = token_of(&channel, &verifier_service).await.access_token;
    Setup {
        test,
        db,
        client: AuthenticationClient::new(channel),
        server,
        tenant: world.tenant,
        user,
        email,
        phone,
        verifier,
    }
}

fn by_email(tenant: Uuid, email: &str, password: &str) -> AuthenticateRequest {
    AuthenticateRequest {
        tenant_id: tenant.to_string(),
        method: Some(authenticate_request::Method::Password(
            PasswordCredentials {
                login: Some(password_credentials::Login::Email(email.into())),
                password: password.into(),
            },
        )),
    }
}

fn by_code(tenant: Uuid, destination: &str, code: &str) -> AuthenticateRequest {
    AuthenticateRequest {
        tenant_id: tenant.to_string(),
        method: Some(authenticate_request::Method::Otp(OtpCredentials {
            destination: destination.into(),
            code: code.into(),
        })),
    }
}

impl Setup {
    async fn login(&self, request: AuthenticateRequest) -> Result<AuthenticateResponse, Status> {
        self.client
            .clone()
            .authenticate(request)
            .await
            .map(|r| r.into_inner())
    }

    async fn password_login(&self) -> AuthenticateResponse {
        self.login(by_email(self.tenant, &self.email, PASSWORD))
            .await
            .unwrap()
    }

    async fn refresh(&self, token: &str) -> Result<AuthenticateResponse, Status> {
        self.client
            .clone()
            .refresh_session(RefreshSessionRequest {
                refresh_token: token.into(),
            })
            .await
            .map(|r| r.into_inner())
    }

    async fn active(&self, access_token: &str) -> bool {
        verify(&self.server.channel().await, &self.verifier, access_token)
            .await
            .unwrap()
            .active
    }

    async fn request_code(&self, destination: &str, purpose: OtpPurpose) -> Result<(), Status> {
        let channel = if destination.contains('@') {
            OtpChannel::Email
        } else {
            OtpChannel::Sms
        };
        self.client
            .clone()
            .request_otp(RequestOtpRequest {
                tenant_id: self.tenant.to_string(),
                destination: destination.into(),
                channel: channel as i32,
                purpose: purpose as i32,
            })
            .await
            .map(|_| ())
    }

    /// The newest code the outbox holds for `destination`.
    async fn outbox_code(&self, destination: &str) -> Option<String> {
        #[derive(diesel::QueryableByName)]
        struct Row {
            #[diesel(sql_type = Text)]
            code: String,
        }
        let sql = format!(
            "SELECT code FROM auth.otp_outbox WHERE destination = '{}' ORDER BY created_at DESC LIMIT 1",
            destination.to_lowercase()
        );
        self.db
            .read(&RlsContext::tenant(self.tenant), |conn| {
                async move {
                    let rows: Vec<Row> = diesel::sql_query(sql).load(conn).await?;
                    Ok::<_, DbError>(rows.into_iter().next().map(|r| r.code))
                }
                .scope_boxed()
            })
            .await
            .unwrap()
    }

    async fn set_user_status(&self, status: &str) {
        execute(
            &self.db,
            &RlsContext::tenant(self.tenant),
            &format!(
                "UPDATE auth.users SET user_state_code = '{status}' WHERE user_id = '{}'",
                self.user
            ),
        )
        .await
        .unwrap();
    }
}

fn assert_refused(result: Result<AuthenticateResponse, Status>) {
    let status = result.unwrap_err();
    assert_eq!(
        (status.code(), status.message()),
        (Code::Unauthenticated, REFUSED)
    );
}

// ---- Password login ----

#[tokio::test(flavor = "multi_thread")]
async fn a_password_login_returns_a_user_token_bound_to_a_session() {
    let s = setup().await;
    let session = s.password_login().await;
    assert_eq!(session.user_id, s.user.to_string());
    assert_eq!(session.tenant_id, s.tenant.to_string());
    assert!(session.refresh_token.starts_with("prt_"));
    let seen = verify(
        &s.server.channel().await,
        &s.verifier,
        &session.access_token,
    )
    .await
    .unwrap();
    assert!(seen.active);
    assert_eq!(seen.token_type(), portcullis::proto::v1::TokenType::User);
    assert_eq!(seen.session_id, session.session_id);
    let lifetime = session.access_expires_at.unwrap().seconds - chrono::Utc::now().timestamp();
    assert!(
        (890..=900).contains(&lifetime),
        "access token lives {lifetime}s, wanted 15 minutes"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_email_is_case_insensitive_and_the_phone_works_too() {
    let s = setup().await;
    s.login(by_email(s.tenant, &s.email.to_uppercase(), PASSWORD))
        .await
        .unwrap();
    let by_phone = AuthenticateRequest {
        tenant_id: s.tenant.to_string(),
        method: Some(authenticate_request::Method::Password(
            PasswordCredentials {
                login: Some(password_credentials::Login::PhoneE164(s.phone.clone())),
                password: PASSWORD.into(),
            },
        )),
    };
    s.login(by_phone).await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn every_failed_login_answers_alike_and_costs_one_verification() {
    let s = setup().await;
    let other_tenant = populate(&s.db).await;
    // A user without a password identity: the fixture's own user.
    let codes_only = format!(
        "u-{}@example.test",
        &other_tenant.tenant.simple().to_string()[..12]
    );
    let cases = [
        (
            "unknown user",
            by_email(s.tenant, "nobody@example.test", PASSWORD),
        ),
        (
            "wrong password",
            by_email(s.tenant, &s.email, "not the password at all"),
        ),
        (
            "wrong tenant",
            by_email(other_tenant.tenant, &s.email, PASSWORD),
        ),
        (
            "unknown tenant",
            by_email(Uuid::new_v4(), &s.email, PASSWORD),
        ),
        (
            "no password identity",
            by_email(other_tenant.tenant, &codes_only, PASSWORD),
        ),
    ];
    for (case, request) in cases {
        let before = s.server.passwords.verifications();
        assert_refused(s.login(request).await);
        assert_eq!(s.server.passwords.verifications(), before + 1, "{case}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_inactive_user_cannot_log_in() {
    let s = setup().await;
    s.set_user_status("inactive").await;
    let before = s.server.passwords.verifications();
    assert_refused(s.login(by_email(s.tenant, &s.email, PASSWORD)).await);
    assert_eq!(s.server.passwords.verifications(), before + 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_suspended_tenant_s_users_cannot_log_in() {
    let s = setup().await;
    execute(
        &s.db,
        &RlsContext::tenant(s.tenant),
        "UPDATE auth.tenants SET tenant_state_code = 'suspended'",
    )
    .await
    .unwrap();
    assert_refused(s.login(by_email(s.tenant, &s.email, PASSWORD)).await);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_oversized_password_is_refused_before_hashing() {
    let s = setup().await;
    let before = s.server.passwords.verifications();
    let status = s
        .login(by_email(s.tenant, &s.email, &"x".repeat(1025)))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(
        status.message().starts_with("password.password"),
        "{}",
        status.message()
    );
    assert_eq!(s.server.passwords.verifications(), before);
}

#[tokio::test(flavor = "multi_thread")]
async fn malformed_login_fields_name_themselves() {
    let s = setup().await;
    let cases = [
        (
            by_email(s.tenant, "not-an-email", PASSWORD),
            "password.email",
        ),
        (by_email(s.tenant, &s.email, ""), "password.password"),
        (
            AuthenticateRequest {
                tenant_id: "x".into(),
                ..by_email(s.tenant, &s.email, PASSWORD)
            },
            "tenant_id",
        ),
        (
            AuthenticateRequest {
                tenant_id: s.tenant.to_string(),
                method: None,
            },
            "method",
        ),
        (by_code(s.tenant, &s.email, "12345"), "otp.code"),
        (by_code(s.tenant, "0612", "123456"), "otp.destination"),
    ];
    for (request, field) in cases {
        let status = s.login(request).await.unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{field}");
        assert!(
            status.message().starts_with(field),
            "{field}: {}",
            status.message()
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_hash_made_with_a_lower_cost_is_replaced_at_login() {
    let stronger = HashCost {
        memory_kib: 128,
        ..HashCost::INSECURE_FAST_FOR_TESTS
    };
    let s = setup_with(AuthnSettings::default(), stronger).await;
    // Store a hash of the weaker test cost, as an older release would have.
    let weak =
        Passwords::new(HashCost::INSECURE_FAST_FOR_TESTS, 1, Duration::from_secs(5)).unwrap();
    let login = Login::Email(Email::parse(&s.email).unwrap());
    portcullis::authn::users::set_password(
        &s.db,
        &weak,
        s.tenant,
        &login,
        &NewPassword::parse(PASSWORD).unwrap(),
        false,
    )
    .await
    .unwrap();
    let hash = || async {
        #[derive(diesel::QueryableByName)]
        struct Row {
            #[diesel(sql_type = Text)]
            password_hash_text: String,
        }
        let sql = format!(
            "SELECT password_hash_text FROM auth.user_identities WHERE user_id = '{}' LIMIT 1",
            s.user
        );
        s.db.read(&RlsContext::tenant(s.tenant), |conn| {
            async move {
                Ok::<_, DbError>(
                    diesel::sql_query(sql)
                        .get_result::<Row>(conn)
                        .await?
                        .password_hash_text,
                )
            }
            .scope_boxed()
        })
        .await
        .unwrap()
    };
    assert!(hash().await.contains("m=64,"));
    s.password_login().await;
    assert!(hash().await.contains("m=128,"), "{}", hash().await);
    s.password_login().await;
}

// ---- Refresh sessions ----

#[tokio::test(flavor = "multi_thread")]
async fn a_refresh_rotates_the_token_and_the_old_one_stops_working() {
    let s = setup().await;
    let first = s.password_login().await;
    let second = s.refresh(&first.refresh_token).await.unwrap();
    assert_eq!(second.session_id, first.session_id);
    assert_ne!(second.refresh_token, first.refresh_token);
    assert!(s.active(&second.access_token).await);
    let third = s.refresh(&second.refresh_token).await.unwrap();
    assert_eq!(third.session_id, first.session_id);
}

#[tokio::test(flavor = "multi_thread")]
async fn reusing_a_rotated_refresh_token_revokes_the_whole_session() {
    let s = setup().await;
    let first = s.password_login().await;
    let second = s.refresh(&first.refresh_token).await.unwrap();
    let status = s.refresh(&first.refresh_token).await.unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    // The thief's replay took the legitimate holder's session down too.
    assert!(s.refresh(&second.refresh_token).await.is_err());
    assert!(!s.active(&second.access_token).await);
    assert!(!s.active(&first.access_token).await);
    assert_eq!(
        audit_rows(&s.test, "auth.refresh_reuse_detected")
            .await
            .len(),
        1
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn of_two_concurrent_refreshes_with_one_token_at_most_one_succeeds() {
    let s = setup().await;
    for _ in 0..5 {
        let session = s.password_login().await;
        let (a, b) = tokio::join!(
            s.refresh(&session.refresh_token),
            s.refresh(&session.refresh_token)
        );
        assert!(!(a.is_ok() && b.is_ok()), "both refreshes succeeded");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_expired_session_cannot_be_refreshed() {
    let settings = AuthnSettings {
        refresh_lifetime: Duration::from_secs(1),
        ..AuthnSettings::default()
    };
    let s = setup_with(settings, HashCost::INSECURE_FAST_FOR_TESTS).await;
    let session = s.password_login().await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(
        s.refresh(&session.refresh_token).await.unwrap_err().code(),
        Code::Unauthenticated
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_garbage_refresh_token_is_unauthenticated() {
    let s = setup().await;
    for token in [
        "nope",
        &format!("prt_{}_{}", Uuid::new_v4().simple(), "A".repeat(43)),
    ] {
        assert_eq!(
            s.refresh(token).await.unwrap_err().code(),
            Code::Unauthenticated
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn logging_out_with_the_refresh_token_ends_the_session() {
    let s = setup().await;
    let session = s.password_login().await;
    s.client
        .clone()
        .revoke_session(RevokeSessionRequest {
            target: Some(revoke_session_request::Target::RefreshToken(
                session.refresh_token.clone(),
            )),
        })
        .await
        .unwrap();
    assert!(s.refresh(&session.refresh_token).await.is_err());
    assert!(!s.active(&session.access_token).await);
    assert_eq!(audit_rows(&s.test, "auth.session_revoked").await.len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_user_may_revoke_its_own_session_by_id_but_not_another_user_s() {
    let s = setup().await;
    let mine = s.password_login().await;
    let other = s.password_login().await;
    let revoke = |caller: String, session: String| {
        let mut client = s.client.clone();
        async move {
            client
                .revoke_session(crate::support::services::bearer(
                    RevokeSessionRequest {
                        target: Some(revoke_session_request::Target::SessionId(session)),
                    },
                    &caller,
                ))
                .await
        }
    };
    revoke(mine.access_token.clone(), other.session_id.clone())
        .await
        .unwrap();
    assert!(!s.active(&other.access_token).await);
    let unknown = revoke(mine.access_token.clone(), Uuid::new_v4().to_string())
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), Code::NotFound);
    let anonymous = s
        .client
        .clone()
        .revoke_session(RevokeSessionRequest {
            target: Some(revoke_session_request::Target::SessionId(
                mine.session_id.clone(),
            )),
        })
        .await
        .unwrap_err();
    assert_eq!(anonymous.code(), Code::Unauthenticated);
}

// ---- One-time codes ----

#[tokio::test(flavor = "multi_thread")]
async fn a_code_logs_in_once_and_only_once() {
    let s = setup().await;
    s.request_code(&s.email, OtpPurpose::Login).await.unwrap();
    let code = s
        .outbox_code(&s.email)
        .await
        .expect("the code went to the outbox");
    assert_eq!(code.len(), 6);
    let session = s.login(by_code(s.tenant, &s.email, &code)).await.unwrap();
    assert_eq!(session.user_id, s.user.to_string());
    assert_refused(s.login(by_code(s.tenant, &s.email, &code)).await);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unknown_destination_gets_the_same_answer_and_no_code() {
    let s = setup().await;
    let known = s
        .client
        .clone()
        .request_otp(RequestOtpRequest {
            tenant_id: s.tenant.to_string(),
            destination: s.email.clone(),
            channel: OtpChannel::Email as i32,
            purpose: OtpPurpose::Login as i32,
        })
        .await
        .unwrap()
        .into_inner();
    let unknown = s
        .client
        .clone()
        .request_otp(RequestOtpRequest {
            tenant_id: s.tenant.to_string(),
            destination: "stranger@example.test".into(),
            channel: OtpChannel::Email as i32,
            purpose: OtpPurpose::Login as i32,
        })
        .await
        .unwrap()
        .into_inner();
    assert!(Uuid::try_parse(&unknown.otp_id).is_ok() && unknown.expires_at.is_some());
    // The same lifetime (the two calls may straddle a second boundary).
    let apart = known.expires_at.unwrap().seconds - unknown.expires_at.unwrap().seconds;
    assert!(apart.abs() <= 1, "expiry differs by {apart} s");
    assert!(s.outbox_code("stranger@example.test").await.is_none());
}

#[tokio::test(flavor = "multi_thread")]
async fn wrong_codes_spend_the_attempts_and_then_even_the_right_one_fails() {
    let s = setup().await;
    s.request_code(&s.email, OtpPurpose::Login).await.unwrap();
    let code = s.outbox_code(&s.email).await.unwrap();
    let wrong = if code == "000000" { "111111" } else { "000000" };
    for _ in 0..5 {
        assert_refused(s.login(by_code(s.tenant, &s.email, wrong)).await);
    }
    assert_refused(s.login(by_code(s.tenant, &s.email, &code)).await);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_expired_code_is_refused() {
    let settings = AuthnSettings {
        otp_lifetime: Duration::from_secs(1),
        ..AuthnSettings::default()
    };
    let s = setup_with(settings, HashCost::INSECURE_FAST_FOR_TESTS).await;
    s.request_code(&s.email, OtpPurpose::Login).await.unwrap();
    let code = s.outbox_code(&s.email).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_refused(s.login(by_code(s.tenant, &s.email, &code)).await);
}

#[tokio::test(flavor = "multi_thread")]
async fn two_concurrent_uses_of_one_code_log_in_at_most_once() {
    let s = setup().await;
    s.request_code(&s.phone, OtpPurpose::Login).await.unwrap();
    let code = s.outbox_code(&s.phone).await.unwrap();
    let (a, b) = tokio::join!(
        s.login(by_code(s.tenant, &s.phone, &code)),
        s.login(by_code(s.tenant, &s.phone, &code))
    );
    assert_eq!(u8::from(a.is_ok()) + u8::from(b.is_ok()), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn codes_per_destination_are_limited() {
    let s = setup().await;
    for _ in 0..5 {
        s.request_code("someone@example.test", OtpPurpose::Login)
            .await
            .unwrap();
    }
    let status = s
        .request_code("someone@example.test", OtpPurpose::Login)
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::ResourceExhausted);
    assert!(status.metadata().get("retry-after").is_some());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_verify_email_code_marks_the_identity_verified() {
    let s = setup().await;
    let verified = || async {
        crate::support::fixtures::count(
            &s.db,
            &RlsContext::tenant(s.tenant),
            &format!(
                "auth.user_identities WHERE user_id = '{}' AND email_verified_flag",
                s.user
            ),
        )
        .await
        .unwrap()
    };
    assert_eq!(verified().await, 0);
    s.request_code(&s.email, OtpPurpose::VerifyEmail)
        .await
        .unwrap();
    let code = s.outbox_code(&s.email).await.unwrap();
    s.login(by_code(s.tenant, &s.email, &code)).await.unwrap();
    assert_eq!(verified().await, 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_channel_that_cannot_reach_the_destination_is_invalid() {
    let s = setup().await;
    let status = s
        .client
        .clone()
        .request_otp(RequestOtpRequest {
            tenant_id: s.tenant.to_string(),
            destination: s.email.clone(),
            channel: OtpChannel::Sms as i32,
            purpose: OtpPurpose::Login as i32,
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(
        status.message().starts_with("channel"),
        "{}",
        status.message()
    );
}

// ---- Password reset ----

#[tokio::test(flavor = "multi_thread")]
async fn a_password_reset_sets_the_new_password_and_ends_every_session() {
    let s = setup().await;
    let before = s.password_login().await;
    s.request_code(&s.email, OtpPurpose::ResetPassword)
        .await
        .unwrap();
    let code = s.outbox_code(&s.email).await.unwrap();
    // A reset code does not log in.
    assert_refused(s.login(by_code(s.tenant, &s.email, &code)).await);
    let new_password = "a brand new passphrase";
    s.client
        .clone()
        .reset_password(ResetPasswordRequest {
            tenant_id: s.tenant.to_string(),
            destination: s.email.clone(),
            code,
            new_password: new_password.into(),
        })
        .await
        .unwrap();
    assert!(!s.active(&before.access_token).await);
    assert!(s.refresh(&before.refresh_token).await.is_err());
    assert_refused(s.login(by_email(s.tenant, &s.email, PASSWORD)).await);
    s.login(by_email(s.tenant, &s.email, new_password))
        .await
        .unwrap();
    assert_eq!(audit_rows(&s.test, "auth.password_reset").await.len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_reset_with_a_short_password_or_bad_code_is_refused() {
    let s = setup().await;
    let reset = |code: &str, password: &str| {
        let mut client = s.client.clone();
        let request = ResetPasswordRequest {
            tenant_id: s.tenant.to_string(),
            destination: s.email.clone(),
            code: code.into(),
            new_password: password.into(),
        };
        async move { client.reset_password(request).await }
    };
    let short = reset("123456", "short").await.unwrap_err();
    assert_eq!(short.code(), Code::InvalidArgument);
    assert!(short.message().starts_with("new_password"));
    let bad_code = reset("123456", "long enough passphrase").await.unwrap_err();
    assert_eq!(bad_code.code(), Code::Unauthenticated);
}

// ---- Brute force ----

fn strict_throttle() -> AuthnSettings {
    AuthnSettings {
        throttle: ThrottlePolicy {
            login_threshold: 3,
            address_threshold: 100,
            window: Duration::from_secs(2),
            base_delay: Duration::from_millis(1500),
            max_delay: Duration::from_secs(60),
            ..ThrottlePolicy::default()
        },
        ..AuthnSettings::default()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn repeated_failures_lock_the_login_with_a_retry_hint_and_the_lock_lifts() {
    let s = setup_with(strict_throttle(), HashCost::INSECURE_FAST_FOR_TESTS).await;
    for _ in 0..3 {
        assert_refused(
            s.login(by_email(s.tenant, &s.email, "wrong wrong wrong"))
                .await,
        );
    }
    let locked = s.password_login_result().await.unwrap_err();
    assert_eq!(locked.code(), Code::ResourceExhausted);
    assert!(locked.metadata().get("retry-after").is_some());
    {
        use tonic_types::StatusExt;
        let details = locked.get_error_details();
        assert_eq!(details.error_info().unwrap().reason, "LOGIN_LOCKED");
        assert!(details.retry_info().unwrap().retry_delay.is_some());
    }
    // Held in the database: another replica refuses too.
    let replica = TestServer::build(s.db.clone())
        .authn(strict_throttle())
        .start()
        .await;
    let status = AuthenticationClient::new(replica.channel().await)
        .authenticate(by_email(s.tenant, &s.email, PASSWORD))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::ResourceExhausted);
    assert!(!audit_rows(&s.test, "auth.login_locked").await.is_empty());

    let deadline = Instant::now() + Duration::from_secs(10);
    while s.password_login_result().await.is_err() {
        assert!(Instant::now() < deadline, "the lock never lifted");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

impl Setup {
    async fn password_login_result(&self) -> Result<AuthenticateResponse, Status> {
        self.login(by_email(self.tenant, &self.email, PASSWORD))
            .await
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn logins_and_failures_are_audited_without_secrets() {
    let s = setup().await;
    let session = s.password_login().await;
    s.refresh(&session.refresh_token).await.unwrap();
    assert_refused(
        s.login(by_email(s.tenant, &s.email, "wrong wrong wrong"))
            .await,
    );
    let succeeded = audit_rows(&s.test, "auth.login_succeeded").await;
    assert_eq!(succeeded.len(), 1);
    assert_eq!(
        succeeded[0].actor_id.as_deref(),
        Some(s.user.to_string().as_str())
    );
    assert_eq!(audit_rows(&s.test, "auth.login_failed").await.len(), 1);
    assert_eq!(audit_rows(&s.test, "auth.session_refreshed").await.len(), 1);
    for action in [
        "auth.login_succeeded",
        "auth.login_failed",
        "auth.session_refreshed",
    ] {
        for row in audit_rows(&s.test, action).await {
            assert!(
                !row.payload.contains(PASSWORD) && !row.payload.contains("wrong wrong"),
                "{action}"
            );
            assert!(
                !row.payload.contains(&session.refresh_token[37..]),
                "{action}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn checks_keep_answering_while_logins_saturate_the_hashing_pool() {
    use portcullis::proto::v1::authorization_client::AuthorizationClient;
    use portcullis::proto::v1::{CheckCapabilityRequest, Subject, UserRef, subject};

    // A real cost, so the pool is busy for a while.
    let s = setup_with(AuthnSettings::default(), HashCost::OWASP).await;
    let checker = create_service(&s.db, None, &["authz.check"]).await;
    let channel = s.server.channel().await;
    let token = token_of(&channel, &checker).await.access_token;
    let storm: Vec<_> = (0..12)
        .map(|_| {
            let mut client = s.client.clone();
            let request = by_email(s.tenant, &s.email, "wrong wrong wrong");
            async move { client.authenticate(request).await }
        })
        .collect();
    let storm = tokio::spawn(futures_util::future::join_all(storm));
    let mut slowest = Duration::ZERO;
    for _ in 0..10 {
        let started = Instant::now();
        AuthorizationClient::new(channel.clone())
            .check_capability(crate::support::services::bearer(
                CheckCapabilityRequest {
                    subject: Some(Subject {
                        kind: Some(subject::Kind::User(UserRef {
                            tenant_id: s.tenant.to_string(),
                            user_id: s.user.to_string(),
                        })),
                    }),
                    capability: "cap.none".into(),
                    org_node_id: Uuid::new_v4().to_string(),
                    explain: false,
                },
                &token,
            ))
            .await
            .unwrap();
        slowest = slowest.max(started.elapsed());
    }
    // A generous bound: the benchmark owns the real figure.
    assert!(
        slowest < Duration::from_secs(2),
        "a check took {slowest:?} during the login storm"
    );
    let failed = storm.await.unwrap();
    assert!(failed.iter().all(|r| r.is_err()));
}

// ---- Brute force under concurrency, cancellation and amplification ----

fn policy(change: impl FnOnce(&mut ThrottlePolicy)) -> AuthnSettings {
    let mut settings = AuthnSettings::default();
    change(&mut settings.throttle);
    settings
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_wrong_passwords_verify_at_most_the_threshold() {
    let s = setup().await;
    let before = s.server.passwords.verifications();
    let guesses: Vec<_> = (0..40)
        .map(|i| {
            let mut client = s.client.clone();
            let request = by_email(s.tenant, &s.email, &format!("guess number {i:04}"));
            tokio::spawn(async move { client.authenticate(request).await })
        })
        .collect();
    let mut refused = 0;
    for guess in guesses {
        let status = guess.await.unwrap().unwrap_err();
        assert!(
            matches!(
                status.code(),
                Code::Unauthenticated | Code::ResourceExhausted
            ),
            "{status:?}"
        );
        refused += 1;
    }
    assert_eq!(refused, 40);
    let verified = s.server.passwords.verifications() - before;
    assert!(
        verified <= 5,
        "{verified} guesses were verified; the threshold is 5"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_login_cancelled_by_its_deadline_still_counts_as_a_failure() {
    // A slow hash, so the client gives up while it runs.
    let slow = HashCost {
        memory_kib: 65_536,
        iterations: 6,
        parallelism: 1,
    };
    let s = setup_with(AuthnSettings::default(), slow).await;
    let started = Instant::now();
    assert_refused(
        s.login(by_email(s.tenant, &s.email, "wrong wrong wrong"))
            .await,
    );
    let hashing = started.elapsed();
    assert!(
        hashing > Duration::from_millis(60),
        "hashing took only {hashing:?}"
    );
    // Four more, each abandoned by its client while the hash runs: with
    // the first, five failures, the threshold.
    for _ in 0..4 {
        let mut request = tonic::Request::new(by_email(s.tenant, &s.email, "wrong wrong wrong"));
        request.set_timeout(hashing / 3);
        let status = s.client.clone().authenticate(request).await.unwrap_err();
        assert!(
            matches!(status.code(), Code::DeadlineExceeded | Code::Cancelled),
            "{status:?}"
        );
    }
    let status = s.password_login_result().await.unwrap_err();
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_reset_with_a_wrong_code_hashes_nothing() {
    let s = setup().await;
    s.request_code(&s.email, OtpPurpose::ResetPassword)
        .await
        .unwrap();
    let before = s.server.passwords.hashings();
    for _ in 0..3 {
        let refused = s
            .client
            .clone()
            .reset_password(ResetPasswordRequest {
                tenant_id: s.tenant.to_string(),
                destination: s.email.clone(),
                code: "000000".into(),
                new_password: "a brand new passphrase".into(),
            })
            .await
            .unwrap_err();
        assert_eq!(refused.code(), Code::Unauthenticated, "{refused:?}");
    }
    assert_eq!(s.server.passwords.hashings(), before);
    // The right code still works, and hashes once.
    let code = s.outbox_code(&s.email).await.unwrap();
    s.client
        .clone()
        .reset_password(ResetPasswordRequest {
            tenant_id: s.tenant.to_string(),
            destination: s.email.clone(),
            code,
            new_password: "a brand new passphrase".into(),
        })
        .await
        .unwrap();
    assert_eq!(s.server.passwords.hashings(), before + 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn logins_to_unknown_tenants_count_against_the_client_address() {
    let s = setup_with(
        policy(|t| t.address_threshold = 3),
        HashCost::INSECURE_FAST_FOR_TESTS,
    )
    .await;
    for _ in 0..3 {
        assert_refused(s.login(by_email(Uuid::new_v4(), &s.email, PASSWORD)).await);
    }
    let locked = s
        .login(by_email(Uuid::new_v4(), &s.email, PASSWORD))
        .await
        .unwrap_err();
    assert_eq!(locked.code(), Code::ResourceExhausted, "{locked:?}");
    // The address is locked in every tenant, the real one included.
    let locked = s.password_login_result().await.unwrap_err();
    assert_eq!(locked.code(), Code::ResourceExhausted, "{locked:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn code_failures_are_capped_per_destination_across_codes() {
    let s = setup_with(
        policy(|t| t.code_failures_per_destination = 4),
        HashCost::INSECURE_FAST_FOR_TESTS,
    )
    .await;
    for _ in 0..2 {
        s.request_code(&s.email, OtpPurpose::Login).await.unwrap();
        for _ in 0..2 {
            assert_refused(s.login(by_code(s.tenant, &s.email, "000000")).await);
        }
    }
    // A fresh, right code: the destination is capped for the day.
    s.request_code(&s.email, OtpPurpose::Login).await.unwrap();
    let code = s.outbox_code(&s.email).await.unwrap();
    let capped = s
        .login(by_code(s.tenant, &s.email, &code))
        .await
        .unwrap_err();
    assert_eq!(capped.code(), Code::ResourceExhausted, "{capped:?}");
    assert_eq!(audit_rows(&s.test, "auth.otp_locked").await.len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn code_requests_are_limited_per_client_address() {
    let s = setup_with(
        policy(|t| t.requests_per_address = 3),
        HashCost::INSECURE_FAST_FOR_TESTS,
    )
    .await;
    // Different destinations, so only the address limit applies.
    for i in 0..3 {
        s.request_code(&format!("someone-{i}@example.test"), OtpPurpose::Login)
            .await
            .unwrap();
    }
    let limited = s
        .request_code("someone-else@example.test", OtpPurpose::Login)
        .await
        .unwrap_err();
    assert_eq!(limited.code(), Code::ResourceExhausted, "{limited:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_address_a_trusted_proxy_appended_is_the_client_address() {
    let mut serving = test_settings();
    serving.trust_forwarded_for = true;
    let s = setup_serving(
        AuthnSettings::default(),
        HashCost::INSECURE_FAST_FOR_TESTS,
        serving,
    )
    .await;
    let mut request = tonic::Request::new(by_email(s.tenant, &s.email, PASSWORD));
    // The client wrote the first entry; our proxy appended the second.
    request.metadata_mut().insert(
        "x-forwarded-for",
        "198.51.100.66, 203.0.113.9".parse().unwrap(),
    );
    s.client.clone().authenticate(request).await.unwrap();
    let succeeded = audit_rows(&s.test, "auth.login_succeeded").await;
    assert!(
        succeeded[0]
            .payload
            .contains("\"client_addr\": \"203.0.113.9\""),
        "{}",
        succeeded[0].payload
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_wrong_codes_are_compared_at_most_the_cap() {
    let s = setup_with(
        policy(|t| t.code_failures_per_destination = 4),
        HashCost::INSECURE_FAST_FOR_TESTS,
    )
    .await;
    s.request_code(&s.email, OtpPurpose::Login).await.unwrap();
    let guesses: Vec<_> = (0..30)
        .map(|i| {
            let mut client = s.client.clone();
            let request = by_code(s.tenant, &s.email, &format!("{:06}", 100_000 + i));
            tokio::spawn(async move { client.authenticate(request).await })
        })
        .collect();
    for guess in guesses {
        let status = guess.await.unwrap().unwrap_err();
        assert!(
            matches!(
                status.code(),
                Code::Unauthenticated | Code::ResourceExhausted
            ),
            "{status:?}"
        );
    }
    // Each compared guess is audited as a failure; the rest were refused
    // by the destination's cap before any comparison.
    let compared = audit_rows(&s.test, "auth.login_failed").await.len();
    assert!(
        compared <= 4,
        "{compared} guesses were compared; the cap is 4"
    );
}
