//! The audit trail: every mutating RPC writes its row, and ListAuditEvents
//! pages through them newest first.

use std::collections::HashSet;

use portcullis::proto::v1::{
    AssignRoleRequest, CreateCapabilityRequest, CreateEndpointPolicyRequest, CreateRoleRequest,
    CreateUserRequest, EndAssignmentRequest, EndpointPolicyRef, ListAuditEventsRequest, NodeSource,
    OrgNodeRef, RenameRoleRequest, RenameTenantRequest, SetFederatedEmailLinkingRequest,
    SetRoleCapabilitiesRequest, UpdateEndpointPolicyRequest, UserRef, VisibilityScope,
};
use prost::Message;
use tonic::Code;

use super::{Setup, capability_of, id, setup};
use crate::support::services::bearer;

/// Every Administration RPC that is not a read (`Get…`, `List…`), from the
/// service's descriptor: a new mutating RPC without a case below fails.
fn mutating_rpcs() -> HashSet<String> {
    let set =
        prost_types::FileDescriptorSet::decode(portcullis::proto::FILE_DESCRIPTOR_SET).unwrap();
    set.file
        .iter()
        .flat_map(|file| &file.service)
        .filter(|service| service.name() == "Administration")
        .flat_map(|service| &service.method)
        .map(|method| method.name().to_owned())
        // Reads, and previews (which change nothing: tests/suite/api/what_if).
        .filter(|name| !name.starts_with("Get") && !name.starts_with("List"))
        .filter(|name| name != "PreviewChanges")
        .collect()
}

