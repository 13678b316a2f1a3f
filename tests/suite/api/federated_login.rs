//! Federated login: `Authenticate` with an OpenID Connect ID token. The
//! provider's keys are made here (no network); tokens are signed as a
//! provider signs them.

use std::sync::{Arc, Mutex, OnceLock};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use chrono::{DateTime, Utc};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use portcullis::admin::global::{self, GlobalAdministrator, TenantChange};
use portcullis::authn::federation::{
    FederatedIdentity, Federation, IdTokenError, ProviderConfig, ProviderKind,
};
use portcullis::db::{Db, RlsContext};
use portcullis::proto::v1::authentication_client::AuthenticationClient;
use portcullis::proto::v1::{
    AuthenticateRequest, AuthenticateResponse, OidcCredentials, authenticate_request,
};
use rand::rngs::OsRng;
use serde_json::{Value, json};
use tonic::transport::Channel;
use tonic::{Code, Status};
use uuid::Uuid;

use crate::support::fixtures::{TenantWorld, execute, populate};
use crate::support::server::TestServer;
use crate::support::{TestDb, audit_rows};

const GOOGLE: &str = "https://accounts.google.com";
const OTHER_ISSUER: &str = "https://login.example.test/realms/staff";
const CLIENT_ID: &str = "portcullis-web.apps.example.test";

/// A provider's signing key: the private half signs, the public half is
/// published as a JWK.
struct ProviderKey {
    kid: String,
    alg: Algorithm,
    signing: EncodingKey,
    jwk: Value,
}

impl ProviderKey {
    fn ed25519(kid: &str) -> Self {
        use ed25519_dalek::pkcs8::EncodePrivateKey;
        let key = ed25519_dalek::SigningKey::generate(&mut OsRng);
        Self {
            kid: kid.into(),
            alg: Algorithm::EdDSA,
            signing: EncodingKey::from_ed_der(key.to_pkcs8_der().unwrap().as_bytes()),
            jwk: json!({
                "kty": "OKP", "crv": "Ed25519", "use": "sig", "alg": "EdDSA", "kid": kid,
                "x": B64.encode(key.verifying_key().as_bytes()),
            }),
        }
    }

    fn es256(kid: &str) -> Self {
        use p256::elliptic_curve::sec1::ToEncodedPoint;
        use p256::pkcs8::EncodePrivateKey;
        let key = p256::SecretKey::random(&mut OsRng);
        let point = key.public_key().to_encoded_point(false);
        Self {
            kid: kid.into(),
            alg: Algorithm::ES256,
            signing: EncodingKey::from_ec_der(key.to_pkcs8_der().unwrap().as_bytes()),
            jwk: json!({
                "kty": "EC", "crv": "P-256", "use": "sig", "alg": "ES256", "kid": kid,
                "x": B64.encode(point.x().unwrap()), "y": B64.encode(point.y().unwrap()),
            }),
        }
    }

    /// RSA keys are slow to make: one per test binary.
    fn rs256(kid: &str) -> Self {
        use rsa::pkcs1::EncodeRsaPrivateKey;
        use rsa::traits::PublicKeyParts;
        static KEY: OnceLock<rsa::RsaPrivateKey> = OnceLock::new();
        let key = KEY.get_or_init(|| rsa::RsaPrivateKey::new(&mut OsRng, 2048).unwrap());
        Self {
            kid: kid.into(),
            alg: Algorithm::RS256,
            signing: EncodingKey::from_rsa_der(key.to_pkcs1_der().unwrap().as_bytes()),
            jwk: json!({
                "kty": "RSA", "use": "sig", "alg": "RS256", "kid": kid,
                "n": B64.encode(key.n().to_bytes_be()), "e": B64.encode(key.e().to_bytes_be()),
            }),
        }
    }

    fn sign(&self, claims: &Value) -> String {
        self.sign_as(self.alg, claims)
    }

    fn sign_as(&self, alg: Algorithm, claims: &Value) -> String {
        let mut header = Header::new(alg);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, claims, &self.signing).unwrap()
    }
}

fn jwks(keys: &[&ProviderKey]) -> Value {
    json!({ "keys": keys.iter().map(|k| k.jwk.clone()).collect::<Vec<_>>() })
}

