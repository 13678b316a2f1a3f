//! Every HTTP listener keeps the gRPC port's guarantees: a request id set
//! when missing and echoed, a span joined to the caller's W3C trace
//! context, one log line per request with its outcome, and the decision
//! counter every edge shares.

use serde_json::json;
use tracing_subscriber::layer::SubscriberExt;

use crate::gateways::forward_auth::catalogue;
use crate::operations::metrics::{scrape, value};
use crate::operations::otel_traces::{Collector, attribute, hex};
use crate::support::TestDb;
use crate::support::capture::Capture;
use crate::support::fixtures::populate;
use crate::support::server::{TestServer, service_token, user_token};

const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const FORWARD_AUTH_PARENT: &str = "00f067aa0ba902b7";
const AUTHZEN_PARENT: &str = "b9c7c989f97918e1";

#[test]
fn each_forward_auth_listener_echoes_its_request_id_joins_the_trace_logs_once_and_counts_the_decision()
 {
    let _alone = crate::support::SCOPED_SUBSCRIBER
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let setup = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let test = setup.block_on(TestDb::new());
    let world = setup.block_on(populate(&test.db()));
    setup.block_on(catalogue(&test.db(), &world, "GET"));
    let collector = Collector::default();
    let collector_addr = setup.block_on(collector.serve());

    let capture = Capture::default();
    let writer = capture.clone();
    // Server and clients share this one thread, so a thread-local
    // subscriber sees the server's spans and log lines.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (forward_auth_id, authzen_id, text) = runtime.block_on(async {
        let provider = portcullis::telemetry::tracer_provider(
            &format!("http://{collector_addr}"),
            1.0,
            "test",
        )
        .unwrap();
        let subscriber = tracing_subscriber::registry()
            .with(portcullis::telemetry::otel_layer(&provider))
            .with(
                tracing_subscriber::fmt::layer()
                    .with_ansi(false)
                    .with_writer(move || writer.clone()),
            );
        let _default = tracing::subscriber::set_default(subscriber);
        tracing::callsite::rebuild_interest_cache();

        let server = TestServer::build(test.db())
            .forward_auth()
            .authzen()
            .metrics()
            .start()
            .await;
        let (forward_auth, authzen) = (
            server.forward_auth.clone().unwrap(),
            server.authzen.clone().unwrap(),
        );
        let metrics_addr = server.metrics.unwrap();
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = reqwest::Client::new();

        // Forward-auth, as nginx asks, with no request id of its own.
        let asked = client
            .get(format!("http://{forward_auth}/forward-auth"))
            .header("x-original-method", "GET")
            .header("x-original-uri", format!("/ledgers/{}/entries", world.child))
            .header("x-auth-service", "payment_flow")
            .header(
                "authorization",
                format!("Bearer {}", user_token(&server.tokens, world.tenant, world.user)),
            )
            .header("traceparent", format!("00-{TRACE_ID}-{FORWARD_AUTH_PARENT}-01"))
            .send()
            .await
            .unwrap();
        assert_eq!(asked.status(), 200);
        let forward_auth_id = asked.headers()["x-request-id"].to_str().unwrap().to_owned();
        assert_eq!(forward_auth_id.len(), 36, "a new request id: {forward_auth_id}");

        // AuthZEN, with the caller's request id, denied.
        let evaluated = client
            .post(format!("{authzen}/access/v1/evaluation"))
            .bearer_auth(service_token(&server.tokens, None, &["authz.check"]))
            .header("content-type", "application/json")
            .header("x-request-id", "edge-test-authzen")
            .header("traceparent", format!("00-{TRACE_ID}-{AUTHZEN_PARENT}-01"))
            .body(
                json!({
                    "subject": { "type": "user", "id": world.user, "properties": { "tenant_id": world.tenant } },
                    "resource": { "type": "org_node", "id": world.root },
                    "action": { "name": "test.no_such_capability" },
                })
                .to_string(),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(evaluated.status(), 200);
        assert_eq!(evaluated.headers()["x-request-id"], "edge-test-authzen");
        let authzen_id = "edge-test-authzen".to_owned();

        let text = scrape(metrics_addr).await;
        tokio::task::spawn_blocking(move || {
            provider.force_flush().unwrap();
            provider.shutdown().unwrap();
        })
        .await
        .unwrap();
        (forward_auth_id, authzen_id, text)
    });

    // One log line each, with the edge, the outcome and the reason.
    let logged = capture.text();
    for (id, edge, outcome, reason) in [
        (&forward_auth_id, "forward_auth", "allowed", "allowed"),
        (&authzen_id, "authzen", "denied", "unknown_capability"),
    ] {
        let lines: Vec<&str> = logged
            .lines()
            .filter(|l| l.contains("portcullis::http") && l.contains(id.as_str()))
            .collect();
        assert_eq!(lines.len(), 1, "{edge}: {lines:#?}\n{logged}");
        for expected in [
            format!("edge=\"{edge}\""),
            format!("outcome=\"{outcome}\""),
            format!("reason=\"{reason}\""),
        ] {
            assert!(
                lines[0].contains(&expected),
                "{expected} not in {}",
                lines[0]
            );
        }
    }

    // A span each, in the caller's trace, under the caller's span.
    let spans = collector.0.lock().unwrap().clone();
    for (edge, parent, reason) in [
        ("forward_auth", FORWARD_AUTH_PARENT, "allowed"),
        ("authzen", AUTHZEN_PARENT, "unknown_capability"),
    ] {
        let span = spans
            .iter()
            .find(|s| attribute(s, "edge").as_deref() == Some(edge))
            .unwrap_or_else(|| panic!("no {edge} span: {spans:#?}"));
        assert_eq!(hex(&span.trace_id), TRACE_ID, "{edge}");
        assert_eq!(hex(&span.parent_span_id), parent, "{edge}");
        assert_eq!(attribute(span, "reason").as_deref(), Some(reason), "{edge}");
    }

    // The one decision family, for both edges.
    for series in [
        "portcullis_decisions_total{edge=\"forward_auth\",outcome=\"allowed\",reason=\"allowed\"}",
        "portcullis_decisions_total{edge=\"authzen\",outcome=\"denied\",reason=\"unknown_capability\"}",
    ] {
        assert!(value(&text, series) >= 1.0, "{series} missing:\n{text}");
    }
}
