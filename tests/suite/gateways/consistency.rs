//! The gateways on a real hot standby: an ended assignment never allows
//! through forward-auth, AuthZEN or Envoy's ext_authz once its token is
//! presented, nor for longer than the staleness bound without it; a route
//! may require the primary outright.

use std::collections::HashMap;
use std::time::Duration;

use envoy_types::pb::envoy::service::auth::v3::attribute_context::{HttpRequest, Request};
use envoy_types::pb::envoy::service::auth::v3::authorization_client::AuthorizationClient as EnvoyClient;
use envoy_types::pb::envoy::service::auth::v3::{AttributeContext, CheckRequest};
use portcullis::consistency::Requirement;
use portcullis::db::ReplicaHealth;
use serde_json::json;

use crate::gateways::forward_auth::catalogue;
use crate::support::fixtures::{TenantWorld, assignment_of, populate};
use crate::support::replication::{end_through_api, pair, reading_standby, until_replica};
use crate::support::server::{TestServer, service_token, user_token};
use crate::support::services::{bearer, create_service, token_of};
use crate::support::{TestDb, test_pool};

const TOKEN: &str = "x-consistency-token";
const SERVED_BY: &str = "x-consistency-served-by";

struct Setup {
    test: TestDb,
    server: TestServer,
    world: TenantWorld,
    admin: String,
}

async fn setup() -> Setup {
    let (test, standby) = pair().await.database().await;
    let primary = test.db();
    let world = populate(&primary).await;
    catalogue(&primary, &world, "GET").await;
    let admin = create_service(&primary, Some(world.tenant), &["admin.assignments.write"]).await;
    let db = reading_standby(
        &test,
        &standby,
        &test_pool(),
        Requirement::max_staleness(Duration::from_millis(500)),
    );
    let server = TestServer::build(db.clone())
        .forward_auth()
        .authzen()
        .start()
        .await;
    let admin = token_of(&server.channel().await, &admin).await.access_token;
    until_replica(&db, ReplicaHealth::InRotation).await;
    Setup {
        test,
        server,
        world,
        admin,
    }
}

impl Setup {
    /// `/forward-auth` for the user's ledger at the child node.
    async fn forward_auth(&self, headers: &[(&str, &str)]) -> reqwest::Response {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut request = reqwest::Client::new()
            .get(format!(
                "http://{}/forward-auth",
                self.server.forward_auth.as_ref().unwrap()
            ))
            .header("x-original-method", "GET")
            .header(
                "x-original-uri",
                format!("/ledgers/{}/entries", self.world.child),
            )
            .header("x-auth-service", "payment_flow")
            .bearer_auth(user_token(
                &self.server.tokens,
                self.world.tenant,
                self.world.user,
            ));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        request.send().await.unwrap()
    }

    /// AuthZEN's evaluation of the same question: the decision.
    async fn evaluation(&self, headers: &[(&str, &str)]) -> (bool, reqwest::header::HeaderMap) {
        let pep = service_token(&self.server.tokens, None, &["authz.check"]);
        let body = json!({
            "subject": { "type": "user", "id": self.world.user,
                         "properties": { "tenant_id": self.world.tenant } },
            "resource": { "type": "org_node", "id": self.world.child },
            "action": { "name": self.world.capability() },
        });
        let mut request = reqwest::Client::new()
            .post(format!(
                "{}/access/v1/evaluation",
                self.server.authzen.as_ref().unwrap()
            ))
            .bearer_auth(pep)
            .header("content-type", "application/json")
            .body(body.to_string());
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = request.send().await.unwrap();
        let headers = response.headers().clone();
        let answer: serde_json::Value =
            serde_json::from_str(&response.text().await.unwrap()).unwrap();
        (answer["decision"].as_bool().unwrap(), headers)
    }

