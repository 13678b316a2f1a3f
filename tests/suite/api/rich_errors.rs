//! Rich gRPC errors: `ErrorInfo` with a stable reason on every error,
//! `BadRequest` naming the field on every `INVALID_ARGUMENT`, `RetryInfo` on
//! `UNAVAILABLE` and `RESOURCE_EXHAUSTED`; the messages as before.

use portcullis::proto::v1::authorization_client::AuthorizationClient;
use portcullis::proto::v1::service_credentials_client::ServiceCredentialsClient;
use portcullis::proto::v1::{
    CapabilityCheck, CheckCapabilitiesRequest, CheckCapabilityRequest,
    ExchangeServiceCredentialRequest, Subject, UserRef, subject,
};
use tonic::{Code, Status};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;
use tonic_types::StatusExt;
use uuid::Uuid;

use crate::support::TestDb;
use crate::support::fixtures::populate;
use crate::support::server::TestServer;
use crate::support::services::{bearer, create_service, token_of};

fn reason(status: &Status) -> String {
    let details = status.get_error_details();
    let info = details
        .error_info()
        .unwrap_or_else(|| panic!("no ErrorInfo in {status:?}"));
    assert_eq!(info.domain, "portcullis.dev");
    info.reason.clone()
}

/// What a client reads of an error: its code, its message and its
/// details, as one value to compare with the reviewed snapshot.
fn snapshot(status: &Status) -> (Code, &str, tonic_types::ErrorDetails) {
    (status.code(), status.message(), status.get_error_details())
}

fn someone(tenant: Uuid, user: Uuid) -> Option<Subject> {
    Some(Subject {
        kind: Some(subject::Kind::User(UserRef {
            tenant_id: tenant.to_string(),
            user_id: user.to_string(),
        })),
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn an_invalid_argument_names_its_field_in_bad_request() {
    let test = TestDb::new().await;
    let db = test.db();
    let world = populate(&db).await;
    let service = create_service(&db, None, &["authz.check"]).await;
    let server = TestServer::start(db).await;
    let channel = server.channel().await;
    let token = token_of(&channel, &service).await.access_token;
    let mut checks: Vec<CapabilityCheck> = (0..4)
        .map(|_| CapabilityCheck {
            capability: "cap.x".into(),
            org_node_id: world.root.to_string(),
        })
        .collect();
    checks[3].org_node_id = "not-a-node".into();
    let status = AuthorizationClient::new(channel)
        .check_capabilities(bearer(
            CheckCapabilitiesRequest {
                subject: someone(world.tenant, world.user),
                checks,
                explain: false,
            },
            &token,
        ))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(reason(&status), "INVALID_ARGUMENT");
    insta::assert_debug_snapshot!(snapshot(&status));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_caller_without_a_token_or_a_permission_is_told_which_reason() {
    let test = TestDb::new().await;
    let db = test.db();
    let world = populate(&db).await;
    let lister = create_service(&db, None, &["authz.list_visible"]).await;
    let server = TestServer::start(db).await;
    let channel = server.channel().await;
    let request = || CheckCapabilityRequest {
        subject: someone(world.tenant, world.user),
        capability: "cap.x".into(),
        org_node_id: world.root.to_string(),
        explain: false,
    };
    let anonymous = AuthorizationClient::new(channel.clone())
        .check_capability(request())
        .await
        .unwrap_err();
    assert_eq!(reason(&anonymous), "TOKEN_INVALID");
    let token = token_of(&channel, &lister).await.access_token;
    let refused = AuthorizationClient::new(channel)
        .check_capability(bearer(request(), &token))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied);
    assert_eq!(reason(&refused), "PERMISSION_MISSING");
    insta::assert_debug_snapshot!(snapshot(&refused));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_wrong_secret_is_invalid_credentials() {
    let test = TestDb::new().await;
    let db = test.db();
    let service = create_service(&db, None, &["authz.check"]).await;
    let server = TestServer::start(db).await;
    let status = ServiceCredentialsClient::new(server.channel().await)
        .exchange_service_credential(ExchangeServiceCredentialRequest {
            service_key: service.key.as_str().to_owned(),
            secret: format!("{}x", service.secret),
            requested_permissions: Vec::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    assert_eq!(reason(&status), "INVALID_CREDENTIALS");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unreachable_database_is_unavailable_with_a_retry_delay() {
    let test = TestDb::new().await;
    let db = test.db();
    let world = populate(&db).await;
    let service = create_service(&db, None, &["authz.check"]).await;
    let (proxy, through_proxy) = test.db_behind_proxy().await;
    let server = TestServer::start(through_proxy).await;
    let channel = server.channel().await;
    let token = token_of(&channel, &service).await.access_token;
    proxy.cut();
    let status = AuthorizationClient::new(channel)
        .check_capability(bearer(
            CheckCapabilityRequest {
                subject: someone(world.tenant, world.user),
                capability: "cap.x".into(),
                org_node_id: world.root.to_string(),
                explain: false,
            },
            &token,
        ))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert_eq!(reason(&status), "DATABASE_UNAVAILABLE");
    assert!(status.get_error_details().retry_info().is_some());
}

#[tokio::test(flavor = "multi_thread")]
async fn an_error_a_library_made_carries_the_reason_of_its_code() {
    let test = TestDb::new().await;
    let server = TestServer::start(test.db()).await;
    let status = HealthClient::new(server.channel().await)
        .check(HealthCheckRequest {
            service: "no.such.Service".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
    assert_eq!(reason(&status), "NOT_FOUND");
}
