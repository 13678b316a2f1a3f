//! Invitations: created with a token shown once, accepted once (even by
//! concurrent calls) into a user, a login and an assignment, or refused
//! when expired, revoked, used or wrong.

use chrono::{Duration, Utc};
use portcullis::db::RlsContext;
use portcullis::proto::v1::authentication_client::AuthenticationClient;
use portcullis::proto::v1::{
    AcceptInvitationRequest, AcceptInvitationResponse, AuthenticateRequest,
    CreateInvitationRequest, CreateInvitationResponse, DecisionReason, Invitation,
    ListInvitationsRequest, PasswordCredentials, RevokeInvitationRequest, authenticate_request,
    password_credentials,
};
use tonic::{Code, Status};
use uuid::Uuid;

use super::{Setup, setup};
use crate::support::fixtures::{batch, count};
use crate::support::services::bearer;

const PASSWORD: &str = "a long enough password";

impl Setup {
    /// Invites `email` to tenant A's fixture role at the child node.
    pub async fn invite(&self, email: &str) -> Result<CreateInvitationResponse, Status> {
        self.invite_with(CreateInvitationRequest {
            email: email.into(),
            ..self.invitation_request()
        })
        .await
    }

    fn invitation_request(&self) -> CreateInvitationRequest {
        CreateInvitationRequest {
            tenant_id: self.a.tenant.to_string(),
            role_id: self.a.role.to_string(),
            org_node_id: self.a.child.to_string(),
            ..Default::default()
        }
    }

    async fn invite_with(
        &self,
        request: CreateInvitationRequest,
    ) -> Result<CreateInvitationResponse, Status> {
        self.admin()
            .create_invitation(bearer(request, &self.token))
            .await
            .map(|r| r.into_inner())
    }

    /// Accepting needs no caller: the token is the credential.
    pub async fn accept(&self, token: &str) -> Result<AcceptInvitationResponse, Status> {
        self.admin()
            .accept_invitation(AcceptInvitationRequest {
                invite_token: token.into(),
                password: PASSWORD.into(),
                display_name: "Invited".into(),
            })
            .await
            .map(|r| r.into_inner())
    }

    pub async fn revoke_invitation(&self, invitation: &Invitation) -> Result<Invitation, Status> {
        self.admin()
            .revoke_invitation(bearer(
                RevokeInvitationRequest {
                    tenant_id: invitation.tenant_id.clone(),
                    invitation_id: invitation.invitation_id.clone(),
                    dry_run: false,
                },
                &self.token,
            ))
            .await
            .map(|r| r.into_inner())
    }

    /// Tenant A's pending invitations, but for the one `populate` made.
    async fn pending(&self, page_size: u32) -> Vec<Invitation> {
        let mut all = Vec::new();
        let mut page_token = String::new();
        loop {
            let page = self
                .admin()
                .list_invitations(bearer(
                    ListInvitationsRequest {
                        tenant_id: self.a.tenant.to_string(),
                        page_size,
                        page_token,
                        ..Default::default()
                    },
                    &self.token,
                ))
                .await
                .unwrap()
                .into_inner();
            all.extend(page.invitations.into_iter().filter(not_the_fixtures));
            if page.next_page_token.is_empty() {
                return all;
            }
            page_token = page.next_page_token;
        }
    }

    /// Moves the invitation's expiry into the past (its creation too, so
    /// the row stays consistent).
    async fn expire(&self, invitation: &Invitation) {
        batch(
            &self.test.db(),
            &RlsContext::operator().with_tenant(self.a.tenant),
            &format!(
                "UPDATE auth.invitations SET created_utc = now() - interval '2 days',
                     expiry_utc = now() - interval '1 second' WHERE invite_id = '{}'",
                invitation.invitation_id
            ),
        )
        .await
        .unwrap();
    }

    async fn users_with_login(&self, email: &str) -> i64 {
        count(
            &self.test.db(),
            &RlsContext::tenant(self.a.tenant),
            &format!("auth.users WHERE email_addr = '{email}'"),
        )
        .await
        .unwrap()
    }
}

