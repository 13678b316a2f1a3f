//! Authorization, as the book states it (docs/concepts/model.md): U may exercise C at N when U's
//! tenant and U are active, N is U's tenant's, N and its ancestors are
//! active, C exists, and an in-force assignment of U at N or an ancestor has
//! a role granting C. Visibility grants give visibility, not capabilities.

use std::collections::HashSet;
use std::time::Duration;

use chrono::Utc;
use portcullis::proto::v1::authorization_client::AuthorizationClient;
use portcullis::proto::v1::{
    CapabilityCheck, CheckCapabilitiesRequest, CheckCapabilityRequest, CheckCapabilityResponse,
    DecisionReason, ListVisibleOrgNodesRequest, ListVisibleOrgNodesResponse, Subject, UserRef,
    VisibilityScope, node_access, subject,
};
use portcullis::tokens::{NewToken, TokenType};
use secrecy::ExposeSecret;
use tonic::Code;
use tonic::transport::Channel;
use uuid::Uuid;

use crate::support::TestDb;
use crate::support::fixtures::{execute, populate};
use crate::support::org::Org;
use crate::support::server::TestServer;
use crate::support::services::{bearer, create_service, token_of};

struct Setup {
    _test: TestDb,
    server: TestServer,
    org: Org,
    client: AuthorizationClient<Channel>,
    token: String,
    db: portcullis::db::Db,
}

async fn setup() -> Setup {
    let test = TestDb::new().await;
    let db = test.db();
    let org = Org::create(&db).await;
    let service = create_service(&db, None, &["authz.check", "authz.list_visible"]).await;
    let server = TestServer::start(db.clone()).await;
    let channel = server.channel().await;
    let token = token_of(&channel, &service).await.access_token;
    Setup {
        _test: test,
        server,
        org,
        client: AuthorizationClient::new(channel),
        token,
        db,
    }
}

fn user(tenant: Uuid, user: Uuid) -> Option<Subject> {
    Some(Subject {
        kind: Some(subject::Kind::User(UserRef {
            tenant_id: tenant.to_string(),
            user_id: user.to_string(),
        })),
    })
}

impl Setup {
    async fn check_as(
        &self,
        caller: &str,
        subject: Option<Subject>,
        capability: &str,
        node: Uuid,
    ) -> Result<CheckCapabilityResponse, tonic::Status> {
        self.client
            .clone()
            .check_capability(bearer(
                CheckCapabilityRequest {
                    subject,
                    capability: capability.into(),
                    org_node_id: node.to_string(),
                    explain: true,
                },
                caller,
            ))
            .await
            .map(|r| r.into_inner())
    }

    async fn reason(&self, who: Uuid, capability: &str, node: Uuid) -> DecisionReason {
        let answer = self
            .check_as(&self.token, user(self.org.tenant, who), capability, node)
            .await
            .unwrap();
        assert_eq!(answer.allowed, answer.reason() == DecisionReason::Allowed);
        answer.reason()
    }

    async fn list(
        &self,
        request: ListVisibleOrgNodesRequest,
    ) -> Result<ListVisibleOrgNodesResponse, tonic::Status> {
        self.client
            .clone()
            .list_visible_org_nodes(bearer(request, &self.token))
            .await
            .map(|r| r.into_inner())
    }

