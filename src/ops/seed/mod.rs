//! `portcullis seed-demo`: a small, idempotent demo world for newcomers.

pub mod payment_flow;

use secrecy::{ExposeSecret, SecretString};
use uuid::{Uuid, uuid};

use crate::authn::users::set_password;
use crate::authn::{AuthnError, Email, Login, Passwords};
use crate::db::{Db, RlsContext};
use crate::names::NewPassword;
use crate::service_accounts::names::ServiceKey;
use crate::service_accounts::{self, ServiceError};

pub const DEMO_TENANT_ID: Uuid = uuid!("d0000000-0000-4000-8000-000000000001");
pub const DEMO_ROOT_NODE_ID: Uuid = uuid!("d0000000-0000-4000-8001-000000000001");
pub const DEMO_PARIS_NODE_ID: Uuid = uuid!("d0000000-0000-4000-8001-000000000004");
pub const DEMO_ALICE_ID: Uuid = uuid!("d0000000-0000-4000-8003-000000000001");
pub const DEMO_BOB_ID: Uuid = uuid!("d0000000-0000-4000-8003-000000000002");
pub const DEMO_SERVICE_KEY: &str = "demo-gateway";

const DEMO_SQL: &str = include_str!("demo.sql");

/// Known passwords of the demo users: for a developer's machine only.
pub const DEMO_PASSWORDS: [(&str, &str); 4] = [
    ("alice@demo.example", "alice-dev-password"),
    ("bob@demo.example", "bob-dev-password"),
    ("carol@demo.example", "carol-dev-password"),
    ("dave@demo.example", "dave-dev-password"),
];

/// Gives the demo users their known dev passwords, unless they have one.
pub async fn set_demo_passwords(db: &Db, passwords: &Passwords) -> anyhow::Result<()> {
    for (email, password) in DEMO_PASSWORDS {
        let login =
            Login::Email(Email::parse(email).map_err(|_| AuthnError::UnknownLogin(email.into()))?);
        set_password(
            db,
            passwords,
            DEMO_TENANT_ID,
            &login,
            &NewPassword::parse(password)
                .map_err(|e| anyhow::anyhow!("demo password of {email} {e}"))?,
            true,
        )
        .await?;
    }
    Ok(())
}

/// Writes the demo data through the application role's RLS-scoped door,
/// then rotates the demo service's secret and returns the new one (secrets
/// are stored hashed, so each run shows a fresh one).
pub async fn seed_demo(db: &Db) -> Result<SecretString, ServiceError> {
    db.write_script(
        &RlsContext::operator().with_tenant(DEMO_TENANT_ID),
        DEMO_SQL,
    )
    .await?;
    let key = ServiceKey::parse(DEMO_SERVICE_KEY)
        .map_err(|e| ServiceError::UnknownService(e.to_string()))?;
    let (_, secret) = service_accounts::issue_secret(db, &key, true).await?;
    Ok(secret)
}

