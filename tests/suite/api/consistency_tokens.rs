//! Consistency on the gRPC API without replicas: every write answers with a
//! token, every routed read says what answered it, and a requirement the
//! server cannot read is refused naming its header.

use portcullis::proto::v1::ExchangeServiceCredentialRequest;
use portcullis::proto::v1::authorization_client::AuthorizationClient;
use portcullis::proto::v1::service_credentials_client::ServiceCredentialsClient;
use tonic::Code;
use tonic::transport::Channel;

use crate::support::TestDb;
use crate::support::fixtures::{TenantWorld, populate};
use crate::support::server::TestServer;
use crate::support::services::{TestService, bearer, create_service, token_of};

struct Setup {
    _test: TestDb,
    _server: TestServer,
    channel: Channel,
    world: TenantWorld,
    service: TestService,
}

async fn setup() -> Setup {
    let test = TestDb::new().await;
    let db = test.db();
    let world = populate(&db).await;
    let service = create_service(&db, Some(world.tenant), &["authz.check"]).await;
    let server = TestServer::start(db).await;
    Setup {
        _test: test,
        channel: server.channel().await,
        _server: server,
        world,
        service,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_credential_exchange_answers_with_the_token_of_its_write() {
    let s = setup().await;
    let answer = ServiceCredentialsClient::new(s.channel.clone())
        .exchange_service_credential(ExchangeServiceCredentialRequest {
            service_key: s.service.key.as_str().into(),
            secret: s.service.secret.clone(),
            requested_permissions: vec![],
        })
        .await
        .unwrap();
    let token = answer.metadata().get("x-consistency-token").unwrap();
    assert!(token.to_str().unwrap().starts_with("ct1."), "{token:?}");
    assert_eq!(answer.get_ref().consistency_token, token.to_str().unwrap());
}

#[tokio::test(flavor = "multi_thread")]
async fn without_replicas_a_check_is_the_primarys_and_says_so() {
    let s = setup().await;
    let token = token_of(&s.channel, &s.service).await.access_token;
    let mut request = bearer(s.world.check_at_child(), &token);
    request
        .metadata_mut()
        .insert("x-consistency", "max_staleness=10s".parse().unwrap());
    let answer = AuthorizationClient::new(s.channel.clone())
        .check_capability(request)
        .await
        .unwrap();
    assert_eq!(
        answer.metadata().get("x-consistency-served-by").unwrap(),
        "primary"
    );
    assert!(answer.metadata().get("x-consistency-staleness").is_none());
    // The body says what the header says.
    let header = answer
        .metadata()
        .get("x-consistency-token")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    assert_eq!(answer.get_ref().consistency_token, header);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unreadable_requirement_or_a_forged_token_is_refused_naming_its_header() {
    let s = setup().await;
    let token = token_of(&s.channel, &s.service).await.access_token;
    for (header, value, field) in [
        ("x-consistency", "eventually", "x-consistency"),
        ("x-consistency", "max_staleness=soon", "x-consistency"),
        (
            "x-consistency",
            "at_least_as_fresh=ct1.a.b.c",
            "x-consistency",
        ),
        ("x-consistency-token", "ct1.a.b.c", "x-consistency-token"),
        ("x-consistency-token", "cts1.k1.1.00", "x-consistency-token"),
    ] {
        let mut request = bearer(s.world.check_at_child(), &token);
        request
            .metadata_mut()
            .insert(header, value.parse().unwrap());
        let status = AuthorizationClient::new(s.channel.clone())
            .check_capability(request)
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{value}");
        assert!(
            status.message().starts_with(&format!("{field}: ")),
            "{}",
            status.message()
        );
    }
}
