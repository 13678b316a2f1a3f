//! Caller authentication on every RPC: what an unusable token gets, and
//! what a caller without the RPC's permission gets.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::Utc;
use portcullis::proto::v1::authentication_client::AuthenticationClient;
use portcullis::proto::v1::{GetSigningKeysRequest, VerifyTokenRequest};
use portcullis::tokens::{KeyRing, NewToken, TokenType};
use secrecy::ExposeSecret;
use tonic::{Code, Request};
use uuid::Uuid;

use crate::support::TestDb;
use crate::support::fixtures::populate;
use crate::support::server::{TestServer, test_tokens_with};
use crate::support::services::{bearer, create_service, token_of, verify};

const UNAUTHENTICATED: &str = "missing, invalid, expired or revoked access token";

/// A server and a valid token of a service allowed to call VerifyToken,
/// the RPC these tests knock on.
struct Setup {
    _test: TestDb,
    server: TestServer,
    channel: tonic::transport::Channel,
    token: String,
    service_id: Uuid,
}

async fn setup() -> Setup {
    let test = TestDb::new().await;
    let db = test.db();
    let service = create_service(&db, None, &["tokens.verify"]).await;
    let server = TestServer::start(db).await;
    let channel = server.channel().await;
    let token = token_of(&channel, &service).await.access_token;
    Setup {
        _test: test,
        server,
        channel,
        token,
        service_id: service.id,
    }
}

async fn assert_unauthenticated(setup: &Setup, request: Request<VerifyTokenRequest>) {
    let status = AuthenticationClient::new(setup.channel.clone())
        .verify_token(request)
        .await
        .unwrap_err();
    assert_eq!(
        (status.code(), status.message()),
        (Code::Unauthenticated, UNAUTHENTICATED)
    );
}

fn probe(caller_token: &str) -> Request<VerifyTokenRequest> {
    bearer(VerifyTokenRequest { token: "x".into() }, caller_token)
}

