//! Users.

use std::collections::HashSet;

use portcullis::proto::v1::authentication_client::AuthenticationClient;
use portcullis::proto::v1::{
    AuthenticateRequest, CreateUserRequest, DecisionReason, ListUsersRequest, PasswordCredentials,
    User, UserRef, authenticate_request, password_credentials,
};
use tonic::{Code, Status};

use super::{Setup, setup};
use crate::support::fixtures::TenantWorld;
use crate::support::services::bearer;

impl Setup {
    async fn create_user(&self, email: &str, password: &str) -> Result<User, Status> {
        self.admin()
            .create_user(bearer(
                CreateUserRequest {
                    tenant_id: self.a.tenant.to_string(),
                    display_name: "New user".into(),
                    email: email.into(),
                    password: password.into(),
                    ..Default::default()
                },
                &self.token,
            ))
            .await
            .map(|r| r.into_inner())
    }

    async fn set_user_active(&self, world: &TenantWorld, active: bool) -> User {
        let request = bearer(
            UserRef {
                tenant_id: world.tenant.to_string(),
                user_id: world.user.to_string(),
            },
            &self.token,
        );
        let answer = if active {
            self.admin().reactivate_user(request).await
        } else {
            self.admin().deactivate_user(request).await
        };
        answer.unwrap().into_inner()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_user_created_with_a_password_can_log_in() {
    let s = setup().await;
    let created = s
        .create_user("new.user@example.test", "a long enough password")
        .await
        .unwrap();
    assert_eq!(created.logins, vec!["email:new.user@example.test"]);
    assert!(created.active);
    let login = AuthenticationClient::new(s.channel.clone())
        .authenticate(AuthenticateRequest {
            tenant_id: s.a.tenant.to_string(),
            method: Some(authenticate_request::Method::Password(
                PasswordCredentials {
                    login: Some(password_credentials::Login::Email(
                        "new.user@example.test".into(),
                    )),
                    password: "a long enough password".into(),
                },
            )),
        })
        .await;
    assert!(login.is_ok(), "{login:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_login_already_taken_already_exists_and_names_its_field() {
    let s = setup().await;
    s.create_user("taken@example.test", "").await.unwrap();
    let refused = s.create_user("taken@example.test", "").await.unwrap_err();
    assert_eq!(refused.code(), Code::AlreadyExists);
    assert!(
        refused.message().starts_with("email"),
        "{}",
        refused.message()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_password_without_a_login_or_too_short_is_invalid() {
    let s = setup().await;
    let refused = s
        .create_user("", "a long enough password")
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::InvalidArgument);
    assert!(
        refused.message().starts_with("password"),
        "{}",
        refused.message()
    );
    let refused = s
        .create_user("short@example.test", "short")
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::InvalidArgument);
    assert!(
        refused.message().starts_with("password"),
        "{}",
        refused.message()
    );
    let refused = s.create_user("not an email", "").await.unwrap_err();
    assert!(
        refused.message().starts_with("email"),
        "{}",
        refused.message()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_deactivated_user_is_refused_by_checks_until_reactivated() {
    let s = setup().await;
    assert_eq!(s.check(&s.a, s.a.child).await, DecisionReason::Allowed);
    assert!(!s.set_user_active(&s.a, false).await.active);
    assert_eq!(s.check(&s.a, s.a.child).await, DecisionReason::UserInactive);
    assert!(s.set_user_active(&s.a, true).await.active);
    assert_eq!(s.check(&s.a, s.a.child).await, DecisionReason::Allowed);
}

#[tokio::test(flavor = "multi_thread")]
async fn users_are_listed_in_pages_of_the_callers_tenant_only() {
    let s = setup().await;
    for i in 0..3 {
        s.create_user(&format!("user{i}@example.test"), "")
            .await
            .unwrap();
    }
    let mut seen = Vec::new();
    let mut page_token = String::new();
    loop {
        let page = s
            .admin()
            .list_users(bearer(
                ListUsersRequest {
                    tenant_id: s.a.tenant.to_string(),
                    page_size: 2,
                    page_token,
                },
                &s.token,
            ))
            .await
            .unwrap()
            .into_inner();
        seen.extend(page.users);
        if page.next_page_token.is_empty() {
            break;
        }
        page_token = page.next_page_token;
    }
    // The fixture user and the three new ones; none of tenant B's.
    assert_eq!(seen.len(), 4, "{seen:?}");
    let ids: HashSet<_> = seen.iter().map(|u| u.user_id.clone()).collect();
    assert_eq!(ids.len(), 4);
    assert!(ids.contains(&s.a.user.to_string()));
    assert!(!ids.contains(&s.b.user.to_string()));
}

impl Setup {
    /// A live refresh session of `world`'s user and an access token of it.
    async fn user_session(&self, world: &TenantWorld) -> (uuid::Uuid, String) {
        let session = uuid::Uuid::new_v4();
        crate::support::fixtures::batch(
            &self.test.db(),
            &portcullis::db::RlsContext::tenant(world.tenant),
            &format!(
                "INSERT INTO auth.refresh_sessions (session_id, tenant_id, user_id, refresh_token_hash_text, expiry_utc) \
                 VALUES ('{session}', '{}', '{}', repeat('c', 64), now() + interval '1 day')",
                world.tenant, world.user
            ),
        )
        .await
        .unwrap();
        (session, self.user_token_of_session(world, session))
    }

    /// Whether the server refuses `token` as revoked within three seconds
    /// (every replica polls the revocation list each second).
    async fn refused_within_seconds(&self, token: &str) -> bool {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(3);
        while std::time::Instant::now() < deadline {
            if self
                .server
                .tokens
                .verify(token, chrono::Utc::now())
                .is_err()
            {
                return true;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        false
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn deactivating_a_user_ends_their_sessions_and_reactivating_brings_none_back() {
    let s = setup().await;
    let (session, token) = s.user_session(&s.a).await;
    s.set_user_active(&s.a, false).await;
    assert!(
        s.refused_within_seconds(&token).await,
        "the access token still works"
    );
    s.set_user_active(&s.a, true).await;
    assert!(
        s.refused_within_seconds(&token).await,
        "reactivation revived a token"
    );
    let live = crate::support::fixtures::count(
        &s.test.db(),
        &portcullis::db::RlsContext::tenant(s.a.tenant),
        &format!("auth.refresh_sessions WHERE session_id = '{session}' AND revoked_utc IS NULL"),
    )
    .await
    .unwrap();
    assert_eq!(live, 0);
    let audited = crate::support::audit_rows(&s.test, "auth.sessions_revoked").await;
    assert_eq!(audited.len(), 1);
    assert!(audited[0].payload.contains(&session.to_string()));
}
