//! Delegated administration: a user who may administer a subtree can hand
//! out only what they hold there, and keeps administering it while a node
//! is inactive.

use portcullis::db::RlsContext;
use portcullis::proto::v1::{
    AssignRoleRequest, CreateInvitationRequest, MoveOrgNodeRequest, OrgNodeRef,
};
use tonic::Code;
use uuid::Uuid;

use super::{Setup, id, setup};
use crate::support::fixtures::{batch, count};
use crate::support::services::bearer;

impl Setup {
    /// A role of tenant A granting only `capability` (added to the
    /// catalogue), optionally held by a second user at `held_at`.
    async fn strong_role(&self, capability: &str, held_at: Option<Uuid>) -> Uuid {
        let (role, other, t) = (Uuid::new_v4(), Uuid::new_v4(), self.a.tenant);
        let holder = match held_at {
            Some(node) => format!(
                "INSERT INTO auth.users (user_id, tenant_id, display_label) VALUES ('{other}', '{t}', 'Other');
                 INSERT INTO auth.org_assignments (tenant_id, user_id, role_id, org_node_id)
                     VALUES ('{t}', '{other}', '{role}', '{node}');"
            ),
            None => String::new(),
        };
        batch(
            &self.test.db(),
            &RlsContext::operator().with_tenant(t),
            &format!(
                "INSERT INTO auth.capabilities (cap_key) VALUES ('{capability}') ON CONFLICT DO NOTHING;
                 INSERT INTO auth.roles (role_id, tenant_id, role_key, role_label) VALUES ('{role}', '{t}', 'strong-{role}', 'Strong');
                 INSERT INTO auth.role_capabilities (tenant_id, role_id, cap_id)
                     SELECT '{t}', '{role}', cap_id FROM auth.capabilities WHERE cap_key = '{capability}';
                 {holder}"
            ),
        )
        .await
        .unwrap();
        role
    }

    async fn assign_as(&self, token: &str, role: Uuid, node: Uuid) -> Result<(), tonic::Status> {
        self.admin()
            .assign_role(bearer(
                AssignRoleRequest {
                    tenant_id: self.a.tenant.to_string(),
                    user_id: self.a.user.to_string(),
                    role_id: role.to_string(),
                    org_node_id: node.to_string(),
                    ..Default::default()
                },
                token,
            ))
            .await
            .map(drop)
    }

    async fn assignments_of_role(&self, role: Uuid) -> i64 {
        count(
            &self.test.db(),
            &RlsContext::tenant(self.a.tenant),
            &format!("auth.org_assignments WHERE role_id = '{role}'"),
        )
        .await
        .unwrap()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn delegate_cannot_assign_a_role_stronger_than_its_own() {
    let s = setup().await;
    s.give_user_at_child(&["admin.assignments.write"]).await;
    let strong = s.strong_role("payments.approve", None).await;
    let user = s.user_token(&s.a);
    let refused = s.assign_as(&user, strong, s.a.child).await.unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied, "{refused:?}");
    assert!(refused.message().starts_with("role_id:"), "{refused:?}");
    assert!(
        refused.message().contains("payments.approve"),
        "{refused:?}"
    );
    assert_eq!(s.assignments_of_role(strong).await, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn delegate_assigns_a_role_whose_capabilities_it_holds_there() {
    let s = setup().await;
    s.give_user_at_child(&["admin.assignments.write"]).await;
    // The fixture role's capability is held at the root, so at the child.
    let user = s.user_token(&s.a);
    s.assign_as(&user, s.a.role, s.a.child).await.unwrap();
    // A service keeps its permission-based rule.
    let strong = s.strong_role("payments.approve", None).await;
    s.assign_as(&s.token, strong, s.a.child).await.unwrap();
    assert_eq!(s.assignments_of_role(strong).await, 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn delegate_cannot_invite_into_a_role_stronger_than_its_own() {
    let s = setup().await;
    s.give_user_at_child(&["admin.invitations.write"]).await;
    let strong = s.strong_role("payments.approve", None).await;
    let user = s.user_token(&s.a);
    let refused = s
        .admin()
        .create_invitation(bearer(
            CreateInvitationRequest {
                tenant_id: s.a.tenant.to_string(),
                email: "escalate@example.test".into(),
                role_id: strong.to_string(),
                org_node_id: s.a.child.to_string(),
                ..Default::default()
            },
            &user,
        ))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied, "{refused:?}");
    assert!(refused.message().starts_with("role_id:"), "{refused:?}");
    let pending = count(
        &s.test.db(),
        &RlsContext::tenant(s.a.tenant),
        &format!("auth.invitations WHERE target_role_id = '{strong}'"),
    )
    .await
    .unwrap();
    assert_eq!(pending, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn delegate_cannot_move_a_subtree_under_capabilities_it_does_not_hold() {
    let s = setup().await;
    s.give_user_at_child(&["admin.org.write"]).await;
    let user = s.user_token(&s.a);
    let under_strong = id(&s
        .create(&user, s.a.tenant, Some(s.a.child), "Strong")
        .await
        .unwrap());
    let plain = id(&s
        .create(&user, s.a.tenant, Some(s.a.child), "Plain")
        .await
        .unwrap());
    let moved = id(&s
        .create(&user, s.a.tenant, Some(s.a.child), "Moved")
        .await
        .unwrap());
    // Someone else approves payments at one of the delegate's nodes.
    s.strong_role("payments.approve", Some(under_strong)).await;
    let move_as = |parent: Uuid| {
        let request = bearer(
            MoveOrgNodeRequest {
                tenant_id: s.a.tenant.to_string(),
                org_node_id: moved.to_string(),
                new_parent_org_node_id: parent.to_string(),
                dry_run: false,
            },
            &user,
        );
        let mut client = s.admin();
        async move { client.move_org_node(request).await }
    };
    let refused = move_as(under_strong).await.unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied, "{refused:?}");
    assert!(
        refused.message().starts_with("new_parent_org_node_id:"),
        "{refused:?}"
    );
    assert!(
        refused.message().contains("payments.approve"),
        "{refused:?}"
    );
    // Under a node where nobody holds more than the delegate: allowed.
    move_as(plain).await.unwrap();
    // A service may place it anywhere in its tenant.
    s.move_under(moved, under_strong).await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_delegate_reactivates_the_node_it_deactivated() {
    let s = setup().await;
    s.give_user_at_child(&["admin.org.write"]).await;
    let user = s.user_token(&s.a);
    let node = || {
        bearer(
            OrgNodeRef {
                tenant_id: s.a.tenant.to_string(),
                org_node_id: s.a.child.to_string(),
                dry_run: false,
            },
            &user,
        )
    };
    let deactivated = s.admin().deactivate_org_node(node()).await.unwrap();
    assert!(!deactivated.into_inner().active);
    let reactivated = s.admin().reactivate_org_node(node()).await.unwrap();
    assert!(reactivated.into_inner().active);
}
