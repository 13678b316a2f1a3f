//! End to end over a real socket: health, reflection, shutdown.

use std::time::{Duration, Instant};

use tonic::transport::Channel;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

use crate::support::TestDb;
use crate::support::server::TestServer;

const SERVICES: [&str; 3] = [
    "portcullis.v1.Authentication",
    "portcullis.v1.Authorization",
    "portcullis.v1.ServiceCredentials",
];

/// Every service reflection lists: ours, and Envoy's ext_authz (whose
/// descriptors come from `proto/vendor/`).
const REFLECTED: [&str; 5] = [
    "portcullis.v1.Administration",
    "portcullis.v1.Authentication",
    "portcullis.v1.Authorization",
    "portcullis.v1.ServiceCredentials",
    "envoy.service.auth.v3.Authorization",
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
    let (proxy, through_proxy) = test.db_behind_proxy().await;
    let server = TestServer::start(through_proxy).await;
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
    for service in REFLECTED {
        assert!(
            names.iter().any(|n| n == service),
            "{service} missing from {names:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn reflection_v1_lists_every_served_service() {
    let test = TestDb::new().await;
    let server = TestServer::start(test.db()).await;
    assert_lists_our_services(&list_services!(v1, server.channel().await));
}

#[tokio::test(flavor = "multi_thread")]
async fn reflection_v1alpha_lists_every_served_service() {
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

/// `portcullis serve` as a process, with `grace` to shut down in.
struct ServeProcess {
    child: tokio::process::Child,
    addr: String,
    _keys: tempfile::TempDir,
}

impl ServeProcess {
    async fn start(test: &TestDb, grace: &str) -> Self {
        Self::start_with(test, grace, &[]).await
    }

    async fn start_with(test: &TestDb, grace: &str, env: &[(&str, &str)]) -> Self {
        let keys = tempfile::tempdir().unwrap();
        portcullis::tokens::keys::generate_key_file(
            keys.path(),
            chrono::Utc::now() - chrono::Duration::minutes(1),
        )
        .unwrap();
        let port = crate::support::ports::unused_port();
        let addr = format!("127.0.0.1:{port}");
        let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_portcullis"))
            .arg("serve")
            .env("PORTCULLIS_DATABASE_URL", test.app_url.as_str())
            .env("PORTCULLIS_SIGNING_KEYS_DIR", keys.path())
            .env("PORTCULLIS_LISTEN", &addr)
            .env("PORTCULLIS_SHUTDOWN_GRACE", grace)
            .env("PORTCULLIS_DB_STATEMENT_TIMEOUT", "120s")
            .env("PORTCULLIS_LOG", "info")
            .envs(env.iter().copied())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        Self {
            child,
            addr,
            _keys: keys,
        }
    }

    async fn channel(&self) -> Channel {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(channel) = Channel::from_shared(format!("http://{}", self.addr))
                .unwrap()
                .connect()
                .await
            {
                wait_for_health(&channel, ServingStatus::Serving).await;
                return channel;
            }
            assert!(Instant::now() < deadline, "serve did not start");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn terminate(&self) {
        let pid = self.child.id().unwrap().to_string();
        let sent = std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap();
        assert!(sent.success());
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_ends_the_process_within_the_grace_when_a_call_is_held_by_a_slow_statement() {
    use diesel_async::{AsyncConnection, AsyncPgConnection, SimpleAsyncConnection};
    let test = TestDb::new().await;
    let mut serve = ServeProcess::start(&test, "2s").await;
    let channel = serve.channel().await;
    // Whatever a login reads stays locked until this transaction ends.
    let mut holder = AsyncPgConnection::establish(test.migration_url.as_str())
        .await
        .unwrap();
    holder
        .batch_execute(
            "BEGIN; LOCK TABLE auth.tenants, auth.users, auth.anonymous_throttles \
             IN ACCESS EXCLUSIVE MODE",
        )
        .await
        .unwrap();
    let held = tokio::spawn(async move {
        portcullis::proto::v1::authentication_client::AuthenticationClient::new(channel)
            .authenticate(portcullis::proto::v1::AuthenticateRequest {
                tenant_id: uuid::Uuid::new_v4().to_string(),
                method: Some(
                    portcullis::proto::v1::authenticate_request::Method::Password(
                        portcullis::proto::v1::PasswordCredentials {
                            login: Some(portcullis::proto::v1::password_credentials::Login::Email(
                                "held@example.test".into(),
                            )),
                            password: "a password long enough".into(),
                        },
                    ),
                ),
            })
            .await
    });
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(!held.is_finished(), "the call was not held by the lock");
    let signalled = Instant::now();
    serve.terminate();
    let exit = tokio::time::timeout(Duration::from_secs(10), serve.child.wait())
        .await
        .expect("serve still running 10 s after SIGTERM")
        .unwrap();
    let took = signalled.elapsed();
    holder.batch_execute("ROLLBACK").await.unwrap();
    assert!(
        took <= Duration::from_secs(3),
        "exited {took:?} after SIGTERM with a 2 s grace"
    );
    assert!(exit.success(), "{exit:?}");
    let answer = held.await.unwrap();
    assert!(answer.is_err(), "the held call answered {answer:?}");
    let mut log = String::new();
    use tokio::io::AsyncReadExt;
    let _ = serve
        .child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut log)
        .await;
    let _ = serve
        .child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut log)
        .await;
    assert!(log.contains("\"cut_calls\":1"), "{log}");
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_ends_the_process_within_the_grace_when_the_trace_collector_hangs() {
    // A collector that accepts connections and never answers.
    let collector = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", collector.local_addr().unwrap());
    let _held = tokio::spawn(async move {
        let mut connections = Vec::new();
        while let Ok((socket, _)) = collector.accept().await {
            connections.push(socket);
        }
    });
    let test = TestDb::new().await;
    let mut serve = ServeProcess::start_with(
        &test,
        "1s",
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
            ("PORTCULLIS_TRACE_SAMPLE_RATIO", "1"),
        ],
    )
    .await;
    let channel = serve.channel().await;
    // Spans to export, which the collector will never take.
    for _ in 0..20 {
        let _ = health(&channel, "").await;
    }
    let signalled = Instant::now();
    serve.terminate();
    let exit = tokio::time::timeout(Duration::from_secs(30), serve.child.wait())
        .await
        .expect("serve still running 30 s after SIGTERM")
        .unwrap();
    let took = signalled.elapsed();
    assert!(
        took <= Duration::from_secs(2),
        "exited {took:?} after SIGTERM with a 1 s grace"
    );
    // Within the grace, by giving up the flush, not by the last resort.
    assert!(exit.success(), "{exit:?}");
}
