//! Roles and assignments.

use chrono::Utc;
use portcullis::proto::v1::{
    AssignRoleRequest, Assignment, CreateRoleRequest, DecisionReason, EndAssignmentRequest,
    ListAssignmentsRequest, ListRolesRequest, RenameRoleRequest, Role, SetRoleCapabilitiesRequest,
};
use tonic::{Code, Status};
use uuid::Uuid;

use super::{Setup, capability_of, setup};
use crate::support::fixtures::TenantWorld;
use crate::support::services::bearer;

impl Setup {
    async fn create_role(&self, key: &str, capabilities: &[String]) -> Result<Role, Status> {
        self.admin()
            .create_role(bearer(
                CreateRoleRequest {
                    tenant_id: self.a.tenant.to_string(),
                    key: key.into(),
                    label: "A role".into(),
                    capabilities: capabilities.to_vec(),
                    idempotency_key: String::new(),
                    dry_run: false,
                },
                &self.token,
            ))
            .await
            .map(|r| r.into_inner())
    }

    async fn set_capabilities(&self, role: &Role, capabilities: &[String]) -> Result<Role, Status> {
        self.admin()
            .set_role_capabilities(bearer(
                SetRoleCapabilitiesRequest {
                    tenant_id: self.a.tenant.to_string(),
                    role_id: role.role_id.clone(),
                    capabilities: capabilities.to_vec(),
                    dry_run: false,
                },
                &self.token,
            ))
            .await
            .map(|r| r.into_inner())
    }

    async fn assign(
        &self,
        user: &TenantWorld,
        role: &str,
        node: Uuid,
    ) -> Result<Assignment, Status> {
        self.admin()
            .assign_role(bearer(
                AssignRoleRequest {
                    tenant_id: self.a.tenant.to_string(),
                    user_id: user.user.to_string(),
                    role_id: role.into(),
                    org_node_id: node.to_string(),
                    start_utc: None,
                    end_utc: None,
                    idempotency_key: String::new(),
                    dry_run: false,
                },
                &self.token,
            ))
            .await
            .map(|r| r.into_inner())
    }