/// What a provider puts in an ID token for `sub`, valid around `now`.
fn claims(sub: &str, email: &str, now: DateTime<Utc>) -> Value {
    json!({
        "iss": GOOGLE, "aud": CLIENT_ID, "sub": sub,
        "email": email, "email_verified": true,
        "iat": now.timestamp() - 5, "exp": now.timestamp() + 600,
        // As providers do: two tokens issued in one second differ.
        "jti": Uuid::new_v4().to_string(),
    })
}

fn with(mut claims: Value, field: &str, value: Value) -> Value {
    claims[field] = value;
    claims
}

fn config(issuer: &str, provider: ProviderKind, algorithms: &[Algorithm]) -> ProviderConfig {
    ProviderConfig {
        issuer: issuer.into(),
        provider,
        audiences: vec![CLIENT_ID.into()],
        jwks_url: None,
        jwks_file: None,
        algorithms: algorithms.to_vec(),
        leeway_seconds: 60,
        require_nonce: false,
        jwks_refresh_seconds: 3600,
    }
}

/// A provider whose keys are in a JWKS file.
fn federation_with(
    dir: &tempfile::TempDir,
    mut config: ProviderConfig,
    keys: &[&ProviderKey],
) -> Federation {
    let path = dir.path().join(format!("{}.json", Uuid::new_v4()));
    std::fs::write(&path, jwks(keys).to_string()).unwrap();
    config.jwks_file = Some(path);
    Federation::new(vec![config]).unwrap()
}

/// Google trusted with `key` (EdDSA).
fn google(key: &ProviderKey) -> (Federation, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let federation = federation_with(
        &dir,
        config(GOOGLE, ProviderKind::Google, &[key.alg]),
        &[key],
    );
    (federation, dir)
}

// --- Verifying the token -------------------------------------------------

#[tokio::test]
async fn tokens_signed_with_rs256_es256_and_eddsa_verify() {
    let now = Utc::now();
    for key in [
        ProviderKey::rs256("r1"),
        ProviderKey::es256("e1"),
        ProviderKey::ed25519("d1"),
    ] {
        let (federation, _dir) = google(&key);
        let token = key.sign(&claims("1100042", "Ada@Example.Test", now));
        let identity = federation.verify(&token, None, now).await.unwrap();
        let FederatedIdentity {
            provider,
            issuer,
            subject_key,
            email,
            email_verified,
            token_sha256: _,
            usable_until: _,
        } = identity;
        assert_eq!(
            (provider, issuer, subject_key, email, email_verified),
            (
                ProviderKind::Google,
                GOOGLE.into(),
                "1100042".into(),
                Some("Ada@Example.Test".into()),
                true,
            ),
            "{:?}",
            key.alg
        );
    }
}

async fn refused(federation: &Federation, token: &str, now: DateTime<Utc>) -> IdTokenError {
    federation.verify(token, None, now).await.unwrap_err()
}

#[test]
fn provider_kind_google_is_refused_for_any_issuer_but_googles() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keys.json");
    std::fs::write(&path, jwks(&[&ProviderKey::ed25519("k")]).to_string()).unwrap();
    for issuer in [OTHER_ISSUER, "https://accounts.google.com.evil.test"] {
        let mut impostor = config(issuer, ProviderKind::Google, &[Algorithm::EdDSA]);
        impostor.jwks_file = Some(path.clone());
        let refused = Federation::new(vec![impostor]).err();
        assert!(
            refused.is_some_and(|e| e.to_string().contains("only for Google's issuer")),
            "{issuer}"
        );
    }
    let mut genuine = config(GOOGLE, ProviderKind::Google, &[Algorithm::EdDSA]);
    genuine.jwks_file = Some(path);
    assert!(Federation::new(vec![genuine]).is_ok());
}

#[tokio::test]
async fn a_token_from_an_issuer_not_configured_is_refused() {
    let (key, now) = (ProviderKey::ed25519("k"), Utc::now());
    let (federation, _dir) = google(&key);
    let token = key.sign(&with(
        claims("1", "a@example.test", now),
        "iss",
        json!("https://evil.example.test"),
    ));
    assert_eq!(
        refused(&federation, &token, now).await,
        IdTokenError::UnknownIssuer
    );
}