/// grpcurl lines that work against a server on `addr` seeded by [`seed_demo`].
pub fn try_it(secret: &SecretString, addr: &str) -> String {
    let secret = secret.expose_secret();
    let user = |id: Uuid| {
        format!(r#""subject":{{"user":{{"tenant_id":"{DEMO_TENANT_ID}","user_id":"{id}"}}}}"#)
    };
    let (alice, bob) = (user(DEMO_ALICE_ID), user(DEMO_BOB_ID));
    let bearer = r#"-H "authorization: Bearer $TOKEN""#;
    format!(
        r#"Log in as alice (the demo users' passwords are <name>-dev-password):
  grpcurl -plaintext -d '{{"tenant_id":"{DEMO_TENANT_ID}","password":{{"email":"alice@demo.example","password":"alice-dev-password"}}}}' {addr} portcullis.v1.Authentication/Authenticate

Exchange the demo service's secret for a token, then use it:
  TOKEN=$(grpcurl -plaintext -d '{{"service_key":"{DEMO_SERVICE_KEY}","secret":"{secret}"}}' {addr} portcullis.v1.ServiceCredentials/ExchangeServiceCredential | grep -o '"accessToken": "[^"]*"' | cut -d'"' -f4)
  # allowed, explained: alice is treasurer for Europe, Paris is in Europe
  grpcurl -plaintext {bearer} -d '{{{alice},"capability":"payment.ledger.download","org_node_id":"{DEMO_PARIS_NODE_ID}","explain":true}}' {addr} portcullis.v1.Authorization/CheckCapability
  # denied with its reason: bob's treasurer assignment has expired
  grpcurl -plaintext {bearer} -d '{{{bob},"capability":"payment.ledger.download","org_node_id":"{DEMO_PARIS_NODE_ID}"}}' {addr} portcullis.v1.Authorization/CheckCapability
  # what bob may see, and why
  grpcurl -plaintext {bearer} -d '{{{bob},"page_size":10}}' {addr} portcullis.v1.Authorization/ListVisibleOrgNodes
  grpcurl -plaintext {bearer} -d "{{\"token\":\"$TOKEN\"}}" {addr} portcullis.v1.Authentication/VerifyToken
  grpcurl -plaintext -d '{{}}' {addr} portcullis.v1.Authentication/GetSigningKeys
  # follow every change to who may do what (a checkpoint each second; Ctrl-C stops)
  grpcurl -plaintext {bearer} -d '{{}}' {addr} portcullis.v1.Changes/Watch"#
    )
}

/// curl lines that ask the AuthZEN API on `authzen_addr` as a policy
/// enforcement point would, with the demo service's `$TOKEN` (from the
/// exchange line of [`try_it`]).
pub fn authzen_try_it(authzen_addr: &str) -> String {
    let new_york = uuid!("d0000000-0000-4000-8001-000000000006");
    let user = |id: Uuid| format!(r#"{{"type":"user","id":"{id}"}}"#);
    let node = |id: Uuid| format!(r#"{{"type":"org_node","id":"{id}"}}"#);
    let (alice, bob, paris) = (
        user(DEMO_ALICE_ID),
        user(DEMO_BOB_ID),
        node(DEMO_PARIS_NODE_ID),
    );
    let download = r#"{"name":"payment.ledger.download"}"#;
    let post = |path: &str, body: String| {
        format!(
            r#"curl -s -H "Authorization: Bearer $TOKEN" -d '{body}' http://{authzen_addr}/access/v1/{path}; echo"#
        )
    };
    let allowed = post(
        "evaluation",
        format!(r#"{{"subject":{alice},"resource":{paris},"action":{download}}}"#),
    );
    let denied = post(
        "evaluation",
        format!(r#"{{"subject":{bob},"resource":{paris},"action":{download}}}"#),
    );
    let batch = post(
        "evaluations",
        format!(
            r#"{{"subject":{alice},"action":{download},"options":{{"evaluations_semantic":"deny_on_first_deny"}},"evaluations":[{{"resource":{paris}}},{{"resource":{}}},{{"resource":{paris}}}]}}"#,
            node(new_york)
        ),
    );
    let who = post(
        "search/subject",
        format!(r#"{{"subject":{{"type":"user"}},"resource":{paris},"action":{download}}}"#),
    );
    let what = post(
        "search/action",
        format!(r#"{{"subject":{alice},"resource":{paris}}}"#),
    );
    format!(
        r#"AuthZEN 1.0 (the demo service's $TOKEN from the exchange line above is the policy enforcement point's):
  # allowed: alice may download Paris's ledger
  {allowed}
  # denied with its reason: bob's treasurer assignment has expired
  {denied}
  # a batch that stops at the first denial (New York)
  {batch}
  # who may download Paris's ledger; what alice may do in Paris
  {who}
  {what}
  curl -s http://{authzen_addr}/.well-known/authzen-configuration; echo
  # authzen: end"#
    )
}

/// curl lines that ask `/forward-auth` on `http_addr` as nginx's
/// `auth_request` would, with alice's token from `grpc_addr`.
pub fn forward_auth_try_it(grpc_addr: &str, http_addr: &str) -> String {
    let new_york = uuid!("d0000000-0000-4000-8001-000000000006");
    let ask = |token: &str, node: Uuid| {
        format!(
            r#"curl -si {token}-H 'X-Auth-Service: payment_flow' -H 'X-Original-Method: GET' -H 'X-Original-URI: /ledgers/{node}/entries' http://{http_addr}/forward-auth | grep -i '^HTTP\|^x-auth\|reason'"#
        )
    };
    let alice = r#"-H "Authorization: Bearer $ALICE" "#;
    let (allowed, denied, anonymous) = (
        ask(alice, DEMO_PARIS_NODE_ID),
        ask(alice, new_york),
        ask("", DEMO_PARIS_NODE_ID),
    );
    format!(
        r#"Forward-auth, as nginx's auth_request asks it (the catalogue maps payment_flow's GET /ledgers/{{node_id}}/entries to payment.ledger.read):
  ALICE=$(grpcurl -plaintext -d '{{"tenant_id":"{DEMO_TENANT_ID}","password":{{"email":"alice@demo.example","password":"alice-dev-password"}}}}' {grpc_addr} portcullis.v1.Authentication/Authenticate | grep -o '"accessToken": "[^"]*"' | cut -d'"' -f4)
  # 200: alice is treasurer for Europe; the headers go to the upstream
  {allowed}
  # 403: in New York alice may read the tree, not the ledger
  {denied}
  # 401: no token
  {anonymous}
  # forward-auth: end"#
    )
}
