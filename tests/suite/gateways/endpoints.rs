//! The endpoint catalogue and `CheckEndpoint`: which capability a request
//! to a service needs, and where it names its org node.

use std::collections::HashMap;

use diesel::sql_types::Text;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use portcullis::proto::v1::authorization_client::AuthorizationClient;
use portcullis::proto::v1::{
    CheckEndpointRequest, CheckEndpointResponse, CreateEndpointPolicyRequest, DecisionReason,
    EndpointPolicy, EndpointPolicyRef, ListEndpointPoliciesRequest, NodeSource, Subject,
    UpdateEndpointPolicyRequest, UserRef, subject,
};
use tonic::{Code, Status};

use crate::api::administration::{Setup, setup};
use crate::support::fixtures::TenantWorld;
use crate::support::services::bearer;

fn capability_of(world: &TenantWorld) -> String {
    format!("test.cap_{}", &world.tenant.simple().to_string()[..12])
}

fn source(kind: &str, name: &str) -> Option<NodeSource> {
    Some(NodeSource {
        kind: kind.into(),
        name: name.into(),
    })
}

impl Setup {
    async fn create_endpoint(
        &self,
        method: &str,
        route: &str,
        capability: &str,
        node_source: Option<NodeSource>,
    ) -> Result<EndpointPolicy, Status> {
        self.admin()
            .create_endpoint_policy(bearer(
                CreateEndpointPolicyRequest {
                    service_key: "payment_flow".into(),
                    method: method.into(),
                    route_pattern: route.into(),
                    capability: capability.into(),
                    node_source,
                    dry_run: false,
                },
                &self.global_token,
            ))
            .await
            .map(|r| r.into_inner())
    }

    async fn check_endpoint(
        &self,
        world: &TenantWorld,
        method: &str,
        path: &str,
        headers: &[(&str, String)],
        fields: &[(&str, String)],
    ) -> CheckEndpointResponse {
        let to_map = |pairs: &[(&str, String)]| -> HashMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), v.clone()))
                .collect()
        };
        AuthorizationClient::new(self.channel.clone())
            .check_endpoint(bearer(
                CheckEndpointRequest {
                    subject: Some(Subject {
                        kind: Some(subject::Kind::User(UserRef {
                            tenant_id: world.tenant.to_string(),
                            user_id: world.user.to_string(),
                        })),
                    }),
                    service: "payment_flow".into(),
                    method: method.into(),
                    path: path.into(),
                    headers: to_map(headers),
                    fields: to_map(fields),
                },
                &self.token,
            ))
            .await
            .unwrap()
            .into_inner()
    }
}

impl Setup {
    /// An entry that lets `world`'s user read `/ledgers/{node_id}`, and the
    /// path of the world's root ledger.
    async fn ledger_entry(&self, world: &TenantWorld) -> (EndpointPolicy, String) {
        let entry = self
            .create_endpoint(
                "GET",
                "/ledgers/{node_id}",
                &capability_of(world),
                source("path", "node_id"),
            )
            .await
            .unwrap();
        (entry, format!("/ledgers/{}", world.root))
    }
}