#[tokio::test]
async fn a_token_for_another_client_is_refused() {
    let (key, now) = (ProviderKey::ed25519("k"), Utc::now());
    let (federation, _dir) = google(&key);
    let token = key.sign(&with(
        claims("1", "a@example.test", now),
        "aud",
        json!("someone-else.apps.example.test"),
    ));
    assert_eq!(
        refused(&federation, &token, now).await,
        IdTokenError::WrongAudience
    );
}

#[tokio::test]
async fn a_token_expired_beyond_the_leeway_is_refused_and_within_it_accepted() {
    let (key, now) = (ProviderKey::ed25519("k"), Utc::now());
    let (federation, _dir) = google(&key);
    let token = key.sign(&claims("1", "a@example.test", now));
    let expiry = now + chrono::Duration::seconds(600);
    let within = expiry + chrono::Duration::seconds(59);
    let beyond = expiry + chrono::Duration::seconds(61);
    assert!(federation.verify(&token, None, within).await.is_ok());
    assert_eq!(
        refused(&federation, &token, beyond).await,
        IdTokenError::Expired
    );
}

#[tokio::test]
async fn a_token_not_yet_valid_is_refused() {
    let (key, now) = (ProviderKey::ed25519("k"), Utc::now());
    let (federation, _dir) = google(&key);
    let later = now.timestamp() + 3600;
    let token = key.sign(&with(
        claims("1", "a@example.test", now),
        "nbf",
        json!(later),
    ));
    assert_eq!(
        refused(&federation, &token, now).await,
        IdTokenError::NotYetValid
    );
    let token = key.sign(&with(
        claims("1", "a@example.test", now),
        "iat",
        json!(later),
    ));
    assert_eq!(
        refused(&federation, &token, now).await,
        IdTokenError::NotYetValid
    );
}

#[tokio::test]
async fn a_token_signed_by_a_key_the_issuer_does_not_publish_is_refused() {
    let (published, now) = (ProviderKey::ed25519("k"), Utc::now());
    let (federation, _dir) = google(&published);
    // The same key id, another key.
    let forger = ProviderKey::ed25519("k");
    let token = forger.sign(&claims("1", "a@example.test", now));
    assert_eq!(
        refused(&federation, &token, now).await,
        IdTokenError::BadSignature
    );
    let unknown = ProviderKey::ed25519("unknown");
    let token = unknown.sign(&claims("1", "a@example.test", now));
    assert_eq!(
        refused(&federation, &token, now).await,
        IdTokenError::UnknownKey
    );
}

#[tokio::test]
async fn an_algorithm_the_issuer_is_not_configured_for_is_refused() {
    let now = Utc::now();
    let rsa = ProviderKey::rs256("r");
    let dir = tempfile::tempdir().unwrap();
    let federation = federation_with(
        &dir,
        config(GOOGLE, ProviderKind::Google, &[Algorithm::RS256]),
        &[&rsa],
    );
    let eddsa = ProviderKey::ed25519("r");
    let token = eddsa.sign(&claims("1", "a@example.test", now));
    assert_eq!(
        refused(&federation, &token, now).await,
        IdTokenError::AlgorithmNotAllowed("EdDSA".into())
    );
}

#[tokio::test]
async fn a_token_keyed_with_the_public_key_as_a_shared_secret_is_refused() {
    // The classic confusion: HS256 with the published key as the secret.
    let (key, now) = (ProviderKey::ed25519("k"), Utc::now());
    let (federation, _dir) = google(&key);
    let secret = key.jwk["x"].as_str().unwrap().as_bytes().to_vec();
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some("k".into());
    let token = jsonwebtoken::encode(
        &header,
        &claims("1", "a@example.test", now),
        &EncodingKey::from_secret(&secret),
    )
    .unwrap();
    assert_eq!(
        refused(&federation, &token, now).await,
        IdTokenError::AlgorithmNotAllowed("HS256".into())
    );
}