    fn user_token(&self, tenant: Uuid, user: Uuid) -> String {
        let issued = self
            .server
            .tokens
            .issue(
                &NewToken {
                    typ: TokenType::User,
                    subject: user,
                    tenant: Some(tenant),
                    session: Uuid::new_v4(),
                    permissions: Vec::new(),
                    lifetime: Duration::from_secs(600),
                    service_key: None,
                },
                Utc::now(),
            )
            .unwrap();
        issued.token.expose_secret().to_owned()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_assignment_is_inherited_down_the_tree_but_not_up_nor_sideways() {
    let s = setup().await;
    let o = &s.org;
    for (node, expected) in [
        (o.a, DecisionReason::Allowed),
        (o.a1, DecisionReason::Allowed),
        (o.a1x, DecisionReason::Allowed),
        (o.root, DecisionReason::NoMatchingAssignment),
        (o.b, DecisionReason::NoMatchingAssignment),
    ] {
        assert_eq!(s.reason(o.u, "cap.x", node).await, expected, "node {node}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn explain_lists_the_assignment_and_its_distance() {
    let s = setup().await;
    let o = &s.org;
    let answer = s
        .check_as(&s.token, user(o.tenant, o.u), "cap.x", o.a1x)
        .await
        .unwrap();
    assert_eq!(answer.grants.len(), 1);
    let grant = &answer.grants[0];
    assert_eq!(grant.assignment_id, o.u_rx_at_a.to_string());
    assert_eq!(grant.role_id, o.rx.to_string());
    assert_eq!(grant.role_label, "Role X");
    assert_eq!(grant.org_node_id, o.a.to_string());
    assert_eq!(grant.depth, 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn assignments_count_only_inside_their_time_window() {
    let s = setup().await;
    let o = &s.org;
    // ry at b starts tomorrow; ry at root ended yesterday.
    assert_eq!(
        s.reason(o.u, "cap.y", o.b).await,
        DecisionReason::NoMatchingAssignment
    );
    assert_eq!(
        s.reason(o.u, "cap.y", o.a).await,
        DecisionReason::NoMatchingAssignment
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_window_includes_its_start_and_excludes_its_end() {
    use diesel::sql_types::Text;
    use diesel_async::{RunQueryDsl, SimpleAsyncConnection};
    use scoped_futures::ScopedFutureExt;

    #[derive(diesel::QueryableByName)]
    struct Row {
        #[diesel(sql_type = Text)]
        reason: String,
    }
    let s = setup().await;
    let o = &s.org;
    // now() is fixed within a transaction: an assignment starting at now()
    // is in force, one ending at now() is not.
    for (window, expected) in [
        ("now(), NULL", "ALLOWED"),
        ("now() - interval '1 hour', now()", "NO_MATCHING_ASSIGNMENT"),
    ] {
        let sql = format!(
            "INSERT INTO auth.org_assignments (tenant_id, user_id, role_id, org_node_id, start_utc, end_utc) \
             VALUES ('{}', '{}', '{}', '{}', {window})",
            o.tenant, o.w, o.ry, o.b
        );
        let query = format!(
            "SELECT reason FROM auth.check_capabilities('{}', ARRAY['cap.y'], ARRAY['{}'::uuid])",
            o.w, o.b
        );
        let reason =
            s.db.write(&o.ctx(), |conn| {
                async move {
                    conn.batch_execute(&sql).await?;
                    let row: Row = diesel::sql_query(query).get_result(conn).await?;
                    // Leave nothing behind for the next window.
                    Err::<(), _>(portcullis::db::DbError::Unavailable(row.reason))
                }
                .scope_boxed()
            })
            .await
            .unwrap_err();
        assert_eq!(
            reason.to_string(),
            format!("database unavailable: {expected}"),
            "window {window}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_inactive_user_is_denied() {
    let s = setup().await;
    assert_eq!(
        s.reason(s.org.v, "cap.x", s.org.a).await,
        DecisionReason::UserInactive
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_suspended_tenant_is_denied() {
    let s = setup().await;
    execute(
        &s.db,
        &s.org.ctx(),
        "UPDATE auth.tenants SET tenant_state_code = 'suspended'",
    )
    .await
    .unwrap();
    assert_eq!(
        s.reason(s.org.u, "cap.x", s.org.a).await,
        DecisionReason::TenantSuspended
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_inactive_node_or_ancestor_grants_nothing() {
    let s = setup().await;
    let o = &s.org;
    // v's inactive account aside, an active user assigned at the root:
    o.assign(&s.db, o.w, o.rx, o.root).await;
    assert_eq!(s.reason(o.w, "cap.x", o.b).await, DecisionReason::Allowed);
    assert_eq!(
        s.reason(o.w, "cap.x", o.c).await,
        DecisionReason::NodeInactive
    );
    assert_eq!(
        s.reason(o.w, "cap.x", o.c1).await,
        DecisionReason::NodeInactive
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_role_without_the_capability_grants_nothing() {
    let s = setup().await;
    assert_eq!(
        s.reason(s.org.u, "cap.z", s.org.a).await,
        DecisionReason::NoMatchingAssignment
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unknown_capability_is_named_as_such() {
    let s = setup().await;
    assert_eq!(
        s.reason(s.org.u, "cap.nowhere", s.org.a).await,
        DecisionReason::UnknownCapability
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_node_of_another_tenant_answers_exactly_as_an_unknown_node() {
    let s = setup().await;
    let other = populate(&s.db).await;
    let foreign = s
        .check_as(&s.token, user(s.org.tenant, s.org.u), "cap.x", other.root)
        .await
        .unwrap();
    let unknown = s
        .check_as(
            &s.token,
            user(s.org.tenant, s.org.u),
            "cap.x",
            Uuid::new_v4(),
        )
        .await
        .unwrap();
    assert_eq!(foreign, unknown);
    assert_eq!(foreign.reason(), DecisionReason::UnknownOrgNode);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_user_of_another_tenant_is_unknown() {
    let s = setup().await;
    let other = populate(&s.db).await;
    let answer = s
        .check_as(&s.token, user(s.org.tenant, other.user), "cap.x", s.org.a)
        .await
        .unwrap();
    assert_eq!(answer.reason(), DecisionReason::UnknownUser);
}

#[tokio::test(flavor = "multi_thread")]
async fn visibility_grants_give_no_capability() {
    let s = setup().await;
    // w can see b (read grant) but holds no role.
    assert_eq!(
        s.reason(s.org.w, "cap.x", s.org.b).await,
        DecisionReason::NoMatchingAssignment
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_user_token_may_ask_about_itself_only() {
    let s = setup().await;
    let o = &s.org;
    let own = s.user_token(o.tenant, o.u);
    let by_token = Some(Subject {
        kind: Some(subject::Kind::AccessToken(own.clone())),
    });
    let answer = s.check_as(&own, by_token, "cap.x", o.a).await.unwrap();
    assert!(answer.allowed);
    let status = s
        .check_as(&own, user(o.tenant, o.w), "cap.x", o.a)
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_invalid_subject_token_is_unauthenticated() {
    let s = setup().await;
    let subject = Some(Subject {
        kind: Some(subject::Kind::AccessToken("not-a-token".into())),
    });
    let status = s
        .check_as(&s.token, subject, "cap.x", s.org.a)
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tenant_bound_service_may_not_ask_about_another_tenant() {
    let s = setup().await;
    let other = populate(&s.db).await;
    let bound = create_service(&s.db, Some(other.tenant), &["authz.check"]).await;
    let token = token_of(&s.server.channel().await, &bound)
        .await
        .access_token;
    let status = s
        .check_as(&token, user(s.org.tenant, s.org.u), "cap.x", s.org.a)
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);
    let own_tenant = s
        .check_as(&token, user(other.tenant, other.user), "cap.x", other.root)
        .await
        .unwrap();
    assert!(!own_tenant.allowed);
}

#[tokio::test(flavor = "multi_thread")]
async fn malformed_fields_name_themselves() {
    let s = setup().await;
    let o = &s.org;
    let cases = [
        (None, "cap.x", o.a.to_string(), "subject"),
        (user(o.tenant, o.u), "Cap X", o.a.to_string(), "capability"),
        (user(o.tenant, o.u), "", o.a.to_string(), "capability"),
        (
            user(o.tenant, o.u),
            "cap.x",
            "not-a-uuid".to_owned(),
            "org_node_id",
        ),
    ];
    for (subject, capability, node, field) in cases {
        let status = s
            .client
            .clone()
            .check_capability(bearer(
                CheckCapabilityRequest {
                    subject,
                    capability: capability.into(),
                    org_node_id: node,
                    explain: false,
                },
                &s.token,
            ))
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument);
        assert!(
            status.message().starts_with(field),
            "{field}: {}",
            status.message()
        );
    }
    let bad_subject = Some(Subject {
        kind: Some(subject::Kind::User(UserRef {
            tenant_id: "x".into(),
            user_id: o.u.to_string(),
        })),
    });
    let status = s
        .check_as(&s.token, bad_subject, "cap.x", o.a)
        .await
        .unwrap_err();
    assert!(
        status.message().starts_with("subject.user.tenant_id"),
        "{}",
        status.message()
    );
}

fn batch(subject: Option<Subject>, checks: Vec<(&str, String)>) -> CheckCapabilitiesRequest {
    CheckCapabilitiesRequest {
        subject,
        checks: checks
            .into_iter()
            .map(|(capability, node)| CapabilityCheck {
                capability: capability.into(),
                org_node_id: node,
            })
            .collect(),
        explain: false,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_batch_answers_in_request_order() {
    let s = setup().await;
    let o = &s.org;
    let request = batch(
        user(o.tenant, o.u),
        vec![
            ("cap.x", o.a1.to_string()),
            ("cap.x", o.root.to_string()),
            ("cap.nowhere", o.a.to_string()),
            ("cap.x", o.c1.to_string()),
            ("cap.x", Uuid::new_v4().to_string()),
            ("cap.x", o.a.to_string()),
        ],
    );
    let results = s
        .client
        .clone()
        .check_capabilities(bearer(request, &s.token))
        .await
        .unwrap()
        .into_inner()
        .results;
    let reasons: Vec<DecisionReason> = results.iter().map(|r| r.reason()).collect();
    assert_eq!(
        reasons,
        [
            DecisionReason::Allowed,
            DecisionReason::NoMatchingAssignment,
            DecisionReason::UnknownCapability,
            DecisionReason::NodeInactive,
            DecisionReason::UnknownOrgNode,
            DecisionReason::Allowed,
        ]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_batch_of_a_thousand_is_served_and_one_more_is_refused() {
    let s = setup().await;
    let o = &s.org;
    let full = batch(user(o.tenant, o.u), vec![("cap.x", o.a1.to_string()); 1000]);
    let results = s
        .client
        .clone()
        .check_capabilities(bearer(full, &s.token))
        .await
        .unwrap()
        .into_inner()
        .results;
    assert_eq!(results.len(), 1000);
    assert!(results.iter().all(|r| r.allowed));

    let over = batch(user(o.tenant, o.u), vec![("cap.x", o.a1.to_string()); 1001]);
    let status = s
        .client
        .clone()
        .check_capabilities(bearer(over, &s.token))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(
        status.message().starts_with("checks:"),
        "{}",
        status.message()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_malformed_batch_item_fails_the_call_naming_its_index() {
    let s = setup().await;
    let o = &s.org;
    let request = batch(
        user(o.tenant, o.u),
        vec![
            ("cap.x", o.a.to_string()),
            ("cap.x", o.a.to_string()),
            ("cap.x", "nope".into()),
        ],
    );
    let status = s
        .client
        .clone()
        .check_capabilities(bearer(request, &s.token))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(
        status.message().starts_with("checks[2].org_node_id"),
        "{}",
        status.message()
    );
}

fn listing(subject: Option<Subject>) -> ListVisibleOrgNodesRequest {
    ListVisibleOrgNodesRequest {
        subject,
        ..Default::default()
    }
}

fn ids(response: &ListVisibleOrgNodesResponse) -> HashSet<String> {
    response
        .nodes
        .iter()
        .map(|n| n.org_node_id.clone())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_listing_shows_each_visible_node_once_with_all_its_sources() {
    let s = setup().await;
    let o = &s.org;
    // u gets a read grant on a1 on top of the rx assignment at a.
    execute(
        &s.db,
        &o.ctx(),
        &format!(
            "INSERT INTO auth.visibility_grants (tenant_id, user_id, org_node_id, access_scope_code) VALUES ('{}', '{}', '{}', 'read')",
            o.tenant, o.u, o.a1
        ),
    )
    .await
    .unwrap();
    let page = s.list(listing(user(o.tenant, o.u))).await.unwrap();
    assert_eq!(
        ids(&page),
        HashSet::from([o.a.to_string(), o.a1.to_string(), o.a1x.to_string()])
    );
    let a1 = page
        .nodes
        .iter()
        .find(|n| n.org_node_id == o.a1.to_string())
        .unwrap();
    assert_eq!(a1.access.len(), 2);
    assert!(a1.access.iter().any(|a| matches!(&a.source, Some(node_access::Source::Assignment(x)) if x.org_node_id == o.a.to_string())));
    assert!(a1.access.iter().any(|a| matches!(&a.source, Some(node_access::Source::Grant(g)) if g.scope() == VisibilityScope::Read)));
    let a = page
        .nodes
        .iter()
        .find(|n| n.org_node_id == o.a.to_string())
        .unwrap();
    assert_eq!(a.access.len(), 1);
    assert_eq!(a.parent_org_node_id, o.root.to_string());
}

#[tokio::test(flavor = "multi_thread")]
async fn scope_analyze_leaves_out_read_only_grants() {
    let s = setup().await;
    let o = &s.org;
    let read = s.list(listing(user(o.tenant, o.w))).await.unwrap();
    assert_eq!(ids(&read), HashSet::from([o.b.to_string()]));
    let analyze = s
        .list(ListVisibleOrgNodesRequest {
            scope: VisibilityScope::Analyze as i32,
            ..listing(user(o.tenant, o.w))
        })
        .await
        .unwrap();
    assert!(analyze.nodes.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn node_type_and_subtree_filters_narrow_the_listing() {
    let s = setup().await;
    let o = &s.org;
    let teams = s
        .list(ListVisibleOrgNodesRequest {
            node_type: "team".into(),
            ..listing(user(o.tenant, o.u))
        })
        .await
        .unwrap();
    assert_eq!(ids(&teams), HashSet::from([o.a1x.to_string()]));
    let under = s
        .list(ListVisibleOrgNodesRequest {
            under_org_node_id: o.a1.to_string(),
            ..listing(user(o.tenant, o.u))
        })
        .await
        .unwrap();
    assert_eq!(
        ids(&under),
        HashSet::from([o.a1.to_string(), o.a1x.to_string()])
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn inactive_subtrees_and_inactive_users_see_nothing_there() {
    let s = setup().await;
    let o = &s.org;
    let v = s.list(listing(user(o.tenant, o.v))).await.unwrap();
    assert!(v.nodes.is_empty(), "an inactive user sees nothing");
    o.assign(&s.db, o.w, o.rx, o.root).await;
    let w = s.list(listing(user(o.tenant, o.w))).await.unwrap();
    assert!(!ids(&w).contains(&o.c.to_string()) && !ids(&w).contains(&o.c1.to_string()));
    assert_eq!(w.nodes.len(), 5);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_user_at_the_only_root_sees_the_whole_tenant_and_at_one_of_two_roots_only_its_tree() {
    let s = setup().await;
    let o = &s.org;
    // u holds rx at a already; now at the root too.
    o.assign(&s.db, o.u, o.rx, o.root).await;
    let whole = s.list(listing(user(o.tenant, o.u))).await.unwrap();
    let visible: HashSet<String> = [o.root, o.a, o.a1, o.a1x, o.b]
        .iter()
        .map(Uuid::to_string)
        .collect();
    assert_eq!(
        ids(&whole),
        visible,
        "every node but the inactive c's subtree"
    );
    let sources = |page: &ListVisibleOrgNodesResponse, node: Uuid| {
        page.nodes
            .iter()
            .find(|n| n.org_node_id == node.to_string())
            .map(|n| n.access.len())
    };
    assert_eq!(sources(&whole, o.a1), Some(2), "under the root and a");
    assert_eq!(sources(&whole, o.b), Some(1), "under the root only");
    // A second root: the tenant is no longer all under the first.
    execute(
        &s.db,
        &o.ctx(),
        &format!(
            "INSERT INTO auth.org_nodes (org_node_id, tenant_id, parent_org_node_id, node_type_code, node_label) VALUES ('{}', '{}', NULL, 'unit', 'elsewhere')",
            Uuid::new_v4(),
            o.tenant
        ),
    )
    .await
    .unwrap();
    let two_roots = s.list(listing(user(o.tenant, o.u))).await.unwrap();
    assert_eq!(ids(&two_roots), visible);
    assert_eq!(sources(&two_roots, o.a1), Some(2));
}

#[tokio::test(flavor = "multi_thread")]
async fn paging_covers_every_node_exactly_once_while_nodes_are_added() {
    let s = setup().await;
    let o = &s.org;
    // 300 more nodes under a, which u sees through the assignment at a.
    let mut existing: HashSet<String> = [o.a, o.a1, o.a1x].iter().map(Uuid::to_string).collect();
    let values: Vec<String> = (0..300)
        .map(|i| {
            let id = Uuid::new_v4();
            existing.insert(id.to_string());
            format!("('{id}', '{}', '{}', 'unit', 'n{i}')", o.tenant, o.a)
        })
        .collect();
    execute(
        &s.db,
        &o.ctx(),
        &format!(
            "INSERT INTO auth.org_nodes (org_node_id, tenant_id, parent_org_node_id, node_type_code, node_label) VALUES {}",
            values.join(",")
        ),
    )
    .await
    .unwrap();

    let writer_db = s.db.clone();
    let (tenant, parent) = (o.tenant, o.a);
    let writer = tokio::spawn(async move {
        for i in 0..100 {
            execute(
                &writer_db,
                &portcullis::db::RlsContext::tenant(tenant),
                &format!(
                    "INSERT INTO auth.org_nodes (tenant_id, parent_org_node_id, node_type_code, node_label) VALUES ('{tenant}', '{parent}', 'unit', 'late{i}')"
                ),
            )
            .await
            .unwrap();
        }
    });

    let mut seen: Vec<String> = Vec::new();
    let mut token = String::new();
    loop {
        let page = s
            .list(ListVisibleOrgNodesRequest {
                page_size: 7,
                page_token: token.clone(),
                ..listing(user(o.tenant, o.u))
            })
            .await
            .unwrap();
        assert!(page.nodes.len() <= 7);
        seen.extend(page.nodes.iter().map(|n| n.org_node_id.clone()));
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    writer.await.unwrap();
    let unique: HashSet<String> = seen.iter().cloned().collect();
    assert_eq!(unique.len(), seen.len(), "a node was listed twice");
    assert!(
        existing.is_subset(&unique),
        "a node that existed throughout was skipped"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tampered_or_foreign_page_token_is_invalid_argument() {
    let s = setup().await;
    let o = &s.org;
    let first = s
        .list(ListVisibleOrgNodesRequest {
            page_size: 1,
            ..listing(user(o.tenant, o.u))
        })
        .await
        .unwrap();
    assert!(!first.next_page_token.is_empty());
    let mut tampered = first.next_page_token.clone();
    let flipped = if tampered.ends_with('A') { "B" } else { "A" };
    tampered.replace_range(tampered.len() - 1.., flipped);
    for (token, subject) in [
        (tampered, user(o.tenant, o.u)),
        (first.next_page_token.clone(), user(o.tenant, o.w)),
        ("garbage".to_owned(), user(o.tenant, o.u)),
    ] {
        let status = s
            .list(ListVisibleOrgNodesRequest {
                page_size: 1,
                page_token: token,
                ..listing(subject)
            })
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument);
        assert!(
            status.message().starts_with("page_token"),
            "{}",
            status.message()
        );
    }
    // The same token with a different filter is foreign too.
    let status = s
        .list(ListVisibleOrgNodesRequest {
            page_size: 1,
            page_token: first.next_page_token,
            node_type: "team".into(),
            ..listing(user(o.tenant, o.u))
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
}

async fn who_can(
    channel: Channel,
    caller: &str,
    tenant: Uuid,
    capability: &str,
    node: Uuid,
) -> Result<portcullis::proto::v1::ListUsersWithCapabilityResponse, tonic::Status> {
    AuthorizationClient::new(channel)
        .list_users_with_capability(bearer(
            portcullis::proto::v1::ListUsersWithCapabilityRequest {
                tenant_id: tenant.to_string(),
                capability: capability.into(),
                org_node_id: node.to_string(),
                page_size: 0,
                page_token: String::new(),
            },
            caller,
        ))
        .await
        .map(|r| r.into_inner())
}

#[tokio::test(flavor = "multi_thread")]
async fn who_can_do_this_here_lists_each_active_holder_with_the_assignments_that_give_it() {
    let s = setup().await;
    let service = create_service(&s.db, None, &["authz.list_users"]).await;
    let channel = s.server.channel().await;
    let token = token_of(&channel, &service).await.access_token;
    let answer = who_can(channel.clone(), &token, s.org.tenant, "cap.x", s.org.a1)
        .await
        .unwrap();
    // v holds rx at the root too, but is inactive: a check would deny v.
    let listed: Vec<&str> = answer.users.iter().map(|u| u.user_id.as_str()).collect();
    assert_eq!(listed, [s.org.u.to_string()]);
    let grants = &answer.users[0].grants;
    assert_eq!(grants.len(), 1);
    assert_eq!(grants[0].assignment_id, s.org.u_rx_at_a.to_string());
    assert_eq!(grants[0].org_node_id, s.org.a.to_string());
    assert_eq!(grants[0].depth, 1);
    assert!(answer.next_page_token.is_empty());
    // Under an inactive node nobody holds anything.
    let under_inactive = who_can(channel, &token, s.org.tenant, "cap.x", s.org.c1)
        .await
        .unwrap();
    assert!(under_inactive.users.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn who_can_do_this_here_needs_its_permission_and_the_callers_tenant() {
    let s = setup().await;
    let channel = s.server.channel().await;
    // The setup's service may check, not list holders.
    let refused = who_can(channel.clone(), &s.token, s.org.tenant, "cap.x", s.org.a1)
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied);
    let elsewhere = populate(&s.db).await;
    let bound = create_service(&s.db, Some(elsewhere.tenant), &["authz.list_users"]).await;
    let bound_token = token_of(&channel, &bound).await.access_token;
    let foreign = who_can(
        channel.clone(),
        &bound_token,
        s.org.tenant,
        "cap.x",
        s.org.a1,
    )
    .await
    .unwrap_err();
    assert_eq!(foreign.code(), Code::PermissionDenied);
    assert!(foreign.message().starts_with("tenant_id:"));
    let global = create_service(&s.db, None, &["authz.list_users"]).await;
    let token = token_of(&channel, &global).await.access_token;
    let unknown = who_can(
        channel.clone(),
        &token,
        s.org.tenant,
        "cap.nobody",
        s.org.a1,
    )
    .await
    .unwrap_err();
    assert_eq!(unknown.code(), Code::NotFound);
    assert!(unknown.message().starts_with("capability:"));
    let bad = who_can(channel, &token, s.org.tenant, "not a key", s.org.a1)
        .await
        .unwrap_err();
    assert_eq!(bad.code(), Code::InvalidArgument);
    assert!(bad.message().starts_with("capability:"));
}