fn reason(answer: &CheckEndpointResponse) -> DecisionReason {
    DecisionReason::try_from(answer.reason).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_request_is_decided_by_the_entry_it_matches_at_the_node_its_path_names() {
    let s = setup().await;
    let a = &s.a;
    let entry = s
        .create_endpoint(
            "GET",
            "/ledgers/{node_id}/entries",
            &capability_of(a),
            source("path", "node_id"),
        )
        .await
        .unwrap();
    let allowed = s
        .check_endpoint(
            a,
            "get",
            &format!("/ledgers/{}/entries?page=2", a.child),
            &[],
            &[],
        )
        .await;
    assert!(allowed.allowed, "{allowed:?}");
    assert_eq!(reason(&allowed), DecisionReason::Allowed);
    assert_eq!(allowed.policy.unwrap().endpoint_id, entry.endpoint_id);
    assert_eq!(allowed.org_node_id, a.child.to_string());
    // A node of another tenant is like one that does not exist.
    let foreign = s
        .check_endpoint(
            a,
            "GET",
            &format!("/ledgers/{}/entries", s.b.root),
            &[],
            &[],
        )
        .await;
    assert_eq!(reason(&foreign), DecisionReason::UnknownOrgNode);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_request_no_entry_matches_is_denied_with_its_own_reason() {
    let s = setup().await;
    let a = &s.a;
    s.create_endpoint(
        "GET",
        "/ledgers/{node_id}",
        &capability_of(a),
        source("path", "node_id"),
    )
    .await
    .unwrap();
    for (method, path) in [
        ("GET", "/elsewhere"),
        ("POST", &*format!("/ledgers/{}", a.root)),
    ] {
        let answer = s.check_endpoint(a, method, path, &[], &[]).await;
        assert!(!answer.allowed);
        assert_eq!(
            reason(&answer),
            DecisionReason::NoMatchingEndpoint,
            "{method} {path}"
        );
        assert!(answer.policy.is_none());
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_node_may_come_from_a_header_or_a_field_and_a_request_without_it_is_denied() {
    let s = setup().await;
    let a = &s.a;
    let cap = capability_of(a);
    s.create_endpoint("POST", "/transfers", &cap, source("header", "X-Org-Node"))
        .await
        .unwrap();
    s.create_endpoint("PUT", "/transfers", &cap, source("field", "org_node_id"))
        .await
        .unwrap();
    let node = a.root.to_string();
    let by_header = s
        .check_endpoint(
            a,
            "POST",
            "/transfers",
            &[("x-ORG-node", node.clone())],
            &[],
        )
        .await;
    assert_eq!(reason(&by_header), DecisionReason::Allowed);
    let by_field = s
        .check_endpoint(a, "PUT", "/transfers", &[], &[("org_node_id", node)])
        .await;
    assert_eq!(reason(&by_field), DecisionReason::Allowed);
    let missing = s.check_endpoint(a, "POST", "/transfers", &[], &[]).await;
    assert_eq!(reason(&missing), DecisionReason::OrgNodeNotGiven);
    assert!(missing.policy.is_some());
    let garbage = s
        .check_endpoint(
            a,
            "PUT",
            "/transfers",
            &[],
            &[("org_node_id", "paris".into())],
        )
        .await;
    assert_eq!(reason(&garbage), DecisionReason::OrgNodeNotGiven);
}

#[tokio::test(flavor = "multi_thread")]
async fn overlapping_routes_resolve_static_first_then_parameter_then_the_any_method() {
    let s = setup().await;
    let a = &s.a;
    let cap = capability_of(a);
    let summary = s
        .create_endpoint(
            "GET",
            "/ledgers/summary",
            &cap,
            source("header", "x-org-node"),
        )
        .await
        .unwrap();
    let by_node = s
        .create_endpoint("GET", "/ledgers/{node_id}", &cap, source("path", "node_id"))
        .await
        .unwrap();
    let any = s
        .create_endpoint(
            "ANY",
            "/ledgers/{*rest}",
            &cap,
            source("header", "x-org-node"),
        )
        .await
        .unwrap();
    let node = vec![("x-org-node", a.root.to_string())];
    let matched = |answer: CheckEndpointResponse| answer.policy.unwrap().endpoint_id;
    assert_eq!(
        matched(
            s.check_endpoint(a, "GET", "/ledgers/summary", &node, &[])
                .await
        ),
        summary.endpoint_id
    );
    assert_eq!(
        matched(
            s.check_endpoint(a, "GET", &format!("/ledgers/{}", a.child), &node, &[])
                .await
        ),
        by_node.endpoint_id
    );
    assert_eq!(
        matched(
            s.check_endpoint(a, "DELETE", "/ledgers/summary", &node, &[])
                .await
        ),
        any.endpoint_id
    );
    assert_eq!(
        matched(s.check_endpoint(a, "GET", "/ledgers/a/b", &node, &[]).await),
        any.endpoint_id
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn routes_the_router_cannot_tell_apart_are_refused_naming_the_field() {
    let s = setup().await;
    let cap = capability_of(&s.a);
    s.create_endpoint("GET", "/a/{x}", &cap, source("path", "x"))
        .await
        .unwrap();
    let conflict = s
        .create_endpoint("GET", "/a/{y}", &cap, source("path", "y"))
        .await
        .unwrap_err();
    assert_eq!(conflict.code(), Code::FailedPrecondition);
    assert!(
        conflict.message().starts_with("route_pattern:"),
        "{}",
        conflict.message()
    );
    let twice = s
        .create_endpoint("GET", "/a/{x}", &cap, source("path", "x"))
        .await
        .unwrap_err();
    assert_eq!(twice.code(), Code::AlreadyExists);
    // Another method is another router.
    s.create_endpoint("POST", "/a/{y}", &cap, source("path", "y"))
        .await
        .unwrap();
    for (field, error) in [
        (
            "route_pattern",
            s.create_endpoint("GET", "no-slash", &cap, source("path", "x"))
                .await,
        ),
        (
            "node_source.name",
            s.create_endpoint("GET", "/b/{x}", &cap, source("path", "other"))
                .await,
        ),
        (
            "node_source.kind",
            s.create_endpoint("GET", "/b/{x}", &cap, source("cookie", "x"))
                .await,
        ),
        (
            "method",
            s.create_endpoint("FETCH", "/b/{x}", &cap, source("path", "x"))
                .await,
        ),
        (
            "capability",
            s.create_endpoint("GET", "/b/{x}", "no.such_cap", source("path", "x"))
                .await,
        ),
    ] {
        let status = error.unwrap_err();
        assert!(
            status.message().starts_with(&format!("{field}:")),
            "{field}: {}",
            status.message()
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_change_to_the_catalogue_is_effective_on_the_next_call_and_logged() {
    let s = setup().await;
    let a = &s.a;
    let (entry, path) = s.ledger_entry(a).await;
    assert!(s.check_endpoint(a, "GET", &path, &[], &[]).await.allowed);
    // Now it needs a capability nobody holds.
    let other = capability_of(&s.b);
    s.admin()
        .update_endpoint_policy(bearer(
            UpdateEndpointPolicyRequest {
                endpoint_id: entry.endpoint_id.clone(),
                service_key: "payment_flow".into(),
                method: "GET".into(),
                route_pattern: "/ledgers/{node_id}".into(),
                capability: other,
                node_source: source("path", "node_id"),
                dry_run: false,
            },
            &s.global_token,
        ))
        .await
        .unwrap();
    let denied = s.check_endpoint(a, "GET", &path, &[], &[]).await;
    assert_eq!(reason(&denied), DecisionReason::NoMatchingAssignment);
    s.admin()
        .delete_endpoint_policy(bearer(
            EndpointPolicyRef {
                endpoint_id: entry.endpoint_id.clone(),
                dry_run: false,
            },
            &s.global_token,
        ))
        .await
        .unwrap();
    let gone = s.check_endpoint(a, "GET", &path, &[], &[]).await;
    assert_eq!(reason(&gone), DecisionReason::NoMatchingEndpoint);

    #[derive(diesel::QueryableByName)]
    struct Change {
        #[diesel(sql_type = Text)]
        action: String,
        #[diesel(sql_type = Text)]
        before: String,
        #[diesel(sql_type = Text)]
        after: String,
    }
    let mut conn = owner_with_global_admin(&s).await;
    let changes: Vec<Change> = diesel::sql_query(
        "SELECT action_key AS action, coalesce(before_json::text, '') AS before, \
                coalesce(after_json::text, '') AS after \
           FROM audit.policy_change_log WHERE endpoint_id = $1::uuid ORDER BY occurred_utc",
    )
    .bind::<Text, _>(&entry.endpoint_id)
    .load(&mut conn)
    .await
    .unwrap();
    let actions: Vec<&str> = changes.iter().map(|c| c.action.as_str()).collect();
    assert_eq!(
        actions,
        [
            "endpoint_policy.created",
            "endpoint_policy.updated",
            "endpoint_policy.deleted"
        ]
    );
    assert!(changes[0].before.is_empty() && changes[0].after.contains("test.cap_"));
    assert!(
        changes[1].before.contains(&capability_of(a))
            && changes[1].after.contains(&capability_of(&s.b))
    );
    assert!(changes[2].after.is_empty());
}

/// A connection as the schema's owner with the global administrator's
/// context: a change made beside this server (another replica, an
/// operator's SQL), which its copy of the catalogue never saw.
async fn owner_with_global_admin(s: &Setup) -> AsyncPgConnection {
    let mut conn = AsyncPgConnection::establish(s.test.migration_url.as_str())
        .await
        .unwrap();
    diesel::sql_query("SELECT set_config('app.global_admin', 'on', false)")
        .execute(&mut conn)
        .await
        .unwrap();
    conn
}

#[tokio::test(flavor = "multi_thread")]
async fn a_change_made_beside_the_server_is_effective_on_its_next_call() {
    let s = setup().await;
    let a = &s.a;
    let (entry, path) = s.ledger_entry(a).await;
    // The server now holds the catalogue in memory.
    assert!(s.check_endpoint(a, "GET", &path, &[], &[]).await.allowed);
    let mut owner = owner_with_global_admin(&s).await;
    let change = |sql: String| diesel::sql_query(sql);
    change(format!(
        "UPDATE auth.endpoint_policy SET capability = '{}' WHERE endpoint_id = '{}'",
        capability_of(&s.b),
        entry.endpoint_id
    ))
    .execute(&mut owner)
    .await
    .unwrap();
    let denied = s.check_endpoint(a, "GET", &path, &[], &[]).await;
    assert_eq!(reason(&denied), DecisionReason::NoMatchingAssignment);
    change(format!(
        "DELETE FROM auth.endpoint_policy WHERE endpoint_id = '{}'",
        entry.endpoint_id
    ))
    .execute(&mut owner)
    .await
    .unwrap();
    let gone = s.check_endpoint(a, "GET", &path, &[], &[]).await;
    assert_eq!(reason(&gone), DecisionReason::NoMatchingEndpoint);
    change(format!(
        "INSERT INTO auth.endpoint_policy (service_key, method_code, route_pattern, capability, \
                                           node_source_code, node_source_name) \
         VALUES ('payment_flow', 'ANY', '/ledgers/{{node_id}}', '{}', 'path', 'node_id')",
        capability_of(a)
    ))
    .execute(&mut owner)
    .await
    .unwrap();
    assert!(s.check_endpoint(a, "GET", &path, &[], &[]).await.allowed);
    change("TRUNCATE auth.endpoint_policy".into())
        .execute(&mut owner)
        .await
        .unwrap();
    let emptied = s.check_endpoint(a, "GET", &path, &[], &[]).await;
    assert_eq!(reason(&emptied), DecisionReason::NoMatchingEndpoint);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_catalogue_whose_number_went_back_and_climbed_again_is_not_trusted() {
    let s = setup().await;
    let a = &s.a;
    let (entry, path) = s.ledger_entry(a).await;
    // The server holds the catalogue, labelled with today's number.
    assert!(s.check_endpoint(a, "GET", &path, &[], &[]).await.allowed);
    let mut owner = owner_with_global_admin(&s).await;
    // The entry is deleted (the number climbs by one), then the number is
    // set back by hand, as a restore or a manual fix leaves it: the same
    // number as the server's copy, other entries.
    diesel::sql_query(format!(
        "DELETE FROM auth.endpoint_policy WHERE endpoint_id = '{}'",
        entry.endpoint_id
    ))
    .execute(&mut owner)
    .await
    .unwrap();
    diesel::sql_query("UPDATE auth.endpoint_catalogue_version SET version_no = version_no - 1")
        .execute(&mut owner)
        .await
        .unwrap();
    let gone = s.check_endpoint(a, "GET", &path, &[], &[]).await;
    assert_eq!(reason(&gone), DecisionReason::NoMatchingEndpoint);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_catalogue_is_listed_by_service_and_the_primers_query_reads_it() {
    let s = setup().await;
    let cap = capability_of(&s.a);
    s.create_endpoint("GET", "/ledgers/{node_id}", &cap, source("path", "node_id"))
        .await
        .unwrap();
    let listed = s
        .admin()
        .list_endpoint_policies(bearer(
            ListEndpointPoliciesRequest {
                service_key: "payment_flow".into(),
            },
            &s.global_token,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.policies.len(), 1);
    let found = crate::support::fixtures::count(
        &s.test.db(),
        &portcullis::db::RlsContext::tenant(s.a.tenant),
        &format!("auth.policy_capability WHERE capability = '{cap}'"),
    )
    .await
    .unwrap();
    assert_eq!(found, 1);
}