#[tokio::test]
async fn a_key_published_for_one_algorithm_verifies_no_other() {
    let now = Utc::now();
    let (ec, ed) = (ProviderKey::es256("ec"), ProviderKey::ed25519("ed"));
    let dir = tempfile::tempdir().unwrap();
    let federation = federation_with(
        &dir,
        config(
            GOOGLE,
            ProviderKind::Google,
            &[Algorithm::ES256, Algorithm::EdDSA],
        ),
        &[&ec, &ed],
    );
    // Signed by the Ed25519 key, but naming the EC key: refused before any
    // signature is checked against the wrong kind of key.
    let mut header = Header::new(Algorithm::EdDSA);
    header.kid = Some("ec".into());
    let token =
        jsonwebtoken::encode(&header, &claims("1", "a@example.test", now), &ed.signing).unwrap();
    assert_eq!(
        refused(&federation, &token, now).await,
        IdTokenError::BadSignature
    );
}

#[tokio::test]
async fn the_nonce_must_match_when_the_client_gives_one() {
    let (key, now) = (ProviderKey::ed25519("k"), Utc::now());
    let (federation, _dir) = google(&key);
    let token = key.sign(&with(
        claims("1", "a@example.test", now),
        "nonce",
        json!("n-123"),
    ));
    assert!(federation.verify(&token, Some("n-123"), now).await.is_ok());
    assert_eq!(
        federation
            .verify(&token, Some("n-999"), now)
            .await
            .unwrap_err(),
        IdTokenError::NonceMismatch
    );
    let without = key.sign(&claims("1", "a@example.test", now));
    assert_eq!(
        federation
            .verify(&without, Some("n-123"), now)
            .await
            .unwrap_err(),
        IdTokenError::NonceMismatch
    );
}

#[tokio::test]
async fn an_issuer_that_requires_a_nonce_refuses_a_login_without_one() {
    let (key, now) = (ProviderKey::ed25519("k"), Utc::now());
    let dir = tempfile::tempdir().unwrap();
    let mut strict = config(GOOGLE, ProviderKind::Google, &[key.alg]);
    strict.require_nonce = true;
    let federation = federation_with(&dir, strict, &[&key]);
    let token = key.sign(&with(
        claims("1", "a@example.test", now),
        "nonce",
        json!("n"),
    ));
    assert_eq!(
        refused(&federation, &token, now).await,
        IdTokenError::NonceRequired
    );
}

#[tokio::test]
async fn an_email_is_verified_only_when_the_provider_says_so() {
    let (key, now) = (ProviderKey::ed25519("k"), Utc::now());
    let (federation, _dir) = google(&key);
    for (flag, verified) in [
        (json!(true), true),
        (json!("true"), true),
        (json!(false), false),
        (json!("false"), false),
        (Value::Null, false),
    ] {
        let token = key.sign(&with(
            claims("1", "a@example.test", now),
            "email_verified",
            flag.clone(),
        ));
        let identity = federation.verify(&token, None, now).await.unwrap();
        assert_eq!(identity.email_verified, verified, "{flag}");
    }
}

#[tokio::test]
async fn another_issuer_s_subjects_are_keyed_by_issuer() {
    let (key, now) = (ProviderKey::es256("k"), Utc::now());
    let dir = tempfile::tempdir().unwrap();
    let federation = federation_with(
        &dir,
        config(OTHER_ISSUER, ProviderKind::Oidc, &[key.alg]),
        &[&key],
    );
    let token = key.sign(&with(
        claims("42", "a@example.test", now),
        "iss",
        json!(OTHER_ISSUER),
    ));
    let identity = federation.verify(&token, None, now).await.unwrap();
    assert_eq!(identity.provider, ProviderKind::Oidc);
    assert_eq!(identity.subject_key, format!("{OTHER_ISSUER} 42"));
}