    async fn end(&self, assignment: &Assignment) -> Result<Assignment, Status> {
        self.admin()
            .end_assignment(bearer(
                EndAssignmentRequest {
                    tenant_id: self.a.tenant.to_string(),
                    assignment_id: assignment.assignment_id.clone(),
                    end_utc: None,
                    dry_run: false,
                },
                &self.token,
            ))
            .await
            .map(|r| r.into_inner())
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_role_is_created_with_its_capabilities_and_listed() {
    let s = setup().await;
    let created = s
        .create_role("treasurer", &[capability_of(&s.a)])
        .await
        .unwrap();
    assert_eq!(created.capabilities, vec![capability_of(&s.a)]);
    let listed = s
        .admin()
        .list_roles(bearer(
            ListRolesRequest {
                tenant_id: s.a.tenant.to_string(),
            },
            &s.token,
        ))
        .await
        .unwrap()
        .into_inner()
        .roles;
    assert!(listed.contains(&created), "{listed:?}");
    assert!(
        s.audited(
            1,
            "action_key = 'role.created' AND entity_ref = $1",
            &[&created.role_id]
        )
        .await
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn setting_the_same_capabilities_twice_records_one_change() {
    let s = setup().await;
    let role = s.create_role("viewer", &[]).await.unwrap();
    let wanted = [capability_of(&s.a), capability_of(&s.b)];
    let first = s.set_capabilities(&role, &wanted).await.unwrap();
    let second = s.set_capabilities(&role, &wanted).await.unwrap();
    assert_eq!(first, second);
    assert_eq!(first.capabilities.len(), 2);
    assert!(
        s.audited(
            1,
            "action_key = 'role.capabilities_set' AND entity_ref = $1 \
             AND jsonb_array_length(payload_json->'after'->'capabilities') = 2",
            &[&role.role_id],
        )
        .await
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn renaming_a_role_keeps_its_key_and_capabilities_and_records_one_change() {
    let s = setup().await;
    let role = s
        .create_role("clerk", &[capability_of(&s.a)])
        .await
        .unwrap();
    let rename = |tenant: uuid::Uuid, label: &str| {
        let request = bearer(
            RenameRoleRequest {
                tenant_id: tenant.to_string(),
                role_id: role.role_id.clone(),
                label: label.into(),
                dry_run: false,
            },
            &s.token,
        );
        let mut client = s.admin();
        async move { client.rename_role(request).await }
    };
    let renamed = rename(s.a.tenant, "Senior clerk")
        .await
        .unwrap()
        .into_inner();
    assert_eq!(renamed.label, "Senior clerk");
    assert_eq!(renamed.key, role.key);
    assert_eq!(renamed.capabilities, role.capabilities);
    let again = rename(s.a.tenant, "Senior clerk")
        .await
        .unwrap()
        .into_inner();
    assert_eq!(again, renamed);
    assert!(
        s.audited(
            1,
            "action_key = 'role.renamed' AND entity_ref = $1 \
             AND payload_json->'before'->>'label' = 'A role'",
            &[&role.role_id],
        )
        .await
    );

    let blank = rename(s.a.tenant, "").await.unwrap_err();
    assert_eq!(blank.code(), Code::InvalidArgument);
    assert!(blank.message().starts_with("label"), "{blank:?}");
    let foreign = rename(s.b.tenant, "Theirs").await.unwrap_err();
    assert_eq!(foreign.code(), Code::NotFound);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unknown_capability_is_named_by_its_position() {
    let s = setup().await;
    let refused = s
        .create_role("x", &[capability_of(&s.a), "no.such.capability".into()])
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::InvalidArgument);
    assert!(
        refused.message().starts_with("capabilities[1]"),
        "{}",
        refused.message()
    );
    // Nothing of the refused call was written.
    assert!(s.audited(0, "action_key = 'role.created'", &[]).await);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_second_role_with_the_same_key_already_exists() {
    let s = setup().await;
    s.create_role("auditor", &[]).await.unwrap();
    let refused = s.create_role("auditor", &[]).await.unwrap_err();
    assert_eq!(refused.code(), Code::AlreadyExists);
    assert!(
        refused.message().starts_with("key"),
        "{}",
        refused.message()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn users_may_not_manage_roles() {
    let s = setup().await;
    let refused = s
        .admin()
        .create_role(bearer(
            CreateRoleRequest {
                tenant_id: s.a.tenant.to_string(),
                key: "mine".into(),
                label: "Mine".into(),
                capabilities: Vec::new(),
                idempotency_key: String::new(),
                dry_run: false,
            },
            &s.user_token(&s.a),
        ))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_assignment_allows_until_it_is_ended_and_is_kept_after() {
    let s = setup().await;
    // A second world's user has nothing in tenant A; use tenant A's user on
    // a new root outside its fixture assignment.
    let elsewhere = s
        .create(&s.token, s.a.tenant, None, "Elsewhere")
        .await
        .unwrap();
    let node = super::id(&elsewhere);
    let role = s
        .create_role("treasurer", &[capability_of(&s.a)])
        .await
        .unwrap();
    assert_eq!(
        s.check(&s.a, node).await,
        DecisionReason::NoMatchingAssignment
    );

    let assignment = s.assign(&s.a, &role.role_id, node).await.unwrap();
    assert_eq!(s.check(&s.a, node).await, DecisionReason::Allowed);

    let ended = s.end(&assignment).await.unwrap();
    assert!(ended.end_utc.is_some());
    assert_eq!(
        s.check(&s.a, node).await,
        DecisionReason::NoMatchingAssignment
    );

    let kept = s
        .admin()
        .list_assignments(bearer(
            ListAssignmentsRequest {
                tenant_id: s.a.tenant.to_string(),
                org_node_id: node.to_string(),
                ..Default::default()
            },
            &s.token,
        ))
        .await
        .unwrap()
        .into_inner()
        .assignments;
    assert_eq!(kept, vec![ended]);
    for action in ["assignment.created", "assignment.ended"] {
        assert!(
            s.audited(
                1,
                "action_key = $1 AND entity_ref = $2",
                &[action, &assignment.assignment_id]
            )
            .await,
            "{action}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn another_tenants_user_cannot_be_assigned_and_is_not_found() {
    let s = setup().await;
    let refused = s
        .assign(&s.b, &Uuid::new_v4().to_string(), s.a.root)
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::NotFound);
    let role = s.create_role("r", &[]).await.unwrap();
    let refused = s.assign(&s.b, &role.role_id, s.a.root).await.unwrap_err();
    assert_eq!(refused.code(), Code::NotFound);
    assert!(
        refused.message().starts_with("user_id"),
        "{}",
        refused.message()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_assignment_ending_before_it_starts_is_invalid() {
    let s = setup().await;
    let role = s.create_role("r", &[]).await.unwrap();
    let now = Utc::now();
    let refused = s
        .admin()
        .assign_role(bearer(
            AssignRoleRequest {
                tenant_id: s.a.tenant.to_string(),
                user_id: s.a.user.to_string(),
                role_id: role.role_id,
                org_node_id: s.a.root.to_string(),
                start_utc: Some(prost_types::Timestamp {
                    seconds: now.timestamp(),
                    nanos: 0,
                }),
                end_utc: Some(prost_types::Timestamp {
                    seconds: now.timestamp() - 60,
                    nanos: 0,
                }),
                idempotency_key: String::new(),
                dry_run: false,
            },
            &s.token,
        ))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::InvalidArgument);
    assert!(
        refused.message().starts_with("end_utc"),
        "{}",
        refused.message()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_repeated_create_with_the_same_key_returns_the_first_answer() {
    let s = setup().await;
    let request = || {
        bearer(
            CreateRoleRequest {
                tenant_id: s.a.tenant.to_string(),
                key: "retried".into(),
                label: "Retried".into(),
                capabilities: vec![capability_of(&s.a)],
                idempotency_key: "7d1c-retry".into(),
                dry_run: false,
            },
            &s.token,
        )
    };
    let first = s.admin().create_role(request()).await.unwrap().into_inner();
    let again = s.admin().create_role(request()).await.unwrap().into_inner();
    assert_eq!(first, again);
    assert!(s.audited(1, "action_key = 'role.created'", &[]).await);
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_repeats_with_one_key_create_once() {
    let s = std::sync::Arc::new(setup().await);
    let mut calls = Vec::new();
    for _ in 0..8 {
        let s = s.clone();
        calls.push(tokio::spawn(async move {
            s.admin()
                .create_org_node(bearer(
                    portcullis::proto::v1::CreateOrgNodeRequest {
                        tenant_id: s.a.tenant.to_string(),
                        parent_org_node_id: s.a.root.to_string(),
                        node_type: "site".into(),
                        label: "Once".into(),
                        idempotency_key: "one-site".into(),
                        dry_run: false,
                    },
                    &s.token,
                ))
                .await
                .unwrap()
                .into_inner()
        }));
    }
    let mut ids = std::collections::HashSet::new();
    for call in calls {
        ids.insert(call.await.unwrap().org_node_id);
    }
    assert_eq!(ids.len(), 1, "{ids:?}");
    assert!(s.audited(1, "action_key = 'org.node_created'", &[]).await);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_key_reused_for_a_different_request_is_refused() {
    let s = setup().await;
    let request = |label: &str| {
        bearer(
            portcullis::proto::v1::CreateOrgNodeRequest {
                tenant_id: s.a.tenant.to_string(),
                parent_org_node_id: s.a.root.to_string(),
                node_type: "site".into(),
                label: label.into(),
                idempotency_key: "same-key".into(),
                dry_run: false,
            },
            &s.token,
        )
    };
    s.admin().create_org_node(request("First")).await.unwrap();
    let refused = s
        .admin()
        .create_org_node(request("Second"))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::InvalidArgument);
    assert!(
        refused.message().starts_with("idempotency_key"),
        "{}",
        refused.message()
    );
}