    /// Envoy's check of the same request: whether it was allowed, and who
    /// answered.
    async fn ext_authz(
        &self,
        headers: &[(&str, &str)],
        route_consistency: Option<&str>,
    ) -> (bool, Option<String>) {
        let mut original = HashMap::from([(
            "authorization".to_owned(),
            format!(
                "Bearer {}",
                user_token(&self.server.tokens, self.world.tenant, self.world.user)
            ),
        )]);
        original.extend(
            headers
                .iter()
                .map(|(n, v)| ((*n).to_owned(), (*v).to_owned())),
        );
        let mut extensions =
            HashMap::from([("portcullis_service".to_owned(), "payment_flow".to_owned())]);
        if let Some(requirement) = route_consistency {
            extensions.insert("portcullis_consistency".into(), requirement.into());
        }
        let check = CheckRequest {
            attributes: Some(AttributeContext {
                request: Some(Request {
                    http: Some(HttpRequest {
                        method: "GET".into(),
                        path: format!("/ledgers/{}/entries", self.world.child),
                        host: "payments.example.test".into(),
                        headers: original,
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
                context_extensions: extensions,
                ..Default::default()
            }),
        };
        let sidecar = service_token(&self.server.tokens, None, &["authz.check"]);
        let answer = EnvoyClient::new(self.server.channel().await)
            .check(bearer(check, &sidecar))
            .await
            .unwrap();
        let served_by = answer
            .metadata()
            .get(SERVED_BY)
            .map(|v| v.to_str().unwrap().to_owned());
        (
            answer.into_inner().status.unwrap_or_default().code == 0,
            served_by,
        )
    }

    /// Ends the user's assignment; the write's token.
    async fn end_assignment(&self) -> String {
        let assignment = assignment_of(&self.test, &self.world).await;
        let channel = self.server.channel().await;
        end_through_api(
            &channel,
            &self.admin,
            self.world.tenant,
            &assignment.to_string(),
        )
        .await
    }
}

fn header(headers: &reqwest::header::HeaderMap, name: &str) -> Option<String> {
    headers.get(name).map(|v| v.to_str().unwrap().to_owned())
}

#[tokio::test(flavor = "multi_thread")]
async fn an_ended_assignment_never_allows_through_a_gateway_once_its_token_is_presented() {
    let pair = pair().await;
    let _turn = pair.turn().await;
    let s = setup().await;
    let allowed = s.forward_auth(&[]).await;
    assert_eq!(allowed.status(), 200);
    assert_eq!(
        header(allowed.headers(), SERVED_BY).as_deref(),
        Some("replica-1")
    );
    assert!(
        header(allowed.headers(), TOKEN).is_some(),
        "the answer's point, to present later"
    );

    pair.set_replay(false).await;
    let ended = s.end_assignment().await;
    let refused = s.forward_auth(&[(TOKEN, &ended)]).await;
    assert_eq!(refused.status(), 403);
    assert_eq!(
        header(refused.headers(), SERVED_BY).as_deref(),
        Some("primary")
    );
    let (decision, answered) = s.evaluation(&[(TOKEN, &ended)]).await;
    assert!(!decision, "AuthZEN at the token");
    assert_eq!(header(&answered, SERVED_BY).as_deref(), Some("primary"));
    let (allowed, served_by) = s.ext_authz(&[(TOKEN, &ended)], None).await;
    assert!(!allowed, "ext_authz at the client's token");
    assert_eq!(served_by.as_deref(), Some("primary"));
}

#[tokio::test(flavor = "multi_thread")]
async fn without_a_token_a_gateway_allows_an_ended_assignment_no_longer_than_the_bound() {
    let pair = pair().await;
    let _turn = pair.turn().await;
    let s = setup().await;
    pair.set_replay(false).await;
    s.end_assignment().await;
    // The standby trails from the pause on; past the bound (500 ms) it no
    // longer answers and the primary's answer stands.
    tokio::time::sleep(Duration::from_millis(700)).await;
    let refused = s.forward_auth(&[]).await;
    assert_eq!(refused.status(), 403);
    let (decision, _) = s.evaluation(&[]).await;
    assert!(!decision);
    // Though a caller that accepts an hour's staleness gets the standby's.
    let (decision, answered) = s.evaluation(&[("x-consistency", "max_staleness=1h")]).await;
    assert!(decision);
    assert_eq!(header(&answered, SERVED_BY).as_deref(), Some("replica-1"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_route_that_requires_full_consistency_is_decided_by_the_primary() {
    let pair = pair().await;
    let _turn = pair.turn().await;
    let s = setup().await;
    pair.set_replay(false).await;
    s.end_assignment().await;
    let (allowed, served_by) = s.ext_authz(&[], Some("fully_consistent")).await;
    assert!(!allowed);
    assert_eq!(served_by.as_deref(), Some("primary"));
    // The same through forward-auth: the gateway's route sets the header.
    let refused = s
        .forward_auth(&[("x-consistency", "fully_consistent")])
        .await;
    assert_eq!(refused.status(), 403);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_forged_consistency_token_is_refused_naming_the_header() {
    let pair = pair().await;
    let _turn = pair.turn().await;
    let s = setup().await;
    let refused = s.forward_auth(&[(TOKEN, "ct1.forged.token.here")]).await;
    assert_eq!(refused.status(), 400);
    let body: serde_json::Value = serde_json::from_str(&refused.text().await.unwrap()).unwrap();
    assert_eq!(body["field"], "x-consistency-token");
}