#[test]
fn a_provider_configuration_that_could_be_abused_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keys.json");
    std::fs::write(&path, r#"{"keys": []}"#).unwrap();
    type Change = Box<dyn Fn(&mut ProviderConfig)>;
    let cases: Vec<(&str, Change)> = vec![
        (
            "a shared-secret algorithm",
            Box::new(|c| c.algorithms = vec![Algorithm::HS256]),
        ),
        ("no audience", Box::new(|c| c.audiences.clear())),
        (
            "keys over plain HTTP from another host",
            Box::new(|c| {
                c.jwks_file = None;
                c.jwks_url = Some("http://keys.example.test/jwks".parse().unwrap());
            }),
        ),
        (
            "two key sources",
            Box::new(|c| c.jwks_url = Some("https://keys.example.test/jwks".parse().unwrap())),
        ),
        ("a ten-minute leeway", Box::new(|c| c.leeway_seconds = 600)),
        (
            "an issuer with a space",
            Box::new(|c| c.issuer = "https://a b".into()),
        ),
    ];
    for (case, change) in cases {
        let mut config = config(GOOGLE, ProviderKind::Google, &[Algorithm::RS256]);
        config.jwks_file = Some(path.clone());
        change(&mut config);
        assert!(Federation::new(vec![config]).is_err(), "{case}");
    }
    let mut twice = config(GOOGLE, ProviderKind::Google, &[Algorithm::RS256]);
    twice.jwks_file = Some(path.clone());
    assert!(
        Federation::new(vec![twice.clone(), twice]).is_err(),
        "one issuer twice"
    );
}

