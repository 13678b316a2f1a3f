//! Tokens PostgREST accepts. PostgREST cannot be installed here, so this
//! does what it does for each request: verify the bearer token with the
//! JWKS file (`jwt-secret = "@FILE"`) and `jwt-aud`, then, in one
//! transaction as its authenticator role, switch to the role the
//! `jwt-role-claim-key` claim names and publish the claims as
//! `request.jwt.claims`, and run the query. The policies of payment_flow
//! then filter by Portcullis capabilities.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use diesel::sql_types::Text;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl, SimpleAsyncConnection};
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use portcullis::ops::admin::derive_url;
use portcullis::tokens::{
    KeyRing, NewToken, RevocationList, RoleClaim, TokenSettings, TokenType, Tokens,
};
use secrecy::ExposeSecret;
use uuid::Uuid;

use crate::database::sql_decisions::{Node, ROWS, ledger_setup};
use crate::support::fixtures::populate;
use crate::support::server::user_token;
use crate::support::{admin_url, drop_blocking};

const AUDIENCE: &str = "payments-api";

/// PostgREST's roles for this test: an authenticator that may become the
/// user role, which holds payment_flow's privileges.
struct Roles {
    authenticator: String,
    user: String,
    /// The test's database, dropped first: it holds their privileges.
    database: String,
}

impl Drop for Roles {
    fn drop(&mut self) {
        drop_blocking(
            self.database.clone(),
            vec![self.authenticator.clone(), self.user.clone()],
        );
    }
}

async fn roles(service_app_role: &str, database: &str) -> Roles {
    let tag = &Uuid::new_v4().simple().to_string()[..8];
    let roles = Roles {
        authenticator: format!("pgrst_authenticator_{tag}"),
        user: format!("pgrst_api_user_{tag}"),
        database: database.to_owned(),
    };
    let admin = admin_url().await;
    AsyncPgConnection::establish(admin.as_str())
        .await
        .unwrap()
        .batch_execute(&format!(
            "CREATE ROLE {a} LOGIN NOINHERIT; CREATE ROLE {u} NOLOGIN; \
             GRANT {u} TO {a}; GRANT {service_app_role} TO {u}; \
             GRANT CONNECT ON DATABASE \"{database}\" TO {a}",
            a = roles.authenticator,
            u = roles.user
        ))
        .await
        .unwrap();
    roles
}

fn tokens(user_role: &str) -> Tokens {
    Tokens::new(
        KeyRing::ephemeral(
            Utc::now() - chrono::Duration::hours(1),
            Duration::from_secs(600),
        ),
        TokenSettings {
            audience: AUDIENCE.into(),
            role_claim: Some(RoleClaim {
                user_role: user_role.into(),
                ..RoleClaim::default()
            }),
            ..TokenSettings::default()
        },
        Arc::new(RevocationList::default()),
    )
}

/// PostgREST's verification: the JWKS file's key named by `kid`, EdDSA,
/// `aud` as configured, times checked.
fn verify_as_postgrest(jwks: &str, token: &str) -> Result<serde_json::Value, String> {
    verify_for_audience(jwks, token, AUDIENCE)
}

/// The same, for a PostgREST configured with `audience`.
pub(crate) fn verify_for_audience(
    jwks: &str,
    token: &str,
    audience: &str,
) -> Result<serde_json::Value, String> {
    let set: JwkSet = serde_json::from_str(jwks).unwrap();
    let kid = jsonwebtoken::decode_header(token)
        .map_err(|e| e.to_string())?
        .kid
        .ok_or("no kid")?;
    let jwk = set.find(&kid).ok_or("no key with this kid")?;
    let key = DecodingKey::from_jwk(jwk).map_err(|e| e.to_string())?;
    let mut validation = Validation::new(Algorithm::EdDSA);
    validation.set_audience(&[audience]);
    jsonwebtoken::decode::<serde_json::Value>(token, &key, &validation)
        .map(|data| data.claims)
        .map_err(|e| format!("{:?}", e.kind()))
}

/// PostgREST's per-request transaction, as its authenticator role.
async fn request_as_postgrest(
    database: &str,
    authenticator: &str,
    claims: &serde_json::Value,
) -> BTreeSet<Uuid> {
    let url = derive_url(&admin_url().await, authenticator, None, database).unwrap();
    let mut conn = AsyncPgConnection::establish(url.as_str()).await.unwrap();
    conn.batch_execute("BEGIN").await.unwrap();
    diesel::sql_query(
        "SELECT set_config('role', $1, true), set_config('request.jwt.claims', $2, true)",
    )
    .bind::<Text, _>(claims["role"].as_str().unwrap())
    .bind::<Text, _>(claims.to_string())
    .execute(&mut conn)
    .await
    .unwrap();
    let rows: Vec<Node> = diesel::sql_query(ROWS).load(&mut conn).await.unwrap();
    conn.batch_execute("COMMIT").await.unwrap();
    rows.into_iter().map(|n| n.id).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn postgrest_serving_a_portcullis_token_sees_the_rows_the_users_capabilities_allow() {
    let (s, world) = ledger_setup().await;
    let roles = roles(&s.names.app_role, &s.test.name).await;
    let tokens = tokens(&roles.user);
    let jwks = tokens.keys().jwks_json(Utc::now());

    let token = user_token(&tokens, world.tenant, world.user);
    let claims = verify_as_postgrest(&jwks, &token).unwrap();
    assert_eq!(claims["role"], roles.user.as_str());
    let seen = request_as_postgrest(&s.test.name, &roles.authenticator, &claims).await;
    assert_eq!(seen, BTreeSet::from([world.root, world.child]));

    // Another tenant's user, through the same PostgREST: nothing here.
    let other = populate(&s.test.db()).await;
    let foreign =
        verify_as_postgrest(&jwks, &user_token(&tokens, other.tenant, other.user)).unwrap();
    assert!(
        request_as_postgrest(&s.test.name, &roles.authenticator, &foreign)
            .await
            .is_empty()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn postgrest_refuses_a_token_for_another_audience_or_by_another_key() {
    let (tenant, user) = (Uuid::new_v4(), Uuid::new_v4());
    let ours = tokens("api_user");
    let jwks = ours.keys().jwks_json(Utc::now());
    // Our key, the default audience rather than PostgREST's.
    let other_audience = Tokens::new(
        ours.keys().clone(),
        TokenSettings::default(),
        Arc::new(RevocationList::default()),
    );
    let refused = verify_as_postgrest(&jwks, &user_token(&other_audience, tenant, user));
    assert_eq!(refused.unwrap_err(), "InvalidAudience");
    // Another service's key.
    let stranger = tokens("api_user");
    assert!(verify_as_postgrest(&jwks, &user_token(&stranger, tenant, user)).is_err());
    assert!(verify_as_postgrest(&jwks, &user_token(&ours, tenant, user)).is_ok());
}

#[test]
fn a_service_token_names_its_service_s_role() {
    let tokens = tokens("api_user");
    let issued = tokens
        .issue(
            &NewToken {
                typ: TokenType::Service,
                subject: Uuid::new_v4(),
                tenant: None,
                session: Uuid::new_v4(),
                permissions: Vec::new(),
                lifetime: Duration::from_secs(60),
                service_key: Some("billing".into()),
            },
            Utc::now(),
        )
        .unwrap();
    let claims = verify_as_postgrest(
        &tokens.keys().jwks_json(Utc::now()),
        issued.token.expose_secret(),
    )
    .unwrap();
    assert_eq!(claims["role"], "api_service_billing");
}
