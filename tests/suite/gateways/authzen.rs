//! The OpenID AuthZEN Authorization API 1.0 over HTTP: the specification's
//! request and response shapes, and a conformance table of our own
//! (single, batch with each semantic, the three searches, discovery, bad
//! input, missing or insufficient credentials).

use serde_json::{Value, json};
use uuid::Uuid;

use crate::support::TestDb;
use crate::support::certs::{TestCa, write};
use crate::support::org::Org;
use crate::support::ports::unused_port;
use crate::support::server::{TestServer, refused_at_start, service_token, test_settings};

/// A UUID anywhere in a snapshot: the tests' ids are random.
const UUID: &str = "[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}";

struct Setup {
    _test: TestDb,
    server: TestServer,
    base: String,
    org: Org,
}

async fn setup() -> Setup {
    let test = TestDb::new().await;
    let db = test.db();
    let org = Org::create(&db).await;
    let server = TestServer::build(db).authzen().start().await;
    Setup {
        _test: test,
        base: server.authzen.clone().unwrap(),
        server,
        org,
    }
}

impl Setup {
    fn service_token(&self, tenant: Option<Uuid>, permissions: &[&str]) -> String {
        service_token(&self.server.tokens, tenant, permissions)
    }

    fn pep(&self) -> String {
        self.service_token(None, &["authz.check", "authz.list_users"])
    }

    async fn post_as(&self, token: Option<&str>, path: &str, body: &Value) -> (u16, Value) {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut request = reqwest::Client::new()
            .post(format!("{}{path}", self.base))
            .header("content-type", "application/json")
            .body(body.to_string());
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    async fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        self.post_as(Some(&self.pep()), path, body).await
    }

    fn user(&self, user: Uuid) -> Value {
        json!({ "type": "user", "id": user, "properties": { "tenant_id": self.org.tenant } })
    }

