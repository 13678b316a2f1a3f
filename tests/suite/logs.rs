//! Logs never carry a secret or a token, even at the most verbose level.

use std::io::Write;
use std::sync::{Arc, Mutex};

use portcullis::proto::v1::RevokeServiceTokenRequest;
use portcullis::proto::v1::revoke_service_token_request::Target;
use portcullis::proto::v1::service_credentials_client::ServiceCredentialsClient;

use crate::support::TestDb;
use crate::support::server::TestServer;
use crate::support::services::{bearer, create_service, exchange, token_of, verify};

#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn no_secret_or_token_reaches_the_logs() {
    // Set-up (template, service account) outside the captured section.
    let setup = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let test = setup.block_on(TestDb::new());
    let service = setup.block_on(create_service(&test.db(), None, &["tokens.verify"]));

    // Everything below runs on this one thread, so a thread-local subscriber
    // sees the server's logs as well as the client's.
    let capture = Capture::default();
    let writer = capture.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .finish();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let token = tracing::subscriber::with_default(subscriber, || {
        runtime.block_on(async {
            let server = TestServer::start(test.db()).await;
            let channel = server.channel().await;
            let token = token_of(&channel, &service).await.access_token;
            assert!(verify(&channel, &token, &token).await.unwrap().active);
            exchange(
                &channel,
                service.key.as_str(),
                &format!("{}x", service.secret),
                &[],
            )
            .await
            .unwrap_err();
            ServiceCredentialsClient::new(channel.clone())
                .revoke_service_token(bearer(
                    RevokeServiceTokenRequest {
                        target: Some(Target::Token(token.clone())),
                    },
                    &token,
                ))
                .await
                .unwrap();
            token
        })
    });

    let logs = String::from_utf8(capture.0.lock().unwrap().clone()).unwrap();
    assert!(
        logs.lines().count() > 50,
        "the capture caught nothing:\n{logs}"
    );
    let secret_random = &service.secret[36..];
    let signature = token.rsplit('.').next().unwrap();
    assert!(!logs.contains(secret_random), "a service secret was logged");
    assert!(!logs.contains(signature), "an access token was logged");
}
