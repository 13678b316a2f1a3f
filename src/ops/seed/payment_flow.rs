//! The `payment_flow` example: another service's table whose row-level
//! security asks Portcullis's model in SQL. `dev` installs it beside the
//! demo tenant and prints `psql` lines to try it.

use uuid::Uuid;

use super::{DEMO_ALICE_ID, DEMO_BOB_ID, DEMO_TENANT_ID};
use crate::ops::admin::{AdminConnection, OperatorError, ident, literal, redact};
use crate::ops::provision::service::provision_service;
use crate::ops::provision::{
    Confirmation, Environment, Names, RolePasswords, Secrets, ServiceName, role_urls,
};
use url::Url;

pub const SERVICE: &str = "payment_flow";
const LAYOUT_SQL: &str = include_str!("payment_flow.sql");

/// The demo's requests: (id, node, memo, amount in cents).
const DEMO_REQUESTS: [(&str, &str, &str, i64); 6] = [
    (
        "d0000000-0000-4000-8009-000000000001",
        "d0000000-0000-4000-8001-000000000002",
        "Europe: auditors' fees",
        120_000,
    ),
    (
        "d0000000-0000-4000-8009-000000000002",
        "d0000000-0000-4000-8001-000000000004",
        "Paris: office rent",
        450_000,
    ),
    (
        "d0000000-0000-4000-8009-000000000003",
        "d0000000-0000-4000-8001-000000000007",
        "Paris Treasury: bank fees",
        8_000,
    ),
    (
        "d0000000-0000-4000-8009-000000000004",
        "d0000000-0000-4000-8001-000000000005",
        "Berlin: payroll",
        2_500_000,
    ),
    (
        "d0000000-0000-4000-8009-000000000005",
        "d0000000-0000-4000-8001-000000000008",
        "Berlin Archive: storage",
        30_000,
    ),
    (
        "d0000000-0000-4000-8009-000000000006",
        "d0000000-0000-4000-8001-000000000006",
        "New York: lease",
        900_000,
    ),
];
const DEMO_CAROL_ID: Uuid = uuid::uuid!("d0000000-0000-4000-8003-000000000003");
const DEMO_DAVE_ID: Uuid = uuid::uuid!("d0000000-0000-4000-8003-000000000004");
const DEMO_NEW_YORK_NODE_ID: Uuid = uuid::uuid!("d0000000-0000-4000-8001-000000000006");
const DEMO_AUDITOR_ROLE_ID: Uuid = uuid::uuid!("d0000000-0000-4000-8002-000000000002");

/// Provisions the service `payment_flow` in `env` (its schema and roles, as
/// `db provision-service` does) and lays out its table and policies as its
/// migration role. Idempotent.
pub async fn install(
    admin_url: &Url,
    env: Environment,
    database: &str,
    confirmed: Confirmation,
) -> Result<Names, OperatorError> {
    let service = ServiceName::parse(SERVICE)?;
    let names = Names::for_service(&service, env, database)?;
    let passwords = passwords(env)?;
    provision_service(admin_url, env, &service, &names, &passwords, confirmed).await?;
    let (migration_url, _) = role_urls(admin_url, &names, &passwords)?;
    AdminConnection::connect(&migration_url)
        .await?
        .execute(
            "laying out payment_flow.payment_requests",
            &LAYOUT_SQL.replace("{app_role}", &ident(&names.app_role)),
        )
        .await?;
    Ok(names)
}

/// The service's role passwords in `env`, from the environment.
pub fn passwords(env: Environment) -> Result<RolePasswords, OperatorError> {
    Ok(Secrets::load(None)?.passwords(&ServiceName::parse(SERVICE)?, env))
}

/// The demo's payment requests, at the demo tenant's nodes. Written as the
/// superuser: the table's policies would ask whose they are.
pub async fn seed_demo_requests(admin_url: &Url, database: &str) -> Result<(), OperatorError> {
    let rows: Vec<String> = DEMO_REQUESTS
        .iter()
        .map(|(id, node, memo, cents)| {
            let memo = literal(memo);
            format!("('{id}', '{DEMO_TENANT_ID}', '{node}', {memo}, {cents})")
        })
        .collect();
    AdminConnection::connect_in(admin_url, database)
        .await?
        .execute(
            "seeding the demo payment requests",
            &format!(
                "INSERT INTO payment_flow.payment_requests \
                 (request_id, tenant_id, org_node_id, memo_text, amount_cents) VALUES {} \
                 ON CONFLICT DO NOTHING",
                rows.join(", ")
            ),
        )
        .await
}

/// `psql` lines that show the policies at work, as the service's
/// application role (`app_url`), and an assignment made and ended through
/// the Administration API changing what the next query returns. They use
/// `$TOKEN` from the exchange line `dev` prints before them.
pub fn try_it(app_url: &Url, addr: &str) -> String {
    let pf = redact(app_url);
    let as_user = |user: Uuid| {
        format!(
            r#"psql "$PF" -qAt -c "SELECT auth.set_user_context('{DEMO_TENANT_ID}', '{user}'); SELECT memo_text FROM payment_flow.payment_requests ORDER BY memo_text""#
        )
    };
    let (alice, bob, carol, dave) = (
        as_user(DEMO_ALICE_ID),
        as_user(DEMO_BOB_ID),
        as_user(DEMO_CAROL_ID),
        as_user(DEMO_DAVE_ID),
    );
    let bearer = r#"-H "authorization: Bearer $TOKEN""#;
    format!(
        r#"payment_flow, another service's table fenced by Portcullis in SQL (policies call auth.org_nodes_with_capability):
  PF='{pf}'
  # alice (treasurer for Europe) reads Europe's requests; Berlin Archive is inactive
  {alice}
  # bob (auditor at Paris) reads Paris's
  {bob}
  # dave is inactive: nothing
  {dave}
  # carol holds no ledger role: nothing, until she is made auditor at New York ...
  {carol}
  ASSIGNMENT=$(grpcurl -plaintext {bearer} -d '{{"tenant_id":"{DEMO_TENANT_ID}","user_id":"{DEMO_CAROL_ID}","role_id":"{DEMO_AUDITOR_ROLE_ID}","org_node_id":"{DEMO_NEW_YORK_NODE_ID}"}}' {addr} portcullis.v1.Administration/AssignRole | grep -o '"assignmentId": "[^"]*"' | cut -d'"' -f4)
  {carol}
  # ... and the next query after the assignment ends shows nothing again
  grpcurl -plaintext {bearer} -d "{{\"tenant_id\":\"{DEMO_TENANT_ID}\",\"assignment_id\":\"$ASSIGNMENT\"}}" {addr} portcullis.v1.Administration/EndAssignment
  {carol}
  # payment_flow: end"#
    )
}
