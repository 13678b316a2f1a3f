//! A configured read replica answers the read-only RPCs; everything else
//! stays on the primary. The "replica" here is the same database behind a
//! proxy the test can cut, which shows where each call goes.

use std::time::Duration;

use portcullis::db::PoolSettings;
use portcullis::proto::v1::authorization_client::AuthorizationClient;
use portcullis::proto::v1::{CheckCapabilityRequest, DecisionReason, Subject, UserRef, subject};
use tonic::Code;
use tonic::transport::Channel;

use crate::support::fixtures::{TenantWorld, populate};
use crate::support::proxy::Proxy;
use crate::support::server::TestServer;
use crate::support::services::{bearer, create_service, token_of};
use crate::support::{TestDb, test_pool};

async fn check(
    channel: &Channel,
    token: &str,
    world: &TenantWorld,
) -> Result<DecisionReason, Code> {
    let request = CheckCapabilityRequest {
        subject: Some(Subject {
            kind: Some(subject::Kind::User(UserRef {
                tenant_id: world.tenant.to_string(),
                user_id: world.user.to_string(),
            })),
        }),
        capability: format!("test.cap_{}", &world.tenant.simple().to_string()[..12]),
        org_node_id: world.child.to_string(),
        explain: false,
    };
    AuthorizationClient::new(channel.clone())
        .check_capability(bearer(request, token))
        .await
        .map(|answer| answer.into_inner().reason())
        .map_err(|status| status.code())
}

#[tokio::test(flavor = "multi_thread")]
async fn checks_go_to_the_replica_and_credential_exchanges_to_the_primary() {
    let test = TestDb::new().await;
    let setup = test.db();
    let world = populate(&setup).await;
    let service = create_service(&setup, Some(world.tenant), &["authz.check"]).await;
    let target = format!(
        "{}:{}",
        test.app_url.host_str().unwrap(),
        test.app_url.port().unwrap_or(5432)
    );
    let replica = Proxy::start(
        tokio::net::lookup_host(target)
            .await
            .unwrap()
            .next()
            .unwrap(),
    )
    .await;
    let mut replica_url = test.app_url.clone();
    replica_url.set_host(Some("127.0.0.1")).unwrap();
    replica_url.set_port(Some(replica.port)).unwrap();
    let settings = PoolSettings {
        acquire_timeout: Duration::from_millis(500),
        ..test_pool()
    };
    let db = test
        .db()
        .with_read_replica(replica_url.as_str(), &settings)
        .unwrap();
    let server = TestServer::start(db).await;
    let channel = server.channel().await;
    let token = token_of(&channel, &service).await.access_token;
    assert_eq!(
        check(&channel, &token, &world).await,
        Ok(DecisionReason::Allowed)
    );

    replica.cut();
    assert_eq!(
        check(&channel, &token, &world).await,
        Err(Code::Unavailable)
    );
    // The primary still exchanges secrets.
    token_of(&channel, &service).await;

    // Back: connections that closed with the cut are skipped, not used.
    replica.restore();
    assert_eq!(
        check(&channel, &token, &world).await,
        Ok(DecisionReason::Allowed)
    );
}
