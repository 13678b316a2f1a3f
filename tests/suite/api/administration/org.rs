//! The org tree.

use portcullis::proto::v1::{
    CreateOrgNodeRequest, DecisionReason, GetOrgSubtreeRequest, MoveOrgNodeRequest, OrgNodeRef,
    RenameOrgNodeRequest,
};
use tonic::{Code, Status};
use uuid::Uuid;

use super::{id, setup};
use crate::support::services::{bearer, create_service, token_of};

#[tokio::test(flavor = "multi_thread")]
async fn a_service_builds_a_tree_and_reads_it_back() {
    let s = setup().await;
    let root = s
        .create(&s.token, s.a.tenant, None, "Holding")
        .await
        .unwrap();
    let site = s
        .create(&s.token, s.a.tenant, Some(id(&root)), "Lyon")
        .await
        .unwrap();
    assert_eq!(site.parent_org_node_id, root.org_node_id);
    assert!(site.active);
    let subtree = s
        .admin()
        .get_org_subtree(bearer(
            GetOrgSubtreeRequest {
                tenant_id: s.a.tenant.to_string(),
                org_node_id: root.org_node_id.clone(),
                max_nodes: 0,
            },
            &s.token,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(subtree.nodes, vec![root, site]);
    assert!(!subtree.truncated);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rename_is_audited_with_the_label_before_and_after() {
    let s = setup().await;
    let renamed = s
        .rename(&s.token, s.a.tenant, s.a.child, "Paris Treasury")
        .await
        .unwrap();
    assert_eq!(renamed.label, "Paris Treasury");
    assert!(
        s.audited(
            1,
            "action_key = 'org.node_renamed' AND entity_ref = $1 AND actor_kind_code = 'service' \
             AND payload_json->'before'->>'label' = 'Child' AND payload_json->'after'->>'label' = $2",
            &[&s.a.child.to_string(), "Paris Treasury"],
        )
        .await
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn setting_what_is_already_set_changes_nothing_and_records_nothing() {
    let s = setup().await;
    let request = || {
        bearer(
            OrgNodeRef {
                tenant_id: s.a.tenant.to_string(),
                org_node_id: s.a.child.to_string(),
                dry_run: false,
            },
            &s.token,
        )
    };
    assert!(
        !s.admin()
            .deactivate_org_node(request())
            .await
            .unwrap()
            .into_inner()
            .active
    );
    assert!(
        !s.admin()
            .deactivate_org_node(request())
            .await
            .unwrap()
            .into_inner()
            .active
    );
    assert!(
        s.audited(
            1,
            "action_key = 'org.node_deactivated' AND entity_ref = $1",
            &[&s.a.child.to_string()],
        )
        .await
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_move_under_its_own_descendant_is_refused() {
    let s = setup().await;
    let refused = s.move_under(s.a.root, s.a.child).await.unwrap_err();
    assert_eq!(refused.code(), Code::FailedPrecondition);
    assert!(
        refused.message().starts_with("new_parent_org_node_id"),
        "{}",
        refused.message()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn another_tenants_node_answers_exactly_like_a_node_that_does_not_exist() {
    let s = setup().await;
    // Naming tenant A, with tenant B's node.
    let foreign = s
        .rename(&s.token, s.a.tenant, s.b.child, "x")
        .await
        .unwrap_err();
    let missing = s
        .rename(&s.token, s.a.tenant, Uuid::new_v4(), "x")
        .await
        .unwrap_err();
    assert_eq!(
        (foreign.code(), foreign.message()),
        (missing.code(), missing.message())
    );
    assert_eq!(foreign.code(), Code::NotFound);
    // Naming tenant B itself.
    let foreign = s
        .rename(&s.token, s.b.tenant, s.b.child, "x")
        .await
        .unwrap_err();
    let missing = s
        .rename(&s.token, Uuid::new_v4(), s.b.child, "x")
        .await
        .unwrap_err();
    assert_eq!(
        (foreign.code(), foreign.message()),
        (missing.code(), missing.message())
    );
    // A parent in tenant B is a parent that does not exist.
    let foreign = s
        .create(&s.token, s.a.tenant, Some(s.b.root), "x")
        .await
        .unwrap_err();
    assert_eq!(foreign.code(), Code::NotFound);
    assert!(
        s.audited(
            0,
            "action_key LIKE 'org.%' AND tenant_id = $1::uuid",
            &[&s.b.tenant.to_string()]
        )
        .await
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_user_changes_only_where_admin_org_write_is_granted() {
    let s = setup().await;
    // The user of tenant A gets admin.org.write at the child only.
    s.give_user_at_child(&["admin.org.write"]).await;
    let user = s.user_token(&s.a);
    s.rename(&user, s.a.tenant, s.a.child, "Mine")
        .await
        .unwrap();
    let refused = s
        .rename(&user, s.a.tenant, s.a.root, "Not mine")
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied);
    let refused = s
        .create(&user, s.a.tenant, None, "A root")
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied);
    assert!(
        s.audited(
            1,
            "action_key = 'org.node_renamed' AND actor_kind_code = 'user' AND actor_id = $1",
            &[&s.a.user.to_string()],
        )
        .await
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_subtree_move_changes_check_answers_at_once() {
    let s = setup().await;
    // The user holds the test capability at the root; a new root elsewhere
    // is outside it until moved under the child.
    let other = s
        .create(&s.token, s.a.tenant, None, "Elsewhere")
        .await
        .unwrap();
    assert_eq!(
        s.check(&s.a, id(&other)).await,
        DecisionReason::NoMatchingAssignment
    );
    s.move_under(id(&other), s.a.child).await.unwrap();
    assert_eq!(s.check(&s.a, id(&other)).await, DecisionReason::Allowed);
}

#[tokio::test(flavor = "multi_thread")]
async fn validation_errors_name_their_field() {
    let s = setup().await;
    let field_of = |status: Status| {
        assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
        status.message().split(':').next().unwrap().to_owned()
    };
    let bad_label = s.create(&s.token, s.a.tenant, None, " ").await.unwrap_err();
    assert_eq!(field_of(bad_label), "label");
    let bad_type = s
        .admin()
        .create_org_node(bearer(
            CreateOrgNodeRequest {
                tenant_id: s.a.tenant.to_string(),
                node_type: "Site".into(),
                label: "x".into(),
                ..Default::default()
            },
            &s.token,
        ))
        .await
        .unwrap_err();
    assert_eq!(field_of(bad_type), "node_type");
    let bad_tenant = s
        .admin()
        .rename_org_node(bearer(
            RenameOrgNodeRequest {
                tenant_id: "not-a-uuid".into(),
                org_node_id: s.a.child.to_string(),
                label: "x".into(),
                dry_run: false,
            },
            &s.token,
        ))
        .await
        .unwrap_err();
    assert_eq!(field_of(bad_tenant), "tenant_id");
    let bad_parent = s
        .admin()
        .move_org_node(bearer(
            MoveOrgNodeRequest {
                tenant_id: s.a.tenant.to_string(),
                org_node_id: s.a.child.to_string(),
                new_parent_org_node_id: String::new(),
                dry_run: false,
            },
            &s.token,
        ))
        .await
        .unwrap_err();
    assert_eq!(field_of(bad_parent), "new_parent_org_node_id");
    let too_many = s
        .admin()
        .get_org_subtree(bearer(
            GetOrgSubtreeRequest {
                tenant_id: s.a.tenant.to_string(),
                org_node_id: s.a.root.to_string(),
                max_nodes: 10_001,
            },
            &s.token,
        ))
        .await
        .unwrap_err();
    assert_eq!(field_of(too_many), "max_nodes");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_service_without_the_permission_is_refused() {
    let s = setup().await;
    let reader = create_service(&s.test.db(), Some(s.a.tenant), &["admin.org.read"]).await;
    let token = token_of(&s.channel, &reader).await.access_token;
    let refused = s
        .rename(&token, s.a.tenant, s.a.child, "x")
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_cli_builds_through_the_same_code_and_is_audited_as_system() {
    use portcullis::admin::{Administrator, Label, NodeType, org};
    let s = setup().await;
    let node = org::create(
        &s.test.db(),
        &Administrator::operator(s.a.tenant.into(), chrono::Utc::now()),
        Some(s.a.root.into()),
        &NodeType::parse("site").unwrap(),
        &Label::parse("From the CLI").unwrap(),
        None,
    )
    .await
    .unwrap();
    assert!(
        s.audited(
            1,
            "action_key = 'org.node_created' AND entity_ref = $1 AND actor_kind_code = 'system'",
            &[&node.id.to_string()],
        )
        .await
    );
}
