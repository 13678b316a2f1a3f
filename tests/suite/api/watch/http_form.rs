//! `GET /v1/watch`: the same stream as Server-Sent Events, for consumers
//! without gRPC.

use std::time::Duration;

use super::setup_with;
use crate::support::services::{create_service, token_of};

fn client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::new()
}

/// A server with the AuthZEN listener, and its `/v1/watch` URL.
async fn setup_http() -> (super::Setup, String) {
    let s = setup_with(|settings| {
        let port = crate::support::ports::unused_port();
        settings.authzen_listen = Some(([127, 0, 0, 1], port).into());
        settings.authzen_base_url = Some(format!("http://127.0.0.1:{port}"));
    })
    .await;
    let url = format!("{}/v1/watch", s.server.authzen.clone().unwrap());
    (s, url)
}

/// Reads the body until `until` appears in it; returns what was read.
async fn read_until(response: &mut reqwest::Response, until: &str) -> String {
    let mut text = String::new();
    while !text.contains(until) {
        let chunk = tokio::time::timeout(Duration::from_secs(10), response.chunk())
            .await
            .expect("more of the stream within 10 s")
            .unwrap()
            .expect("the stream went on");
        text.push_str(std::str::from_utf8(&chunk).unwrap());
    }
    text
}

#[tokio::test(flavor = "multi_thread")]
async fn the_stream_reads_as_server_sent_events_and_resumes_by_last_event_id() {
    let (s, url) = setup_http().await;
    let client = client();
    let mut response = client.get(&url).bearer_auth(&s.token).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"],
        "text/event-stream",
        "{:?}",
        response.headers()
    );
    let node = s.create_node("Seen over HTTP").await;
    let text = read_until(&mut response, "\n\n").await;
    let text = if text.contains("event: change") {
        text
    } else {
        read_until(&mut response, "event: change").await
    };
    assert!(text.contains(&node.to_string()), "{text}");
    let id = text
        .lines()
        .find_map(|line| line.strip_prefix("id: "))
        .unwrap()
        .to_owned();
    drop(response);

    // An EventSource reconnecting sends the last id it saw.
    let renamed = s.rename(node, "Renamed while away");
    renamed.await;
    let mut resumed = client
        .get(&url)
        .bearer_auth(&s.token)
        .header("last-event-id", &id)
        .send()
        .await
        .unwrap();
    let text = read_until(&mut resumed, "org.node_renamed").await;
    assert!(!text.contains("org.node_created"), "nothing twice: {text}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_http_form_refuses_as_the_grpc_one_does() {
    let (s, url) = setup_http().await;
    let client = client();
    let anonymous = client.get(&url).send().await.unwrap();
    assert_eq!(anonymous.status(), 401);
    let checker = create_service(&s.test.db(), Some(s.world.tenant), &["authz.check"]).await;
    let token = token_of(&s.channel, &checker).await.access_token;
    let without = client.get(&url).bearer_auth(&token).send().await.unwrap();
    assert_eq!(without.status(), 403);
    let bad = client
        .get(format!("{url}?kinds=org_node,session"))
        .bearer_auth(&s.token)
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    let body: serde_json::Value = serde_json::from_str(&bad.text().await.unwrap()).unwrap();
    assert_eq!(body["field"], "kinds[1]", "{body}");
}