    fn node(&self, node: Uuid) -> Value {
        json!({ "type": "org_node", "id": node })
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_evaluation_answers_the_decision_with_its_reason() {
    let s = setup().await;
    let allowed = s
        .post(
            "/access/v1/evaluation",
            &json!({ "subject": s.user(s.org.u), "resource": s.node(s.org.a1), "action": { "name": "cap.x" },
                     "context": { "time": "2026-11-30T08:00:00Z" } }),
        )
        .await;
    assert_eq!(allowed.0, 200);
    insta::assert_json_snapshot!("evaluation_allowed", allowed.1);
    let denied = s
        .post(
            "/access/v1/evaluation",
            &json!({ "subject": s.user(s.org.u), "resource": s.node(s.org.b), "action": { "name": "cap.x" } }),
        )
        .await;
    assert_eq!(denied.0, 200);
    insta::assert_json_snapshot!("evaluation_denied", denied.1);
}

fn batch(s: &Setup, semantic: Option<&str>) -> Value {
    let mut body = json!({
        "subject": s.user(s.org.u),
        "action": { "name": "cap.x" },
        "evaluations": [
            { "resource": s.node(s.org.a1) },
            { "resource": s.node(s.org.b) },
            { "resource": s.node(s.org.a1x) },
            { "resource": s.node(s.org.a1), "action": { "name": "cap.y" } },
        ],
    });
    if let Some(semantic) = semantic {
        body["options"] = json!({ "evaluations_semantic": semantic });
    }
    body
}

fn decisions(answer: &Value) -> Vec<bool> {
    answer["evaluations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["decision"].as_bool().unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_batch_answers_in_request_order_with_defaults_overridden_per_item() {
    let s = setup().await;
    let (status, answer) = s.post("/access/v1/evaluations", &batch(&s, None)).await;
    assert_eq!(status, 200);
    assert_eq!(decisions(&answer), [true, false, true, false]);
    assert_eq!(
        answer["evaluations"][3]["context"]["reason"],
        "no_matching_assignment"
    );
    let (_, explicit) = s
        .post("/access/v1/evaluations", &batch(&s, Some("execute_all")))
        .await;
    assert_eq!(explicit, answer);
}

#[tokio::test(flavor = "multi_thread")]
async fn deny_on_first_deny_stops_after_the_first_denial() {
    let s = setup().await;
    let (_, answer) = s
        .post(
            "/access/v1/evaluations",
            &batch(&s, Some("deny_on_first_deny")),
        )
        .await;
    assert_eq!(decisions(&answer), [true, false]);
}

#[tokio::test(flavor = "multi_thread")]
async fn permit_on_first_permit_stops_after_the_first_permit() {
    let s = setup().await;
    let mut body = batch(&s, Some("permit_on_first_permit"));
    body["evaluations"].as_array_mut().unwrap().swap(0, 1);
    let (_, answer) = s.post("/access/v1/evaluations", &body).await;
    assert_eq!(decisions(&answer), [false, true]);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_items_error_stays_in_that_item() {
    let s = setup().await;
    let mut body = batch(&s, None);
    body["evaluations"][1]["resource"] = json!({ "type": "org_node", "id": "not-a-uuid" });
    let (status, answer) = s.post("/access/v1/evaluations", &body).await;
    assert_eq!(status, 200);
    assert_eq!(decisions(&answer), [true, false, true, false]);
    let error = &answer["evaluations"][1]["context"]["error"];
    assert_eq!(error["status"], 400);
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .starts_with("resource.id:"),
        "{error}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_batch_without_items_is_a_single_evaluation() {
    let s = setup().await;
    let (status, answer) = s
        .post(
            "/access/v1/evaluations",
            &json!({ "subject": s.user(s.org.u), "resource": s.node(s.org.a), "action": { "name": "cap.x" } }),
        )
        .await;
    assert_eq!((status, answer["decision"].clone()), (200, json!(true)));
}

#[tokio::test(flavor = "multi_thread")]
async fn subject_search_finds_who_may_and_pages_to_the_end() {
    let s = setup().await;
    let search = |token: Option<String>| {
        let mut body = json!({
            "subject": { "type": "user", "properties": { "tenant_id": s.org.tenant } },
            "action": { "name": "cap.x" },
            "resource": s.node(s.org.a1),
            "page": { "limit": 1 },
        });
        if let Some(token) = token {
            body["page"]["token"] = json!(token);
        }
        body
    };
    let (status, first) = s.post("/access/v1/search/subject", &search(None)).await;
    assert_eq!(status, 200, "{first}");
    // v holds cap.x at the root too, but is inactive.
    assert_eq!(
        first["results"],
        json!([{ "type": "user", "id": s.org.u, "properties": { "tenant_id": s.org.tenant } }])
    );
    assert_eq!(first["page"]["next_token"], "");
}

#[tokio::test(flavor = "multi_thread")]
async fn resource_search_lists_the_nodes_by_id_across_pages() {
    let s = setup().await;
    let mut found = Vec::new();
    let mut token = String::new();
    loop {
        let (status, page) = s
            .post(
                "/access/v1/search/resource",
                &json!({ "subject": s.user(s.org.u), "action": { "name": "cap.x" },
                         "resource": { "type": "org_node" }, "page": { "limit": 2, "token": token } }),
            )
            .await;
        assert_eq!(status, 200, "{page}");
        for result in page["results"].as_array().unwrap() {
            assert_eq!(result["type"], "org_node");
            found.push(result["id"].as_str().unwrap().parse::<Uuid>().unwrap());
        }
        token = page["page"]["next_token"].as_str().unwrap().to_owned();
        if token.is_empty() {
            break;
        }
    }
    let mut expected = vec![s.org.a, s.org.a1, s.org.a1x];
    expected.sort();
    assert_eq!(found, expected);
}

#[tokio::test(flavor = "multi_thread")]
async fn action_search_lists_the_capabilities_held_at_the_node() {
    let s = setup().await;
    let (status, answer) = s
        .post(
            "/access/v1/search/action",
            &json!({ "subject": s.user(s.org.u), "resource": s.node(s.org.a1) }),
        )
        .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["results"], json!([{ "name": "cap.x" }]));
    let (_, elsewhere) = s
        .post(
            "/access/v1/search/action",
            &json!({ "subject": s.user(s.org.u), "resource": s.node(s.org.b) }),
        )
        .await;
    assert_eq!(elsewhere["results"], json!([]));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_batch_of_a_thousand_subjects_is_decided_in_one_statement() {
    let s = setup().await;
    let mut evaluations = vec![json!({ "subject": s.user(s.org.u) })];
    evaluations.extend((1..1000).map(|_| json!({ "subject": s.user(Uuid::new_v4()) })));
    let body = json!({
        "resource": s.node(s.org.a1),
        "action": { "name": "cap.x" },
        "evaluations": evaluations,
    });
    // Round trips of this whole process: a statement per subject would
    // be a thousand; other tests running beside this one add a few.
    let before = portcullis::db::round_trips::total();
    let (status, answer) = s.post("/access/v1/evaluations", &body).await;
    let round_trips = portcullis::db::round_trips::total() - before;
    assert_eq!(status, 200, "{answer}");
    let decided = decisions(&answer);
    assert_eq!(decided.len(), 1000);
    assert!(decided[0] && decided[1..].iter().all(|d| !d));
    assert_eq!(
        answer["evaluations"][1]["context"]["reason"],
        "unknown_user"
    );
    assert!(round_trips < 500, "{round_trips} round trips");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_server_refuses_an_authzen_listener_without_a_base_url() {
    let test = TestDb::new().await;
    let mut settings = test_settings();
    settings.authzen_listen = Some(format!("127.0.0.1:{}", unused_port()).parse().unwrap());
    settings.authzen_base_url = None;
    let error = refused_at_start(test.db(), settings).await;
    assert!(error.contains("--authzen-base-url"), "{error}");
}

#[tokio::test(flavor = "multi_thread")]
async fn discovery_names_every_endpoint_under_the_configured_url_whatever_host_is_asked() {
    let s = setup().await;
    let _ = rustls::crypto::ring::default_provider().install_default();
    let text = reqwest::Client::new()
        .get(format!("{}/.well-known/authzen-configuration", s.base))
        .header("host", "evil.example.test")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!text.contains("evil"), "{text}");
    let answer: Value = serde_json::from_str(&text).unwrap();
    insta::with_settings!({ filters => vec![(s.base.as_str(), "[base url]")] }, {
        insta::assert_json_snapshot!("discovery", answer);
    });
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_input_is_400_naming_the_field() {
    let s = setup().await;
    for (body, field) in [
        (
            json!({ "subject": { "type": "user", "id": "x" } }),
            "subject.id:",
        ),
        (
            json!({ "subject": s.user(s.org.u), "resource": { "type": "document", "id": s.org.a }, "action": { "name": "cap.x" } }),
            "resource.type:",
        ),
        (
            json!({ "subject": s.user(s.org.u), "resource": s.node(s.org.a) }),
            "action:",
        ),
        (
            json!({ "subject": { "type": "user", "id": s.org.u }, "resource": s.node(s.org.a), "action": { "name": "cap.x" } }),
            "subject.properties.tenant_id:",
        ),
        (json!([1, 2]), "body:"),
    ] {
        let (status, answer) = s.post("/access/v1/evaluation", &body).await;
        assert_eq!(status, 400, "{body}");
        let message = answer["error"]["message"].as_str().unwrap();
        assert!(message.starts_with(field), "{message}");
        insta::with_settings!({ filters => vec![(UUID, "[uuid]")] }, {
            insta::assert_json_snapshot!(format!("bad_input_{}", field.trim_end_matches(':')), answer);
        });
    }
    let mut unknown = batch(&s, None);
    unknown["options"] = json!({ "evaluations_semantic": "first_come" });
    let (status, answer) = s.post("/access/v1/evaluations", &unknown).await;
    assert_eq!(status, 400);
    assert!(
        answer["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("options.evaluations_semantic")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_caller_is_a_service_with_the_permission_for_what_it_asks() {
    let s = setup().await;
    let body = json!({ "subject": s.user(s.org.u), "resource": s.node(s.org.a1), "action": { "name": "cap.x" } });
    let _ = rustls::crypto::ring::default_provider().install_default();
    let anonymous = reqwest::Client::new()
        .post(format!("{}/access/v1/evaluation", s.base))
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
    assert_eq!(anonymous.headers()["www-authenticate"], "Bearer");
    let checker_only = s.service_token(None, &["authz.check"]);
    let (status, _) = s
        .post_as(
            Some(&checker_only),
            "/access/v1/search/subject",
            &json!({ "subject": { "type": "user", "properties": { "tenant_id": s.org.tenant } },
                     "action": { "name": "cap.x" }, "resource": s.node(s.org.a1) }),
        )
        .await;
    assert_eq!(status, 403);
    let elsewhere = s.service_token(Some(Uuid::new_v4()), &["authz.check"]);
    let (status, answer) = s
        .post_as(Some(&elsewhere), "/access/v1/evaluation", &body)
        .await;
    assert_eq!(status, 403, "{answer}");
    // Bound to the org's tenant, the tenant may be left out.
    let bound = s.service_token(Some(s.org.tenant), &["authz.check"]);
    let implicit = json!({ "subject": { "type": "user", "id": s.org.u }, "resource": s.node(s.org.a1), "action": { "name": "cap.x" } });
    let (status, answer) = s
        .post_as(Some(&bound), "/access/v1/evaluation", &implicit)
        .await;
    assert_eq!((status, answer["decision"].clone()), (200, json!(true)));
}

#[tokio::test(flavor = "multi_thread")]
async fn the_request_id_is_echoed() {
    let s = setup().await;
    let _ = rustls::crypto::ring::default_provider().install_default();
    let response = reqwest::Client::new()
        .post(format!("{}/access/v1/evaluation", s.base))
        .bearer_auth(s.pep())
        .header("x-request-id", "req-42")
        .body(json!({ "subject": s.user(s.org.u), "resource": s.node(s.org.a1), "action": { "name": "cap.x" } }).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["x-request-id"], "req-42");
}

#[tokio::test(flavor = "multi_thread")]
async fn with_tls_the_api_is_served_over_https_with_the_grpc_certificate() {
    let test = TestDb::new().await;
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("AuthZEN test CA");
    let identity = ca.server(&["localhost"]);
    let tls = portcullis::tls::ServerTls::load(
        &write(dir.path(), "server.pem", &identity.cert_pem),
        &write(dir.path(), "server.key", &identity.key_pem),
        None,
    )
    .unwrap();
    let port = unused_port();
    let _server = TestServer::build(test.db())
        .settings(|s| {
            s.tls = Some(tls);
            s.authzen_listen = Some(format!("127.0.0.1:{port}").parse().unwrap());
            s.authzen_base_url = Some(format!("https://localhost:{port}"));
        })
        .start()
        .await;
    let trusting = portcullis::tls::http_client()
        .add_root_certificate(reqwest::Certificate::from_pem(ca.pem().as_bytes()).unwrap())
        .build()
        .unwrap();
    let url = format!("https://localhost:{port}/.well-known/authzen-configuration");
    let answer = trusting.get(&url).send().await.unwrap();
    assert_eq!(answer.status(), 200);
    let discovery: Value = serde_json::from_str(&answer.text().await.unwrap()).unwrap();
    assert_eq!(
        discovery["access_evaluation_endpoint"],
        format!("https://localhost:{port}/access/v1/evaluation")
    );
    let plaintext = reqwest::Client::new()
        .get(format!(
            "http://localhost:{port}/.well-known/authzen-configuration"
        ))
        .send()
        .await;
    assert!(!plaintext.is_ok_and(|r| r.status().is_success()));
}
