//! Visibility grants.

use portcullis::proto::v1::{
    GrantVisibilityRequest, ListVisibilityGrantsRequest, ListVisibleOrgNodesRequest,
    RevokeVisibilityRequest, Subject, UserRef, VisibilityGrant, VisibilityScope, subject,
};
use tonic::{Code, Status};
use uuid::Uuid;

use super::{Setup, id, setup};
use crate::support::services::bearer;

impl Setup {
    pub async fn grant(
        &self,
        node: Uuid,
        scope: VisibilityScope,
    ) -> Result<VisibilityGrant, Status> {
        self.admin()
            .grant_visibility(bearer(
                GrantVisibilityRequest {
                    tenant_id: self.a.tenant.to_string(),
                    user_id: self.a.user.to_string(),
                    org_node_id: node.to_string(),
                    scope: scope as i32,
                    ..Default::default()
                },
                &self.token,
            ))
            .await
            .map(|r| r.into_inner())
    }

    pub async fn revoke(&self, grant: &VisibilityGrant) -> VisibilityGrant {
        self.admin()
            .revoke_visibility(bearer(
                RevokeVisibilityRequest {
                    tenant_id: self.a.tenant.to_string(),
                    grant_id: grant.grant_id.clone(),
                    dry_run: false,
                },
                &self.token,
            ))
            .await
            .unwrap()
            .into_inner()
    }

    /// Whether tenant A's user sees `node` in a READ listing.
    async fn sees(&self, node: Uuid) -> bool {
        let page = portcullis::proto::v1::authorization_client::AuthorizationClient::new(
            self.channel.clone(),
        )
        .list_visible_org_nodes(bearer(
            ListVisibleOrgNodesRequest {
                subject: Some(Subject {
                    kind: Some(subject::Kind::User(UserRef {
                        tenant_id: self.a.tenant.to_string(),
                        user_id: self.a.user.to_string(),
                    })),
                }),
                scope: VisibilityScope::Read as i32,
                page_size: 1000,
                ..Default::default()
            },
            &self.token,
        ))
        .await
        .unwrap()
        .into_inner();
        page.nodes.iter().any(|n| n.org_node_id == node.to_string())
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_grant_shows_a_subtree_in_listings_until_it_is_revoked() {
    let s = setup().await;
    let elsewhere = s
        .create(&s.token, s.a.tenant, None, "Elsewhere")
        .await
        .unwrap();
    let node = id(&elsewhere);
    assert!(!s.sees(node).await);
    let granted = s.grant(node, VisibilityScope::Read).await.unwrap();
    assert!(s.sees(node).await);
    let revoked = s.revoke(&granted).await;
    assert!(revoked.end_utc.is_some());
    assert!(!s.sees(node).await);
    let kept = s
        .admin()
        .list_visibility_grants(bearer(
            ListVisibilityGrantsRequest {
                tenant_id: s.a.tenant.to_string(),
                org_node_id: node.to_string(),
                ..Default::default()
            },
            &s.token,
        ))
        .await
        .unwrap()
        .into_inner()
        .grants;
    assert_eq!(kept, vec![revoked]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_grant_gives_read_or_analyze_not_any() {
    let s = setup().await;
    let refused = s.grant(s.a.root, VisibilityScope::Any).await.unwrap_err();
    assert_eq!(refused.code(), Code::InvalidArgument);
    assert!(
        refused.message().starts_with("scope"),
        "{}",
        refused.message()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_grant_at_another_tenants_node_is_not_found() {
    let s = setup().await;
    let refused = s.grant(s.b.root, VisibilityScope::Read).await.unwrap_err();
    assert_eq!(refused.code(), Code::NotFound);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_grant_starting_at_the_end_of_time_is_refused_not_a_panic() {
    let s = setup().await;
    // chrono's last representable instant: a microsecond later overflows.
    let last = chrono::DateTime::<chrono::Utc>::MAX_UTC;
    let end_of_time = prost_types::Timestamp {
        seconds: last.timestamp(),
        nanos: last.timestamp_subsec_nanos() as i32,
    };
    let granted = s
        .admin()
        .grant_visibility(bearer(
            GrantVisibilityRequest {
                tenant_id: s.a.tenant.to_string(),
                user_id: s.a.user.to_string(),
                org_node_id: s.a.child.to_string(),
                scope: VisibilityScope::Read as i32,
                start_utc: Some(end_of_time),
                ..Default::default()
            },
            &s.token,
        ))
        .await;
    match granted {
        Err(status) => {
            assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
            assert!(status.message().starts_with("start_utc:"), "{status:?}");
        }
        Ok(grant) => {
            // Before the fix: accepted, and revoking it panicked the handler.
            let revoked = s
                .admin()
                .revoke_visibility(bearer(
                    RevokeVisibilityRequest {
                        tenant_id: s.a.tenant.to_string(),
                        grant_id: grant.into_inner().grant_id,
                        dry_run: false,
                    },
                    &s.token,
                ))
                .await;
            panic!("a grant starting at the end of time was accepted; revoking it: {revoked:?}");
        }
    }
}