impl Setup {
    /// Every event of tenant A, walking pages of `page_size`.
    async fn all_events(&self, page_size: u32) -> Vec<portcullis::proto::v1::AuditEvent> {
        let mut events = Vec::new();
        let mut page_token = String::new();
        loop {
            let page = self
                .admin()
                .list_audit_events(bearer(
                    ListAuditEventsRequest {
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
            events.extend(page.events);
            if page.next_page_token.is_empty() {
                return events;
            }
            page_token = page.next_page_token;
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn every_mutating_rpc_writes_an_audit_row_that_the_trail_lists() {
    let s = setup().await;
    let mut expected: Vec<(&str, &str, String)> = Vec::new();
    let tenant = s.a.tenant.to_string();

    let node = s
        .create(&s.token, s.a.tenant, Some(s.a.root), "Audited")
        .await
        .unwrap();
    expected.push((
        "CreateOrgNode",
        "org.node_created",
        node.org_node_id.clone(),
    ));
    s.rename(&s.token, s.a.tenant, id(&node), "Renamed")
        .await
        .unwrap();
    expected.push((
        "RenameOrgNode",
        "org.node_renamed",
        node.org_node_id.clone(),
    ));
    s.move_under(id(&node), s.a.child).await.unwrap();
    expected.push(("MoveOrgNode", "org.node_moved", node.org_node_id.clone()));
    let node_ref = || {
        bearer(
            OrgNodeRef {
                tenant_id: tenant.clone(),
                org_node_id: node.org_node_id.clone(),
                dry_run: false,
            },
            &s.token,
        )
    };
    s.admin().deactivate_org_node(node_ref()).await.unwrap();
    expected.push((
        "DeactivateOrgNode",
        "org.node_deactivated",
        node.org_node_id.clone(),
    ));
    s.admin().reactivate_org_node(node_ref()).await.unwrap();
    expected.push((
        "ReactivateOrgNode",
        "org.node_reactivated",
        node.org_node_id.clone(),
    ));

    let role = s
        .admin()
        .create_role(bearer(
            CreateRoleRequest {
                tenant_id: tenant.clone(),
                key: "audited".into(),
                label: "Audited".into(),
                capabilities: Vec::new(),
                idempotency_key: String::new(),
                dry_run: false,
            },
            &s.token,
        ))
        .await
        .unwrap()
        .into_inner();
    expected.push(("CreateRole", "role.created", role.role_id.clone()));
    s.admin()
        .rename_role(bearer(
            RenameRoleRequest {
                tenant_id: tenant.clone(),
                role_id: role.role_id.clone(),
                label: "Audited again".into(),
                dry_run: false,
            },
            &s.token,
        ))
        .await
        .unwrap();
    expected.push(("RenameRole", "role.renamed", role.role_id.clone()));
    s.admin()
        .set_role_capabilities(bearer(
            SetRoleCapabilitiesRequest {
                tenant_id: tenant.clone(),
                role_id: role.role_id.clone(),
                capabilities: vec![capability_of(&s.a)],
                dry_run: false,
            },
            &s.token,
        ))
        .await
        .unwrap();
    expected.push((
        "SetRoleCapabilities",
        "role.capabilities_set",
        role.role_id.clone(),
    ));
    let assignment = s
        .admin()
        .assign_role(bearer(
            AssignRoleRequest {
                tenant_id: tenant.clone(),
                user_id: s.a.user.to_string(),
                role_id: role.role_id.clone(),
                org_node_id: node.org_node_id.clone(),
                ..Default::default()
            },
            &s.token,
        ))
        .await
        .unwrap()
        .into_inner();
    expected.push((
        "AssignRole",
        "assignment.created",
        assignment.assignment_id.clone(),
    ));
    s.admin()
        .end_assignment(bearer(
            EndAssignmentRequest {
                tenant_id: tenant.clone(),
                assignment_id: assignment.assignment_id.clone(),
                end_utc: None,
                dry_run: false,
            },
            &s.token,
        ))
        .await
        .unwrap();
    expected.push((
        "EndAssignment",
        "assignment.ended",
        assignment.assignment_id.clone(),
    ));

    let granted = s.grant(id(&node), VisibilityScope::Read).await.unwrap();
    expected.push((
        "GrantVisibility",
        "visibility.granted",
        granted.grant_id.clone(),
    ));
    s.revoke(&granted).await;
    expected.push((
        "RevokeVisibility",
        "visibility.revoked",
        granted.grant_id.clone(),
    ));
    let user = s
        .admin()
        .create_user(bearer(
            CreateUserRequest {
                tenant_id: tenant.clone(),
                display_name: "Audited".into(),
                email: "audited@example.test".into(),
                ..Default::default()
            },
            &s.token,
        ))
        .await
        .unwrap()
        .into_inner();
    expected.push(("CreateUser", "user.created", user.user_id.clone()));
    let user_ref = || {
        bearer(
            UserRef {
                tenant_id: tenant.clone(),
                user_id: user.user_id.clone(),
            },
            &s.token,
        )
    };
    s.admin().deactivate_user(user_ref()).await.unwrap();
    expected.push(("DeactivateUser", "user.deactivated", user.user_id.clone()));
    s.admin().reactivate_user(user_ref()).await.unwrap();
    expected.push(("ReactivateUser", "user.reactivated", user.user_id.clone()));

    let revoked = s.invite("revoked@example.test").await.unwrap();
    let revoked = revoked.invitation.unwrap();
    s.revoke_invitation(&revoked).await.unwrap();
    expected.push((
        "CreateInvitation",
        "invitation.created",
        revoked.invitation_id.clone(),
    ));
    expected.push((
        "RevokeInvitation",
        "invitation.revoked",
        revoked.invitation_id.clone(),
    ));
    // Accepted by the invitee, who acts as the user they become.
    let invited = s.invite("accepted@example.test").await.unwrap();
    let accepted = s.accept(&invited.invite_token).await.unwrap();
    let by_invitee = (
        "AcceptInvitation",
        "invitation.accepted",
        invited.invitation.unwrap().invitation_id,
    );

    // Global administration: a new tenant, renamed, suspended, reactivated;
    // a capability. Their rows are not tenant A's trail.
    let mut global: Vec<(&str, &str, String)> = Vec::new();
    let created = s
        .create_tenant(
            &s.global_token,
            &format!("audited-{}", &node.org_node_id[..8]),
        )
        .await
        .unwrap();
    global.push(("CreateTenant", "tenant.created", created.tenant_id.clone()));
    s.admin()
        .rename_tenant(bearer(
            RenameTenantRequest {
                tenant_id: created.tenant_id.clone(),
                name: "Audited".into(),
                dry_run: false,
            },
            &s.global_token,
        ))
        .await
        .unwrap();
    global.push(("RenameTenant", "tenant.renamed", created.tenant_id.clone()));
    let new_tenant = uuid::Uuid::parse_str(&created.tenant_id).unwrap();
    s.set_tenant_active(new_tenant, false).await;
    global.push((
        "SuspendTenant",
        "tenant.suspended",
        created.tenant_id.clone(),
    ));
    s.set_tenant_active(new_tenant, true).await;
    global.push((
        "ReactivateTenant",
        "tenant.reactivated",
        created.tenant_id.clone(),
    ));
    s.admin()
        .set_federated_email_linking(bearer(
            SetFederatedEmailLinkingRequest {
                tenant_id: created.tenant_id.clone(),
                allowed: true,
                dry_run: false,
            },
            &s.global_token,
        ))
        .await
        .unwrap();
    global.push((
        "SetFederatedEmailLinking",
        "tenant.federated_email_linking_allowed",
        created.tenant_id.clone(),
    ));
    let capability = s
        .admin()
        .create_capability(bearer(
            CreateCapabilityRequest {
                key: "audited.capability".into(),
                ..Default::default()
            },
            &s.global_token,
        ))
        .await
        .unwrap()
        .into_inner();
    global.push((
        "CreateCapability",
        "capability.created",
        capability.capability_id,
    ));
    let node_source = Some(NodeSource {
        kind: "path".into(),
        name: "n".into(),
    });
    let endpoint = s
        .admin()
        .create_endpoint_policy(bearer(
            CreateEndpointPolicyRequest {
                service_key: "audited".into(),
                method: "GET".into(),
                route_pattern: "/audited/{n}".into(),
                capability: "audited.capability".into(),
                node_source: node_source.clone(),
                dry_run: false,
            },
            &s.global_token,
        ))
        .await
        .unwrap()
        .into_inner();
    s.admin()
        .update_endpoint_policy(bearer(
            UpdateEndpointPolicyRequest {
                endpoint_id: endpoint.endpoint_id.clone(),
                service_key: "audited".into(),
                method: "POST".into(),
                route_pattern: "/audited/{n}".into(),
                capability: "audited.capability".into(),
                node_source,
                dry_run: false,
            },
            &s.global_token,
        ))
        .await
        .unwrap();
    s.admin()
        .delete_endpoint_policy(bearer(
            EndpointPolicyRef {
                endpoint_id: endpoint.endpoint_id.clone(),
                dry_run: false,
            },
            &s.global_token,
        ))
        .await
        .unwrap();
    for (rpc, action) in [
        ("CreateEndpointPolicy", "endpoint_policy.created"),
        ("UpdateEndpointPolicy", "endpoint_policy.updated"),
        ("DeleteEndpointPolicy", "endpoint_policy.deleted"),
    ] {
        global.push((rpc, action, endpoint.endpoint_id.clone()));
    }
    for (rpc, action, entity) in &global {
        assert!(
            s.audited(1, "action_key = $1 AND entity_ref = $2", &[action, entity])
                .await,
            "{rpc}: {action} for {entity}"
        );
    }

    let covered: HashSet<String> = expected
        .iter()
        .chain(&global)
        .chain([&by_invitee])
        .map(|(rpc, ..)| rpc.to_string())
        .collect();
    assert_eq!(
        covered,
        mutating_rpcs(),
        "every mutating RPC needs a case here"
    );

    // Small pages, so the walk crosses page boundaries.
    let events = s.all_events(3).await;
    for (rpc, action, entity) in &expected {
        let found = events
            .iter()
            .filter(|e| e.action == *action && e.entity_id == *entity)
            .collect::<Vec<_>>();
        assert_eq!(found.len(), 1, "{rpc}: {action} for {entity}");
        assert_eq!(found[0].actor_kind, "service");
        let payload: serde_json::Value = serde_json::from_str(&found[0].payload_json).unwrap();
        assert!(payload.get("after").is_some(), "{rpc}: {payload}");
    }
    let times: Vec<_> = events
        .iter()
        .map(|e| e.occurred_at.unwrap())
        .map(|t| (t.seconds, t.nanos))
        .collect();
    assert!(times.windows(2).all(|w| w[0] >= w[1]), "not newest first");
    let (_, action, entity) = &by_invitee;
    let found: Vec<_> = events
        .iter()
        .filter(|e| e.action == *action && e.entity_id == *entity)
        .collect();
    assert_eq!(found.len(), 1, "{action} for {entity}");
    assert_eq!(found[0].actor_kind, "user");
    assert_eq!(found[0].actor_id, accepted.user.unwrap().user_id);
    let ids: HashSet<_> = events.iter().map(|e| &e.event_id).collect();
    assert_eq!(ids.len(), events.len(), "an event appeared on two pages");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_trail_shows_only_the_callers_tenant() {
    let s = setup().await;
    s.create(&s.token, s.a.tenant, None, "Ours").await.unwrap();
    let events = s.all_events(100).await;
    assert!(!events.is_empty());
    assert!(events.iter().all(|e| e.tenant_id == s.a.tenant.to_string()));
    let refused = s
        .admin()
        .list_audit_events(bearer(
            ListAuditEventsRequest {
                tenant_id: s.b.tenant.to_string(),
                ..Default::default()
            },
            &s.token,
        ))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::NotFound);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_forged_page_token_is_invalid_argument() {
    let s = setup().await;
    let refused = s
        .admin()
        .list_audit_events(bearer(
            ListAuditEventsRequest {
                tenant_id: s.a.tenant.to_string(),
                page_token: "not-a-token".into(),
                ..Default::default()
            },
            &s.token,
        ))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::InvalidArgument);
    assert!(
        refused.message().starts_with("page_token"),
        "{}",
        refused.message()
    );
}