#[tokio::test]
async fn an_unknown_key_id_fetches_the_published_keys_again() {
    let now = Utc::now();
    let (old, new) = (ProviderKey::ed25519("old"), ProviderKey::ed25519("new"));
    let published = Arc::new(Mutex::new(jwks(&[&old])));
    let fetches = Arc::new(Mutex::new(0u32));
    let app = {
        let (published, fetches) = (published.clone(), fetches.clone());
        axum::Router::new().route(
            "/jwks",
            axum::routing::get(move || {
                let (published, fetches) = (published.clone(), fetches.clone());
                async move {
                    *fetches.lock().unwrap() += 1;
                    published.lock().unwrap().to_string()
                }
            }),
        )
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let mut remote = config(GOOGLE, ProviderKind::Google, &[Algorithm::EdDSA]);
    remote.jwks_url = Some(format!("http://{addr}/jwks").parse().unwrap());
    let federation = Federation::new(vec![remote]).unwrap();

    let by_old = old.sign(&claims("1", "a@example.test", now));
    assert!(federation.verify(&by_old, None, now).await.is_ok());
    assert!(federation.verify(&by_old, None, now).await.is_ok());
    assert_eq!(*fetches.lock().unwrap(), 1, "kept between logins");
    // The provider rotates: it publishes the new key, then signs with it.
    *published.lock().unwrap() = jwks(&[&old, &new]);
    let by_new = new.sign(&claims("1", "a@example.test", now));
    assert!(federation.verify(&by_new, None, now).await.is_ok());
    assert_eq!(*fetches.lock().unwrap(), 2);
    // Made-up key ids do not make us fetch again at once.
    for kid in ["x1", "x2", "x3"] {
        let token = ProviderKey::ed25519(kid).sign(&claims("1", "a@example.test", now));
        assert_eq!(
            refused(&federation, &token, now).await,
            IdTokenError::UnknownKey
        );
    }
    assert_eq!(*fetches.lock().unwrap(), 2);
}

#[tokio::test]
async fn a_provider_whose_keys_cannot_be_fetched_is_unavailable() {
    let now = Utc::now();
    // A port nothing listens on.
    let port = crate::support::ports::unused_port();
    let mut remote = config(GOOGLE, ProviderKind::Google, &[Algorithm::EdDSA]);
    remote.jwks_url = Some(format!("http://127.0.0.1:{port}/jwks").parse().unwrap());
    let federation = Federation::new(vec![remote]).unwrap();
    let token = ProviderKey::ed25519("k").sign(&claims("1", "a@example.test", now));
    assert_eq!(
        refused(&federation, &token, now).await,
        IdTokenError::ProviderUnavailable
    );
}

// --- Logging in ------------------------------------------------------------

struct Setup {
    test: TestDb,
    db: Db,
    world: TenantWorld,
    email: String,
    key: ProviderKey,
    client: AuthenticationClient<Channel>,
    _server: TestServer,
    _dir: tempfile::TempDir,
}

async fn setup() -> Setup {
    let test = TestDb::new().await;
    let db = test.db();
    let world = populate(&db).await;
    let email = format!(
        "u-{}@example.test",
        &world.tenant.simple().to_string()[..12]
    );
    let key = ProviderKey::ed25519("google-1");
    let (federation, dir) = google(&key);
    let server = TestServer::build(db.clone())
        .app(|app| app.federation = Arc::new(federation))
        .start()
        .await;
    let client = AuthenticationClient::new(server.channel().await);
    Setup {
        test,
        db,
        world,
        email,
        key,
        client,
        _server: server,
        _dir: dir,
    }
}

impl Setup {
    async fn allow_linking(&self, tenant: Uuid, allowed: bool) {
        let admin = GlobalAdministrator::operator(Utc::now());
        let change = TenantChange::FederatedEmailLinking(allowed);
        global::change_tenant(
            &self.db,
            &admin,
            tenant.into(),
            change,
            std::time::Duration::ZERO,
        )
        .await
        .unwrap();
    }

    async fn login(&self, tenant: Uuid, id_token: String) -> Result<AuthenticateResponse, Status> {
        self.client
            .clone()
            .authenticate(AuthenticateRequest {
                tenant_id: tenant.to_string(),
                method: Some(authenticate_request::Method::Oidc(OidcCredentials {
                    id_token,
                    nonce: String::new(),
                })),
            })
            .await
            .map(|r| r.into_inner())
    }

    /// A token Google would sign for `sub` with `email`.
    fn token(&self, sub: &str, email: &str) -> String {
        self.key.sign(&claims(sub, email, Utc::now()))
    }

    async fn google_identities(&self, user: Uuid) -> usize {
        execute(
            &self.db,
            &RlsContext::tenant(self.world.tenant),
            &format!(
                "SELECT 1 FROM auth.user_identities WHERE user_id = '{user}' \
                 AND ident_provider_code = 'google'"
            ),
        )
        .await
        .unwrap()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_first_login_links_to_the_user_with_the_verified_email_when_the_tenant_allows_it() {
    let s = setup().await;
    s.allow_linking(s.world.tenant, true).await;
    // The provider's email may differ in case from the stored one.
    let session = s
        .login(s.world.tenant, s.token("sub-1", &s.email.to_uppercase()))
        .await
        .unwrap();
    assert_eq!(session.user_id, s.world.user.to_string());
    assert_eq!(session.tenant_id, s.world.tenant.to_string());
    assert!(!session.access_token.is_empty() && !session.refresh_token.is_empty());
    assert_eq!(s.google_identities(s.world.user).await, 1);
    let linked = audit_rows(&s.test, "auth.identity_linked").await;
    assert_eq!(linked.len(), 1);
    assert_eq!(
        linked[0].actor_id.as_deref(),
        Some(&*s.world.user.to_string())
    );
    let logins = audit_rows(&s.test, "auth.login_succeeded").await;
    assert_eq!(logins.len(), 1);
    assert!(
        logins[0].payload.contains(r#""method": "google""#),
        "{}",
        logins[0].payload
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_linked_identity_logs_in_by_its_subject_whatever_email_the_token_carries() {
    let s = setup().await;
    s.allow_linking(s.world.tenant, true).await;
    s.login(s.world.tenant, s.token("sub-1", &s.email))
        .await
        .unwrap();
    // Linking is turned off again and the account's email changes: the
    // subject still names the same user.
    s.allow_linking(s.world.tenant, false).await;
    let session = s
        .login(s.world.tenant, s.token("sub-1", "renamed@example.test"))
        .await
        .unwrap();
    assert_eq!(session.user_id, s.world.user.to_string());
    assert_eq!(audit_rows(&s.test, "auth.identity_linked").await.len(), 1);
}

async fn refused_login(s: &Setup, token: String, message: &str, reason: &str) {
    let status = s.login(s.world.tenant, token).await.unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    assert_eq!(status.message(), message);
    let failures = audit_rows(&s.test, "auth.login_failed").await;
    let last = failures.last().expect("the refusal is audited");
    assert!(
        last.payload.contains(&format!(r#""reason": "{reason}""#)),
        "{}",
        last.payload
    );
    assert_eq!(
        s.google_identities(s.world.user).await,
        0,
        "nothing is linked"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_id_token_opens_one_session_and_is_refused_when_presented_again() {
    let s = setup().await;
    s.allow_linking(s.world.tenant, true).await;
    let token = s.token("sub-1", &s.email);
    s.login(s.world.tenant, token.clone()).await.unwrap();
    let replayed = s.login(s.world.tenant, token.clone()).await.unwrap_err();
    assert_eq!(replayed.code(), Code::Unauthenticated);
    let failures = audit_rows(&s.test, "auth.login_failed").await;
    assert!(
        failures
            .last()
            .is_some_and(|f| f.payload.contains(r#""reason": "replayed""#)),
        "{failures:?}"
    );
    assert_eq!(audit_rows(&s.test, "auth.login_succeeded").await.len(), 1);
    // A fresh token from the provider still logs in.
    s.login(s.world.tenant, s.token("sub-1", &s.email))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn no_identity_is_linked_while_the_tenant_does_not_allow_it() {
    let s = setup().await;
    let token = s.token("sub-1", &s.email);
    refused_login(
        &s,
        token,
        "no user of this tenant is linked to this identity",
        "not_linked",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unverified_email_is_never_linked() {
    let s = setup().await;
    s.allow_linking(s.world.tenant, true).await;
    let token = s.key.sign(&with(
        claims("sub-1", &s.email, Utc::now()),
        "email_verified",
        json!(false),
    ));
    refused_login(
        &s,
        token,
        "no user is linked to this identity, and the provider has not verified its email",
        "email_not_verified",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unknown_subject_whose_email_no_user_has_is_refused() {
    let s = setup().await;
    s.allow_linking(s.world.tenant, true).await;
    let token = s.token("sub-1", "stranger@example.test");
    refused_login(
        &s,
        token,
        "no user is linked to this identity or has its email",
        "no_user_with_email",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_user_links_one_identity_per_provider() {
    let s = setup().await;
    s.allow_linking(s.world.tenant, true).await;
    s.login(s.world.tenant, s.token("sub-1", &s.email))
        .await
        .unwrap();
    let status = s
        .login(s.world.tenant, s.token("sub-2", &s.email))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    assert_eq!(
        status.message(),
        "the user with this email is linked to another identity of this provider"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_deactivated_user_cannot_log_in_with_a_linked_identity() {
    let s = setup().await;
    s.allow_linking(s.world.tenant, true).await;
    s.login(s.world.tenant, s.token("sub-1", &s.email))
        .await
        .unwrap();
    execute(
        &s.db,
        &RlsContext::tenant(s.world.tenant),
        &format!(
            "UPDATE auth.users SET user_state_code = 'inactive' WHERE user_id = '{}'",
            s.world.user
        ),
    )
    .await
    .unwrap();
    let status = s
        .login(s.world.tenant, s.token("sub-1", &s.email))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    assert_eq!(status.message(), "invalid credentials");
}

#[tokio::test(flavor = "multi_thread")]
async fn one_google_account_may_belong_to_a_user_in_each_of_two_tenants() {
    let s = setup().await;
    let other = populate(&s.db).await;
    let other_email = format!(
        "u-{}@example.test",
        &other.tenant.simple().to_string()[..12]
    );
    s.allow_linking(s.world.tenant, true).await;
    s.allow_linking(other.tenant, true).await;
    let here = s
        .login(s.world.tenant, s.token("sub-1", &s.email))
        .await
        .unwrap();
    let there = s
        .login(other.tenant, s.token("sub-1", &other_email))
        .await
        .unwrap();
    assert_eq!(here.user_id, s.world.user.to_string());
    assert_eq!(there.user_id, other.user.to_string());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_refused_token_says_why_and_names_the_field() {
    let s = setup().await;
    let expired = s.key.sign(&with(
        claims("sub-1", &s.email, Utc::now()),
        "exp",
        json!(Utc::now().timestamp() - 3600),
    ));
    let status = s.login(s.world.tenant, expired).await.unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    assert_eq!(status.message(), "oidc.id_token: expired");
    let status = s.login(s.world.tenant, String::new()).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(
        status.message().contains("oidc.id_token"),
        "{}",
        status.message()
    );
}