fn not_the_fixtures(invitation: &Invitation) -> bool {
    !invitation.email.starts_with("new-")
}

fn invitation_of(created: &CreateInvitationResponse) -> &Invitation {
    created.invitation.as_ref().unwrap()
}

fn assert_refused(result: Result<impl std::fmt::Debug, Status>, code: Code, field: &str) {
    let status = result.unwrap_err();
    assert_eq!(status.code(), code, "{status:?}");
    assert!(
        status.message().starts_with(field),
        "{field}: {}",
        status.message()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_accepted_invitation_creates_a_user_who_logs_in_and_holds_the_role() {
    let s = setup().await;
    let created = s.invite("invited@example.test").await.unwrap();
    assert!(created.invite_token.starts_with("pci_"));
    let accepted = s.accept(&created.invite_token).await.unwrap();

    let user = accepted.user.unwrap();
    assert_eq!(user.logins, vec!["email:invited@example.test"]);
    assert_eq!(user.display_name, "Invited");
    let assignment = accepted.assignment.unwrap();
    assert_eq!(assignment.user_id, user.user_id);
    assert_eq!(assignment.role_id, s.a.role.to_string());
    assert_eq!(assignment.org_node_id, s.a.child.to_string());

    let login = AuthenticationClient::new(s.channel.clone())
        .authenticate(AuthenticateRequest {
            tenant_id: s.a.tenant.to_string(),
            method: Some(authenticate_request::Method::Password(
                PasswordCredentials {
                    login: Some(password_credentials::Login::Email(
                        "invited@example.test".into(),
                    )),
                    password: PASSWORD.into(),
                },
            )),
        })
        .await;
    assert!(login.is_ok(), "{login:?}");
    let mut invitee = s.a.clone();
    invitee.user = Uuid::parse_str(&user.user_id).unwrap();
    assert_eq!(s.check(&invitee, s.a.child).await, DecisionReason::Allowed);
    assert_eq!(
        s.check(&invitee, s.a.root).await,
        DecisionReason::NoMatchingAssignment
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn acceptance_and_creation_are_audited_without_the_token() {
    let s = setup().await;
    let created = s.invite("audit@example.test").await.unwrap();
    let invitation = invitation_of(&created).invitation_id.clone();
    let accepted = s.accept(&created.invite_token).await.unwrap();
    let user = accepted.user.unwrap().user_id;
    for action in ["invitation.created", "invitation.accepted"] {
        assert!(
            s.audited(
                1,
                "action_key = $1 AND entity_ref = $2",
                &[action, &invitation]
            )
            .await,
            "{action}"
        );
    }
    // The invitee acts as the user they became.
    for action in ["user.created", "assignment.created", "invitation.accepted"] {
        assert!(
            s.audited(1, "action_key = $1 AND actor_id = $2", &[action, &user])
                .await,
            "{action}"
        );
    }
    let secret = &created.invite_token[created.invite_token.len() - 43..];
    assert!(
        s.audited(0, "payload_json::text LIKE '%' || $1 || '%'", &[secret])
            .await
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_invitation_is_accepted_once() {
    let s = setup().await;
    let created = s.invite("once@example.test").await.unwrap();
    s.accept(&created.invite_token).await.unwrap();
    assert_refused(
        s.accept(&created.invite_token).await,
        Code::Unauthenticated,
        "invite_token",
    );
    assert_eq!(s.users_with_login("once@example.test").await, 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_accepts_create_exactly_one_user() {
    let s = setup().await;
    let created = s.invite("race@example.test").await.unwrap();
    let attempts = (0..8).map(|_| s.accept(&created.invite_token));
    let outcomes = futures_util::future::join_all(attempts).await;
    let accepted = outcomes.iter().filter(|o| o.is_ok()).count();
    assert_eq!(accepted, 1, "{outcomes:?}");
    // Each loser waited for the winner's lock and then saw it used (not
    // a clash on the login, which is what racing past the lock gives).
    for outcome in outcomes.iter().filter_map(|o| o.as_ref().err()) {
        assert_eq!(outcome.code(), Code::Unauthenticated, "{outcome:?}");
    }
    assert_eq!(s.users_with_login("race@example.test").await, 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_expired_invitation_cannot_be_accepted() {
    let s = setup().await;
    let created = s.invite("late@example.test").await.unwrap();
    s.expire(invitation_of(&created)).await;
    assert_refused(
        s.accept(&created.invite_token).await,
        Code::Unauthenticated,
        "invite_token",
    );
    assert_eq!(s.users_with_login("late@example.test").await, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn no_one_joins_a_suspended_tenant() {
    let s = setup().await;
    let created = s.invite("suspended@example.test").await.unwrap();
    s.set_tenant_active(s.a.tenant, false).await;
    assert_refused(
        s.accept(&created.invite_token).await,
        Code::Unauthenticated,
        "invite_token",
    );
    s.set_tenant_active(s.a.tenant, true).await;
    s.accept(&created.invite_token).await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_revoked_invitation_cannot_be_accepted() {
    let s = setup().await;
    let created = s.invite("revoked@example.test").await.unwrap();
    let revoked = s.revoke_invitation(invitation_of(&created)).await.unwrap();
    assert!(revoked.revoked_at.is_some());
    assert_refused(
        s.accept(&created.invite_token).await,
        Code::Unauthenticated,
        "invite_token",
    );
    assert_eq!(s.users_with_login("revoked@example.test").await, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn revoking_twice_changes_nothing_and_an_accepted_one_cannot_be_revoked() {
    let s = setup().await;
    let created = s.invite("twice@example.test").await.unwrap();
    let first = s.revoke_invitation(invitation_of(&created)).await.unwrap();
    let second = s.revoke_invitation(invitation_of(&created)).await.unwrap();
    assert_eq!(first, second);
    let invitation = invitation_of(&created).invitation_id.clone();
    assert!(
        s.audited(
            1,
            "action_key = 'invitation.revoked' AND entity_ref = $1",
            &[&invitation]
        )
        .await
    );

    let accepted = s.invite("kept@example.test").await.unwrap();
    s.accept(&accepted.invite_token).await.unwrap();
    assert_refused(
        s.revoke_invitation(invitation_of(&accepted)).await,
        Code::FailedPrecondition,
        "invitation_id",
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_wrong_or_malformed_token_is_unauthenticated_and_creates_nothing() {
    let s = setup().await;
    let created = s.invite("guess@example.test").await.unwrap();
    let token = &created.invite_token;
    let last = if token.ends_with('A') { "B" } else { "A" };
    let wrong = format!("{}{last}", &token[..token.len() - 1]);
    let unknown = format!("pci_{}{}", Uuid::new_v4().simple(), &token[36..]);
    for bad in [
        wrong.as_str(),
        unknown.as_str(),
        "pci_garbage",
        "not a token",
    ] {
        assert_refused(s.accept(bad).await, Code::Unauthenticated, "invite_token");
    }
    assert_eq!(s.users_with_login("guess@example.test").await, 0);
    // The right token still works.
    s.accept(token).await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_short_password_is_refused_before_the_token_is_used() {
    let s = setup().await;
    let created = s.invite("short@example.test").await.unwrap();
    let refused = s
        .admin()
        .accept_invitation(AcceptInvitationRequest {
            invite_token: created.invite_token.clone(),
            password: "short".into(),
            display_name: String::new(),
        })
        .await;
    assert_refused(refused, Code::InvalidArgument, "password");
    let accepted = s.accept(&created.invite_token).await.unwrap();
    assert_eq!(accepted.user.unwrap().display_name, "Invited");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_display_name_defaults_to_the_invited_login() {
    let s = setup().await;
    let created = s
        .invite_with(CreateInvitationRequest {
            phone: "+33612345678".into(),
            ..s.invitation_request()
        })
        .await
        .unwrap();
    assert_eq!(invitation_of(&created).phone, "+33612345678");
    let accepted = s
        .admin()
        .accept_invitation(AcceptInvitationRequest {
            invite_token: created.invite_token.clone(),
            password: PASSWORD.into(),
            display_name: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    let user = accepted.user.unwrap();
    assert_eq!(user.display_name, "+33612345678");
    assert_eq!(user.logins, vec!["phone:+33612345678"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_repeat_with_the_same_key_returns_the_invitation_without_a_token() {
    let s = setup().await;
    let request = CreateInvitationRequest {
        email: "retry@example.test".into(),
        idempotency_key: "invite-retry-1".into(),
        ..s.invitation_request()
    };
    let first = s.invite_with(request.clone()).await.unwrap();
    let again = s.invite_with(request).await.unwrap();
    assert_eq!(first.invitation, again.invitation);
    assert!(!first.invite_token.is_empty());
    assert!(again.invite_token.is_empty());
    assert_eq!(s.pending(100).await.len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_pending_list_leaves_out_accepted_revoked_and_expired_ones() {
    let s = setup().await;
    let mut kept = Vec::new();
    for n in 0..5 {
        let created = s.invite(&format!("pending{n}@example.test")).await.unwrap();
        kept.push(invitation_of(&created).clone());
    }
    let accepted = s.invite("accepted@example.test").await.unwrap();
    s.accept(&accepted.invite_token).await.unwrap();
    let revoked = s.invite("revoked@example.test").await.unwrap();
    s.revoke_invitation(invitation_of(&revoked)).await.unwrap();
    let expired = s.invite("expired@example.test").await.unwrap();
    s.expire(invitation_of(&expired)).await;

    // Pages of 2 cross boundaries; oldest first.
    assert_eq!(s.pending(2).await, kept);
}

#[tokio::test(flavor = "multi_thread")]
async fn inviting_an_existing_login_already_exists() {
    let s = setup().await;
    let created = s.invite("member@example.test").await.unwrap();
    s.accept(&created.invite_token).await.unwrap();
    assert_refused(
        s.invite("Member@Example.test").await,
        Code::AlreadyExists,
        "email",
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn every_invalid_field_is_named() {
    let s = setup().await;
    let base = || CreateInvitationRequest {
        email: "valid@example.test".into(),
        ..s.invitation_request()
    };
    let cases = [
        (
            CreateInvitationRequest {
                email: String::new(),
                ..base()
            },
            "email",
        ),
        (
            CreateInvitationRequest {
                phone: "+33612345678".into(),
                ..base()
            },
            "phone",
        ),
        (
            CreateInvitationRequest {
                email: "not-an-email".into(),
                ..base()
            },
            "email",
        ),
        (
            CreateInvitationRequest {
                role_id: "nope".into(),
                ..base()
            },
            "role_id",
        ),
        (
            CreateInvitationRequest {
                org_node_id: String::new(),
                ..base()
            },
            "org_node_id",
        ),
        (
            CreateInvitationRequest {
                expires_at: Some(timestamp(Utc::now() - Duration::minutes(1))),
                ..base()
            },
            "expires_at",
        ),
        (
            CreateInvitationRequest {
                expires_at: Some(timestamp(Utc::now() + Duration::days(31))),
                ..base()
            },
            "expires_at",
        ),
        (
            CreateInvitationRequest {
                idempotency_key: "no spaces".into(),
                ..base()
            },
            "idempotency_key",
        ),
    ];
    for (request, field) in cases {
        assert_refused(s.invite_with(request).await, Code::InvalidArgument, field);
    }
    assert!(s.pending(100).await.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn another_tenants_role_or_node_is_not_found() {
    let s = setup().await;
    let cases = [
        (
            CreateInvitationRequest {
                role_id: s.b.role.to_string(),
                ..s.invitation_request()
            },
            "role_id",
        ),
        (
            CreateInvitationRequest {
                org_node_id: s.b.child.to_string(),
                ..s.invitation_request()
            },
            "org_node_id",
        ),
    ];
    for (request, field) in cases {
        let request = CreateInvitationRequest {
            email: "foreign@example.test".into(),
            ..request
        };
        assert_refused(s.invite_with(request).await, Code::NotFound, field);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn another_tenants_invitation_cannot_be_revoked_or_listed() {
    let s = setup().await;
    let created = s.invite("ours@example.test").await.unwrap();
    let theirs = Invitation {
        tenant_id: s.b.tenant.to_string(),
        ..invitation_of(&created).clone()
    };
    assert_refused(
        s.revoke_invitation(&theirs).await,
        Code::NotFound,
        "tenant_id",
    );
    let listed = s
        .admin()
        .list_invitations(bearer(
            ListInvitationsRequest {
                tenant_id: s.b.tenant.to_string(),
                ..Default::default()
            },
            &s.token,
        ))
        .await;
    assert_refused(listed, Code::NotFound, "tenant_id");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_user_invites_and_lists_only_where_granted() {
    let s = setup().await;
    s.give_user_at_child(&["admin.invitations.write", "admin.invitations.read"])
        .await;
    let user = s.user_token(&s.a);
    let request = |node: Uuid, email: &str| {
        bearer(
            CreateInvitationRequest {
                email: email.into(),
                org_node_id: node.to_string(),
                ..s.invitation_request()
            },
            &user,
        )
    };
    s.admin()
        .create_invitation(request(s.a.child, "mine@example.test"))
        .await
        .unwrap();
    let refused = s
        .admin()
        .create_invitation(request(s.a.root, "above@example.test"))
        .await;
    assert_eq!(refused.unwrap_err().code(), Code::PermissionDenied);

    let list = |node: Option<Uuid>| {
        bearer(
            ListInvitationsRequest {
                tenant_id: s.a.tenant.to_string(),
                org_node_id: node.map(|n| n.to_string()).unwrap_or_default(),
                ..Default::default()
            },
            &user,
        )
    };
    let mine = s
        .admin()
        .list_invitations(list(Some(s.a.child)))
        .await
        .unwrap()
        .into_inner();
    let mine: Vec<_> = mine
        .invitations
        .iter()
        .filter(|i| not_the_fixtures(i))
        .collect();
    assert_eq!(mine.len(), 1);
    assert_eq!(mine[0].email, "mine@example.test");
    let whole_tenant = s.admin().list_invitations(list(None)).await;
    assert_refused(whole_tenant, Code::InvalidArgument, "org_node_id");
    let above = s.admin().list_invitations(list(Some(s.a.root))).await;
    assert_eq!(above.unwrap_err().code(), Code::PermissionDenied);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_user_revokes_only_where_granted() {
    let s = setup().await;
    s.give_user_at_child(&["admin.invitations.write"]).await;
    let user = s.user_token(&s.a);
    let at_root = s
        .invite_with(CreateInvitationRequest {
            email: "root@example.test".into(),
            org_node_id: s.a.root.to_string(),
            ..s.invitation_request()
        })
        .await
        .unwrap();
    let at_child = s.invite("child@example.test").await.unwrap();
    let revoke = |invitation: &Invitation| {
        let request = bearer(
            RevokeInvitationRequest {
                tenant_id: invitation.tenant_id.clone(),
                invitation_id: invitation.invitation_id.clone(),
                dry_run: false,
            },
            &user,
        );
        let mut client = s.admin();
        async move { client.revoke_invitation(request).await }
    };
    revoke(invitation_of(&at_child)).await.unwrap();
    let refused = revoke(invitation_of(&at_root)).await.unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied);
    let unknown = Invitation {
        invitation_id: Uuid::new_v4().to_string(),
        ..invitation_of(&at_child).clone()
    };
    assert_refused(revoke(&unknown).await, Code::NotFound, "invitation_id");
}

fn timestamp(time: chrono::DateTime<Utc>) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: time.timestamp(),
        nanos: 0,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_accepts_hash_one_password() {
    let s = setup().await;
    let created = s.invite("one-hash@example.test").await.unwrap();
    let before = s.server.passwords.hashings();
    let attempts = (0..8).map(|_| s.accept(&created.invite_token));
    let outcomes = futures_util::future::join_all(attempts).await;
    assert_eq!(
        outcomes.iter().filter(|o| o.is_ok()).count(),
        1,
        "{outcomes:?}"
    );
    assert_eq!(s.server.passwords.hashings() - before, 1);
}
