//! Service accounts and gRPC clients for tests.

use portcullis::db::Db;
use portcullis::proto::v1::authentication_client::AuthenticationClient;
use portcullis::proto::v1::service_credentials_client::ServiceCredentialsClient;
use portcullis::proto::v1::{
    ExchangeServiceCredentialRequest, ExchangeServiceCredentialResponse, VerifyTokenRequest,
    VerifyTokenResponse,
};
use portcullis::service_accounts::names::{Permission, ServiceKey};
use portcullis::service_accounts::{self, NewService};
use secrecy::ExposeSecret;
use tonic::transport::Channel;
use tonic::{Request, Status};
use uuid::Uuid;

pub struct TestService {
    pub key: ServiceKey,
    pub id: Uuid,
    pub secret: String,
}

/// A service account with one secret and the given permissions.
pub async fn create_service(db: &Db, tenant: Option<Uuid>, permissions: &[&str]) -> TestService {
    let key = ServiceKey::parse(&format!(
        "svc-{}",
        &Uuid::new_v4().simple().to_string()[..12]
    ))
    .unwrap();
    let id = service_accounts::create(
        db,
        &NewService {
            key: key.clone(),
            label: "Test service".into(),
            tenant_id: tenant,
            permissions: permissions
                .iter()
                .map(|p| Permission::parse(p).unwrap())
                .collect(),
        },
    )
    .await
    .unwrap();
    let (_, secret) = service_accounts::issue_secret(db, &key, false)
        .await
        .unwrap();
    TestService {
        key,
        id,
        secret: secret.expose_secret().to_owned(),
    }
}

pub async fn exchange(
    channel: &Channel,
    key: &str,
    secret: &str,
    permissions: &[&str],
) -> Result<ExchangeServiceCredentialResponse, Status> {
    ServiceCredentialsClient::new(channel.clone())
        .exchange_service_credential(ExchangeServiceCredentialRequest {
            service_key: key.into(),
            secret: secret.into(),
            requested_permissions: permissions.iter().map(|p| p.to_string()).collect(),
        })
        .await
        .map(|r| r.into_inner())
}

/// Exchanges the service's secret; panics if refused.
pub async fn token_of(
    channel: &Channel,
    service: &TestService,
) -> ExchangeServiceCredentialResponse {
    exchange(channel, service.key.as_str(), &service.secret, &[])
        .await
        .unwrap()
}

pub fn bearer<T>(body: T, token: &str) -> Request<T> {
    let mut request = Request::new(body);
    request
        .metadata_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    request
}

/// `VerifyToken(token)` called with `caller_token` as the bearer.
pub async fn verify(
    channel: &Channel,
    caller_token: &str,
    token: &str,
) -> Result<VerifyTokenResponse, Status> {
    AuthenticationClient::new(channel.clone())
        .verify_token(bearer(
            VerifyTokenRequest {
                token: token.into(),
            },
            caller_token,
        ))
        .await
        .map(|r| r.into_inner())
}
