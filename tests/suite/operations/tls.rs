//! gRPC over TLS, and mutual TLS against a client CA, with certificates
//! made in the test.

use std::path::Path;

use portcullis::tls::{ServerTls, TlsFileError};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;

use crate::support::TestDb;
use crate::support::certs::{Leaf, TestCa, write};
use crate::support::server::TestServer;

struct TlsServer {
    _test: TestDb,
    _dir: tempfile::TempDir,
    server: TestServer,
    ca: TestCa,
}

async fn start(mutual: bool) -> TlsServer {
    let test = TestDb::new().await;
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("Portcullis test CA");
    let identity = ca.server(&["localhost"]);
    let tls = ServerTls::load(
        &write(dir.path(), "server.pem", &identity.cert_pem),
        &write(dir.path(), "server.key", &identity.key_pem),
        mutual
            .then(|| write(dir.path(), "clients.pem", &ca.pem()))
            .as_deref(),
    )
    .unwrap();
    let server = TestServer::build(test.db())
        .settings(|s| s.tls = Some(tls))
        .start()
        .await;
    TlsServer {
        _test: test,
        _dir: dir,
        server,
        ca,
    }
}

impl TlsServer {
    /// A health check over a channel trusting `trusted`, presenting
    /// `identity` if given.
    async fn call(&self, trusted: &TestCa, identity: Option<&Leaf>) -> Result<(), String> {
        let mut tls = ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(trusted.pem()))
            .domain_name("localhost");
        if let Some(leaf) = identity {
            tls = tls.identity(Identity::from_pem(&leaf.cert_pem, &leaf.key_pem));
        }
        let channel =
            Channel::from_shared(format!("https://localhost:{}", self.server.addr.port()))
                .unwrap()
                .tls_config(tls)
                .unwrap()
                .connect()
                .await
                .map_err(|e| format!("connect: {e:?}"))?;
        HealthClient::new(channel)
            .check(HealthCheckRequest::default())
            .await
            .map(|_| ())
            .map_err(|status| format!("call: {status:?}"))
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_client_trusting_the_ca_is_served_over_tls() {
    let s = start(false).await;
    s.call(&s.ca, None).await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_client_trusting_another_ca_refuses_the_server() {
    let s = start(false).await;
    assert!(s.call(&TestCa::new("Another CA"), None).await.is_err());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_plaintext_client_gets_no_answer_from_a_tls_server() {
    let s = start(false).await;
    let answer = async {
        let channel = Channel::from_shared(format!("http://{}", s.server.addr))
            .unwrap()
            .connect()
            .await
            .map_err(|e| e.to_string())?;
        HealthClient::new(channel)
            .check(HealthCheckRequest::default())
            .await
            .map_err(|e| e.to_string())
    };
    let answer = tokio::time::timeout(std::time::Duration::from_secs(5), answer).await;
    assert!(
        !matches!(answer, Ok(Ok(_))),
        "a plaintext call was answered"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn mutual_tls_serves_a_client_certificate_from_the_ca() {
    let s = start(true).await;
    let client = s.ca.client("billing");
    s.call(&s.ca, Some(&client)).await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn mutual_tls_refuses_a_client_without_a_certificate() {
    let s = start(true).await;
    assert!(s.call(&s.ca, None).await.is_err());
}

#[tokio::test(flavor = "multi_thread")]
async fn mutual_tls_refuses_a_client_certificate_from_another_ca() {
    let s = start(true).await;
    let stranger = TestCa::new("Another CA").client("billing");
    assert!(s.call(&s.ca, Some(&stranger)).await.is_err());
}

#[test]
fn unusable_tls_files_are_named_with_their_setting() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("CA");
    let leaf = ca.server(&["localhost"]);
    let cert = write(dir.path(), "server.pem", &leaf.cert_pem);
    let key = write(dir.path(), "server.key", &leaf.key_pem);
    let garbage = write(dir.path(), "garbage.pem", "not a certificate");
    let missing = Path::new("/nonexistent/server.pem");

    let message = |result: Result<ServerTls, TlsFileError>| result.unwrap_err().to_string();
    let e = message(ServerTls::load(missing, &key, None));
    assert!(e.starts_with("--tls-cert /nonexistent/server.pem"), "{e}");
    let e = message(ServerTls::load(&garbage, &key, None));
    assert!(e.starts_with("--tls-cert"), "{e}");
    let e = message(ServerTls::load(&cert, &garbage, None));
    assert!(e.starts_with("--tls-key"), "{e}");
    let e = message(ServerTls::load(&cert, &key, Some(&garbage)));
    assert!(e.starts_with("--tls-client-ca"), "{e}");
    assert!(ServerTls::load(&cert, &key, Some(&cert)).is_ok());
}
