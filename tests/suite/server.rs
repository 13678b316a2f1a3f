//! End to end over a real socket: health, reflection, shutdown.

use std::time::{Duration, Instant};

use tonic::transport::Channel;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

use crate::support::TestDb;
use crate::support::proxy::Proxy;
use crate::support::server::TestServer;

const SERVICES: [&str; 3] = [
    "portcullis.v1.Authentication",
    "portcullis.v1.Authorization",
    "portcullis.v1.ServiceCredentials",
];

async fn health(channel: &Channel, service: &str) -> ServingStatus {
    let response = HealthClient::new(channel.clone())
        .check(HealthCheckRequest {
            service: service.into(),
        })
        .await
        .unwrap();
    response.into_inner().status()
}

async fn wait_for_health(channel: &Channel, wanted: ServingStatus) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let status = health(channel, "").await;
        if status == wanted {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "health stayed {status:?}, wanted {wanted:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn health_is_serving_while_the_database_answers() {
    let test = TestDb::new().await;
    let server = TestServer::start(test.db()).await;
    let channel = server.channel().await;
    wait_for_health(&channel, ServingStatus::Serving).await;
    for service in SERVICES {
        assert_eq!(
            health(&channel, service).await,
            ServingStatus::Serving,
            "{service}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn health_follows_the_database_down_and_back() {
    let test = TestDb::new().await;
    let target = format!(
        "{}:{}",
        test.app_url.host_str().unwrap(),
        test.app_url.port().unwrap_or(5432)
    );
    let proxy = Proxy::start(
        tokio::net::lookup_host(target)
            .await
            .unwrap()
            .next()
            .unwrap(),
    )
    .await;
    let server = TestServer::start(test.db_via("127.0.0.1", proxy.port)).await;
    let channel = server.channel().await;
    wait_for_health(&channel, ServingStatus::Serving).await;

    proxy.cut();
    wait_for_health(&channel, ServingStatus::NotServing).await;

    proxy.restore();
    wait_for_health(&channel, ServingStatus::Serving).await;
}

/// Asks a reflection service (`v1` or `v1alpha`: same messages, other
/// package) for the services it lists.
macro_rules! list_services {
    ($version:ident, $channel:expr) => {{
        use tonic_reflection::pb::$version::ServerReflectionRequest;
        use tonic_reflection::pb::$version::server_reflection_client::ServerReflectionClient;
        use tonic_reflection::pb::$version::server_reflection_request::MessageRequest;
        use tonic_reflection::pb::$version::server_reflection_response::MessageResponse;

        let request = ServerReflectionRequest {
            host: String::new(),
            message_request: Some(MessageRequest::ListServices(String::new())),
        };
        let mut stream = ServerReflectionClient::new($channel)
            .server_reflection_info(tokio_stream::iter([request]))
            .await
            .unwrap()
            .into_inner();
        let response = stream.message().await.unwrap().unwrap();
        let Some(MessageResponse::ListServicesResponse(list)) = response.message_response else {
            panic!("unexpected reflection answer: {response:?}");
        };
        list.service
            .into_iter()
            .map(|s| s.name)
            .collect::<Vec<String>>()
    }};
}

fn assert_lists_our_services(names: &[String]) {
    for service in SERVICES {
        assert!(
            names.iter().any(|n| n == service),
            "{service} missing from {names:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn reflection_v1_lists_the_three_services() {
    let test = TestDb::new().await;
    let server = TestServer::start(test.db()).await;
    assert_lists_our_services(&list_services!(v1, server.channel().await));
}

#[tokio::test(flavor = "multi_thread")]
async fn reflection_v1alpha_lists_the_three_services() {
    let test = TestDb::new().await;
    let server = TestServer::start(test.db()).await;
    assert_lists_our_services(&list_services!(v1alpha, server.channel().await));
}

#[tokio::test(flavor = "multi_thread")]
async fn shutdown_stops_accepting_and_returns_cleanly() {
    let test = TestDb::new().await;
    let server = TestServer::start(test.db()).await;
    let addr = server.addr;
    let channel = server.channel().await;
    wait_for_health(&channel, ServingStatus::Serving).await;

    tokio::time::timeout(Duration::from_secs(5), server.stop())
        .await
        .expect("shutdown took too long")
        .unwrap();
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "still accepting after shutdown"
    );
}
