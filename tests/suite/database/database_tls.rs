//! Connecting to PostgreSQL over TLS when the URL asks for it, through a
//! TLS-only front whose certificate is made in the test.

use std::time::Duration;

use portcullis::db::{Db, PoolSettings};
use portcullis::ops::migrate;
use url::Url;

use crate::support::certs::{TestCa, write};
use crate::support::tls_front::TlsFront;
use crate::support::{TestDb, test_pool};

struct Fixture {
    test: TestDb,
    dir: tempfile::TempDir,
    ca: TestCa,
    front: TlsFront,
}

/// A front for the application role's server, presenting a certificate for
/// `names` signed by a fresh CA.
async fn front_for(names: &[&str]) -> Fixture {
    let test = TestDb::new().await;
    let upstream = test.app_url.clone();
    fixture(test, &upstream, names).await
}

async fn fixture(test: TestDb, upstream: &Url, names: &[&str]) -> Fixture {
    let ca = TestCa::new("Database CA");
    let upstream = (
        upstream.host_str().unwrap().to_owned(),
        upstream.port().unwrap_or(5432),
    );
    let front = TlsFront::start(&ca.server(names), upstream).await;
    Fixture {
        test,
        dir: tempfile::tempdir().unwrap(),
        ca,
        front,
    }
}

impl Fixture {
    /// `base` pointed at the front as `host`, with these query parameters.
    fn url(&self, base: &Url, host: &str, params: &[(&str, String)]) -> Url {
        let mut url = base.clone();
        url.set_host(Some(host)).unwrap();
        url.set_port(Some(self.front.addr.port())).unwrap();
        url.query_pairs_mut().extend_pairs(params);
        url
    }

    fn ca_file(&self, ca: &TestCa) -> String {
        write(self.dir.path(), "root.pem", &ca.pem())
            .display()
            .to_string()
    }

    async fn ping(&self, host: &str, params: &[(&str, String)]) -> Result<(), String> {
        let url = self.url(&self.test.app_url, host, params);
        let settings = PoolSettings {
            acquire_timeout: Duration::from_secs(1),
            ..test_pool()
        };
        let db = Db::new(url.as_str(), &settings).map_err(|e| e.to_string())?;
        db.ping().await.map_err(|e| e.to_string())
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn verify_full_connects_to_a_server_whose_certificate_names_the_host() {
    let f = front_for(&["localhost"]).await;
    let root = f.ca_file(&f.ca);
    f.ping(
        "localhost",
        &[("sslmode", "verify-full".into()), ("sslrootcert", root)],
    )
    .await
    .unwrap();
    assert!(f.front.handshakes() > 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn verify_full_refuses_a_certificate_for_another_host() {
    let f = front_for(&["db.example.test"]).await;
    let root = f.ca_file(&f.ca);
    let refused = f
        .ping(
            "localhost",
            &[("sslmode", "verify-full".into()), ("sslrootcert", root)],
        )
        .await
        .unwrap_err();
    assert!(refused.contains("certificate"), "{refused}");
}

#[tokio::test(flavor = "multi_thread")]
async fn verify_ca_accepts_a_certificate_for_another_host_from_the_trusted_ca() {
    let f = front_for(&["db.example.test"]).await;
    let root = f.ca_file(&f.ca);
    f.ping(
        "localhost",
        &[("sslmode", "verify-ca".into()), ("sslrootcert", root)],
    )
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn verify_ca_refuses_a_server_signed_by_another_ca() {
    let f = front_for(&["localhost"]).await;
    let root = f.ca_file(&TestCa::new("Another CA"));
    let refused = f
        .ping(
            "localhost",
            &[("sslmode", "verify-ca".into()), ("sslrootcert", root)],
        )
        .await
        .unwrap_err();
    assert!(refused.contains("certificate"), "{refused}");
}

#[tokio::test(flavor = "multi_thread")]
async fn require_encrypts_without_a_ca_file() {
    let f = front_for(&["db.example.test"]).await;
    f.ping("127.0.0.1", &[("sslmode", "require".into())])
        .await
        .unwrap();
    assert!(f.front.handshakes() > 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_url_without_sslmode_does_not_speak_tls() {
    // The front serves TLS only: a plaintext client is turned away.
    let f = front_for(&["localhost"]).await;
    assert!(f.ping("127.0.0.1", &[]).await.is_err());
    assert_eq!(f.front.handshakes(), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn migrations_run_over_tls() {
    let test = TestDb::empty().await;
    // The owner connects to PostgreSQL itself, never through PgBouncer.
    let owner = test.migration_url.clone();
    let f = fixture(test, &owner, &["localhost"]).await;
    let root = f.ca_file(&f.ca);
    let url = f.url(
        &owner,
        "localhost",
        &[("sslmode", "verify-full".into()), ("sslrootcert", root)],
    );
    let applied = migrate::run(&url).await.unwrap();
    assert!(!applied.is_empty());
    assert!(f.front.handshakes() > 0);
}