/// A token signed by `keys` for the setup's service, issued at `issued_at`.
fn token_signed_by(setup: &Setup, keys: KeyRing, issued_at: chrono::DateTime<Utc>) -> String {
    let tokens = test_tokens_with(keys);
    let issued = tokens
        .issue(
            &NewToken {
                typ: TokenType::Service,
                subject: setup.service_id,
                tenant: None,
                session: Uuid::new_v4(),
                permissions: vec!["tokens.verify".into()],
                lifetime: Duration::from_secs(600),
                service_key: None,
            },
            issued_at,
        )
        .unwrap();
    issued.token.expose_secret().to_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_valid_token_is_accepted() {
    let setup = setup().await;
    assert!(
        verify(&setup.channel, &setup.token, &setup.token)
            .await
            .unwrap()
            .active
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_missing_token_is_unauthenticated() {
    let setup = setup().await;
    assert_unauthenticated(
        &setup,
        Request::new(VerifyTokenRequest { token: "x".into() }),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_malformed_token_is_unauthenticated() {
    let setup = setup().await;
    for garbage in ["", "abc", "a.b.c", &format!("{}x", setup.token)] {
        assert_unauthenticated(&setup, probe(garbage)).await;
    }
    let mut no_scheme = Request::new(VerifyTokenRequest { token: "x".into() });
    no_scheme
        .metadata_mut()
        .insert("authorization", setup.token.parse().unwrap());
    assert_unauthenticated(&setup, no_scheme).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_expired_token_is_unauthenticated() {
    let setup = setup().await;
    let keys = setup.server.tokens.keys().clone();
    let expired = token_signed_by(&setup, keys, Utc::now() - chrono::Duration::hours(1));
    assert_unauthenticated(&setup, probe(&expired)).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_token_not_yet_valid_is_unauthenticated() {
    let setup = setup().await;
    let keys = setup.server.tokens.keys().clone();
    let future = token_signed_by(&setup, keys, Utc::now() + chrono::Duration::hours(1));
    assert_unauthenticated(&setup, probe(&future)).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_wrongly_signed_token_is_unauthenticated() {
    let setup = setup().await;
    let (head_and_claims, signature) = setup.token.rsplit_once('.').unwrap();
    let mut bytes = URL_SAFE_NO_PAD.decode(signature).unwrap();
    bytes[0] ^= 0x01;
    let tampered_signature = format!("{head_and_claims}.{}", URL_SAFE_NO_PAD.encode(&bytes));
    assert_unauthenticated(&setup, probe(&tampered_signature)).await;

    // Claims changed after signing (permissions widened).
    let mut parts: Vec<String> = setup.token.split('.').map(str::to_owned).collect();
    let claims = String::from_utf8(URL_SAFE_NO_PAD.decode(&parts[1]).unwrap()).unwrap();
    parts[1] = URL_SAFE_NO_PAD.encode(claims.replace("tokens.verify", "admin.all").as_bytes());
    assert_unauthenticated(&setup, probe(&parts.join("."))).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_alg_swapped_token_is_unauthenticated() {
    let setup = setup().await;
    let kid = setup
        .server
        .tokens
        .keys()
        .signing_key(Utc::now())
        .unwrap()
        .kid()
        .to_owned();
    let public = setup.server.tokens.keys().published(Utc::now())[0]
        .public_key
        .clone();
    let claims: serde_json::Value = serde_json::from_slice(
        &URL_SAFE_NO_PAD
            .decode(setup.token.split('.').nth(1).unwrap())
            .unwrap(),
    )
    .unwrap();
    // The classic attack: HMAC keyed with the public key, and `alg: none`.
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
    header.kid = Some(kid.clone());
    let hs256 = jsonwebtoken::encode(
        &header,
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(&URL_SAFE_NO_PAD.decode(&public).unwrap()),
    )
    .unwrap();
    assert_unauthenticated(&setup, probe(&hs256)).await;
    let none_header = URL_SAFE_NO_PAD.encode(format!(r#"{{"alg":"none","kid":"{kid}"}}"#));
    let unsigned = format!("{none_header}.{}.", setup.token.split('.').nth(1).unwrap());
    assert_unauthenticated(&setup, probe(&unsigned)).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_token_with_an_unknown_kid_is_unauthenticated() {
    let setup = setup().await;
    let stranger = token_signed_by(
        &setup,
        KeyRing::ephemeral(Utc::now(), Duration::from_secs(60)),
        Utc::now(),
    );
    assert_unauthenticated(&setup, probe(&stranger)).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_revoked_token_is_unauthenticated() {
    use portcullis::proto::v1::RevokeServiceTokenRequest;
    use portcullis::proto::v1::revoke_service_token_request::Target;
    use portcullis::proto::v1::service_credentials_client::ServiceCredentialsClient;

    let setup = setup().await;
    ServiceCredentialsClient::new(setup.channel.clone())
        .revoke_service_token(bearer(
            RevokeServiceTokenRequest {
                target: Some(Target::Token(setup.token.clone())),
            },
            &setup.token,
        ))
        .await
        .unwrap();
    assert_unauthenticated(&setup, probe(&setup.token)).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_caller_without_the_rpc_permission_is_denied_naming_it() {
    let test = TestDb::new().await;
    let db = test.db();
    let service = create_service(&db, None, &["authz.check"]).await;
    let server = TestServer::start(db).await;
    let channel = server.channel().await;
    let token = token_of(&channel, &service).await.access_token;
    let status = verify(&channel, &token, &token).await.unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);
    assert!(
        status.message().contains("tokens.verify"),
        "{}",
        status.message()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tenant_bound_service_may_not_inspect_another_tenants_token() {
    let test = TestDb::new().await;
    let db = test.db();
    let a = populate(&db).await;
    let b = populate(&db).await;
    let checker = create_service(&db, Some(a.tenant), &["tokens.verify"]).await;
    let own = create_service(&db, Some(a.tenant), &["authz.check"]).await;
    let foreign = create_service(&db, Some(b.tenant), &["authz.check"]).await;
    let server = TestServer::start(db).await;
    let channel = server.channel().await;
    let checker_token = token_of(&channel, &checker).await.access_token;

    let own_token = token_of(&channel, &own).await.access_token;
    assert!(
        verify(&channel, &checker_token, &own_token)
            .await
            .unwrap()
            .active
    );
    let foreign_token = token_of(&channel, &foreign).await.access_token;
    let status = verify(&channel, &checker_token, &foreign_token)
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);
}

#[tokio::test(flavor = "multi_thread")]
async fn verify_token_answers_inactive_rather_than_an_error_for_a_bad_token() {
    let setup = setup().await;
    let seen = verify(&setup.channel, &setup.token, "not-a-token")
        .await
        .unwrap();
    assert!(!seen.active);
    assert!(seen.subject_id.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn public_rpcs_need_no_token_and_signing_keys_are_a_jwks() {
    let setup = setup().await;
    let keys = AuthenticationClient::new(setup.channel.clone())
        .get_signing_keys(GetSigningKeysRequest {})
        .await
        .unwrap()
        .into_inner();
    let jwks: serde_json::Value = serde_json::from_str(&keys.jwks_json).unwrap();
    let jwk = &jwks["keys"][0];
    assert_eq!(
        (jwk["kty"].as_str(), jwk["crv"].as_str()),
        (Some("OKP"), Some("Ed25519"))
    );
    let header = jsonwebtoken::decode_header(&setup.token).unwrap();
    assert_eq!(jwk["kid"].as_str(), header.kid.as_deref());
    assert_eq!(keys.keys[0].kid, header.kid.unwrap());
    assert!(
        keys.keys[0].not_after.is_none(),
        "the current key does not retire"
    );

    // Anyone can verify offline with the published key.
    let decoding =
        jsonwebtoken::DecodingKey::from_ed_components(jwk["x"].as_str().unwrap()).unwrap();
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::EdDSA);
    validation.set_audience(&["portcullis"]);
    jsonwebtoken::decode::<serde_json::Value>(&setup.token, &decoding, &validation).unwrap();
}
