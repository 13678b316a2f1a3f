//! The SQL decision API (`auth.has_capability`, `auth.org_nodes_with_capability`,
//! `auth.visible_org_nodes`, `auth.set_user_context`) as another service's
//! policies use it: called as that service's application role, never as a
//! superuser, and agreeing with `CheckCapability` and `ListVisibleOrgNodes`.

use std::collections::BTreeSet;
use std::time::Duration;

use chrono::Utc;
use diesel::sql_types::{Text, Uuid as SqlUuid};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl, SimpleAsyncConnection};
use portcullis::authz::{self, CapabilityKey, Check, Reason, Scope, Subject};
use portcullis::ops::admin::derive_url;
use portcullis::ops::provision::decision_roles::{
    DecisionBinding, TenantScope, bind_decision_roles,
};
use portcullis::ops::provision::{Confirmation, Environment, Names};
use portcullis::ops::seed::payment_flow;
use portcullis::proto::v1::IssueSqlAssertionRequest;
use portcullis::proto::v1::authentication_client::AuthenticationClient;
use portcullis::tokens::KeyRing;
use proptest::test_runner::{Config, TestRunner};
use uuid::Uuid;

use crate::api::authz_model::{listed, load_named, world};
use crate::support::fixtures::{TenantWorld, execute, populate};
use crate::support::server::{TestServer, service_token, user_token};
use crate::support::{TestDb, admin_url};

const LEDGER_READ: &str = "payment.ledger.read";

/// A test database with the payment_flow example installed.
pub(crate) struct Setup {
    pub(crate) test: TestDb,
    pub(crate) names: Names,
}

async fn setup() -> Setup {
    let test = TestDb::new().await;
    let tst = Confirmation {
        drop: true,
        environment: None,
    };
    let names = payment_flow::install(&admin_url().await, Environment::Tst, &test.name, tst)
        .await
        .unwrap();
    // As a server signing with the default issuer records it.
    portcullis::tokens::record_issuer(&test.db(), ISSUER)
        .await
        .unwrap();
    Setup { test, names }
}

impl Setup {
    /// A connection as payment_flow's application role.
    async fn service(&self) -> AsyncPgConnection {
        let url = derive_url(
            &admin_url().await,
            &self.names.app_role,
            None,
            &self.test.name,
        )
        .unwrap();
        AsyncPgConnection::establish(url.as_str()).await.unwrap()
    }

    /// A request at each of `nodes`, written as the superuser.
    async fn requests_at(&self, tenant: Uuid, nodes: &[Uuid]) {
        let admin = admin_url().await;
        let url = derive_url(&admin, admin.username(), admin.password(), &self.test.name).unwrap();
        let rows: Vec<String> = nodes
            .iter()
            .map(|n| format!("('{tenant}', '{n}', 'at {n}', 100)"))
            .collect();
        AsyncPgConnection::establish(url.as_str())
            .await
            .unwrap()
            .batch_execute(&format!(
                "INSERT INTO payment_flow.payment_requests (tenant_id, org_node_id, memo_text, amount_cents) VALUES {}",
                rows.join(", ")
            ))
            .await
            .unwrap();
    }

    /// Gives the world's user payment.ledger.read at the root through its role.
    async fn grant_ledger_read(&self, world: &TenantWorld) {
        self.grant(world, LEDGER_READ).await;
    }

    /// Gives the world's user `capability` at the root through its role.
    async fn grant(&self, world: &TenantWorld, capability: &str) {
        let ctx = portcullis::db::RlsContext::operator().with_tenant(world.tenant);
        for statement in [
            format!(
                "INSERT INTO auth.capabilities (cap_key) VALUES ('{capability}') ON CONFLICT DO NOTHING"
            ),
            format!(
                "INSERT INTO auth.role_capabilities (tenant_id, role_id, cap_id) \
                 SELECT '{}', '{}', cap_id FROM auth.capabilities WHERE cap_key = '{capability}'",
                world.tenant, world.role
            ),
        ] {
            execute(&self.test.db(), &ctx, &statement).await.unwrap();
        }
    }

    /// Binds payment_flow's two roles as `binding` says.
    async fn bind(&self, binding: DecisionBinding) {
        bind_decision_roles(&admin_url().await, &self.names, &binding)
            .await
            .unwrap();
    }
}

/// `request.jwt.claims` as PostgREST sets them for a verified token.
fn claims_of(fields: &str) -> String {
    format!("SELECT set_config('request.jwt.claims', '{{{fields}}}', true);")
}

/// A Portcullis user token's claims for `user` of `tenant`.
fn user_claims(tenant: Uuid, user: Uuid) -> String {
    claims_of(&format!(
        r#""iss":"{ISSUER}","sub":"{user}","tid":"{tenant}","typ":"user","role":"api_user""#
    ))
}

/// The issuer test tokens carry (the default `--token-issuer`).
const ISSUER: &str = "portcullis";

#[derive(diesel::QueryableByName, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Node {
    #[diesel(sql_type = SqlUuid)]
    pub(crate) id: Uuid,
}

/// Node ids a query returns, in one transaction after `prelude`.
async fn nodes(conn: &mut AsyncPgConnection, prelude: &str, query: &str) -> BTreeSet<Uuid> {
    conn.batch_execute(&format!("BEGIN; {prelude}"))
        .await
        .unwrap();
    let rows: Vec<Node> = diesel::sql_query(query).load(conn).await.unwrap();
    conn.batch_execute("COMMIT").await.unwrap();
    rows.into_iter().map(|n| n.id).collect()
}

fn as_user(tenant: Uuid, user: Uuid) -> String {
    format!("SELECT auth.set_user_context('{tenant}', '{user}');")
}

pub(crate) const ROWS: &str = "SELECT org_node_id AS id FROM payment_flow.payment_requests";

/// payment_flow installed, the world's user holding payment.ledger.read at
/// its root, a request at its root and at its child.
pub(crate) async fn ledger_setup() -> (Setup, TenantWorld) {
    let s = setup().await;
    let world = populate(&s.test.db()).await;
    s.grant_ledger_read(&world).await;
    s.requests_at(world.tenant, &[world.root, world.child])
        .await;
    (s, world)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_user_set_by_the_service_reads_the_rows_where_they_hold_the_capability() {
    let (s, world) = ledger_setup().await;
    let mut conn = s.service().await;
    let seen = nodes(&mut conn, &as_user(world.tenant, world.user), ROWS).await;
    assert_eq!(seen, BTreeSet::from([world.root, world.child]));
}

#[tokio::test(flavor = "multi_thread")]
async fn without_a_context_a_service_sees_nothing() {
    let (s, world) = ledger_setup().await;
    let mut conn = s.service().await;
    assert!(nodes(&mut conn, "", ROWS).await.is_empty());
    let functions = format!(
        "SELECT n AS id FROM auth.org_nodes_with_capability('{LEDGER_READ}') n \
         UNION ALL SELECT n FROM auth.visible_org_nodes('any') n \
         UNION ALL SELECT '{}'::uuid WHERE auth.has_capability('{LEDGER_READ}', '{}')",
        world.root, world.root
    );
    assert!(nodes(&mut conn, "", &functions).await.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn the_context_lasts_one_transaction() {
    let (s, world) = ledger_setup().await;
    let mut conn = s.service().await;
    assert_eq!(
        nodes(&mut conn, &as_user(world.tenant, world.user), ROWS)
            .await
            .len(),
        2
    );
    assert!(
        nodes(&mut conn, "", ROWS).await.is_empty(),
        "the next transaction"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_service_reads_no_auth_table_and_calls_only_the_decision_functions() {
    let (s, world) = ledger_setup().await;
    let mut conn = s.service().await;
    for refused in [
        "SELECT * FROM auth.org_assignments".to_owned(),
        "SELECT * FROM auth.users".to_owned(),
        "SELECT * FROM auth.org_node_paths".to_owned(),
        "SELECT * FROM audit.audit_events".to_owned(),
        "INSERT INTO auth.org_assignments DEFAULT VALUES".to_owned(),
        format!(
            "SELECT * FROM auth.check_capabilities('{}', ARRAY['{LEDGER_READ}'], ARRAY['{}'::uuid])",
            world.user, world.root
        ),
        "SELECT * FROM auth.current_subject()".to_owned(),
    ] {
        let error = conn.batch_execute(&refused).await.unwrap_err();
        assert!(
            error.to_string().contains("permission denied"),
            "{refused}: {error}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn postgrest_claims_name_the_user_and_a_foreign_tenant_sees_nothing() {
    let (s, world) = ledger_setup().await;
    let other = populate(&s.test.db()).await;
    let mut conn = s.service().await;
    let claims = |sub: Uuid, tid: Uuid| user_claims(tid, sub);
    let own = nodes(&mut conn, &claims(world.user, world.tenant), ROWS).await;
    assert_eq!(own.len(), 2);
    assert!(
        nodes(&mut conn, &claims(world.user, other.tenant), ROWS)
            .await
            .is_empty()
    );
    // A service token, unreadable claims, or claims that disagree with the
    // context: nobody.
    let service = claims_of(&format!(
        r#""iss":"{ISSUER}","sub":"{}","tid":"{}","typ":"service""#,
        world.user, world.tenant
    ));
    assert!(nodes(&mut conn, &service, ROWS).await.is_empty());
    let garbage = "SELECT set_config('request.jwt.claims', 'not json', true);";
    assert!(nodes(&mut conn, garbage, ROWS).await.is_empty());
    let disagreeing = format!(
        "{}{}",
        as_user(world.tenant, world.user),
        claims(other.user, other.tenant)
    );
    assert!(nodes(&mut conn, &disagreeing, ROWS).await.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn claims_count_only_for_a_user_token_of_portcullis_own_issuer() {
    let (s, world) = ledger_setup().await;
    let mut conn = s.service().await;
    let (user, tenant) = (world.user, world.tenant);
    assert_eq!(
        nodes(&mut conn, &user_claims(tenant, user), ROWS)
            .await
            .len(),
        2
    );
    for refused in [
        // No `typ`: not known to be a user's token.
        format!(r#""iss":"{ISSUER}","sub":"{user}","tid":"{tenant}""#),
        // Another issuer's token, which PostgREST may also trust.
        format!(r#""iss":"https://idp.example.test","sub":"{user}","tid":"{tenant}","typ":"user""#),
        // No issuer at all.
        format!(r#""sub":"{user}","tid":"{tenant}","typ":"user""#),
    ] {
        assert!(
            nodes(&mut conn, &claims_of(&refused), ROWS)
                .await
                .is_empty(),
            "{refused}"
        );
    }
}

/// A second tenant whose user reads the ledger at its own nodes, where it
/// has requests.
async fn second_ledger_tenant(s: &Setup) -> TenantWorld {
    let other = populate(&s.test.db()).await;
    s.grant_ledger_read(&other).await;
    s.requests_at(other.tenant, &[other.root]).await;
    other
}

#[tokio::test(flavor = "multi_thread")]
async fn a_role_bound_to_tenants_names_nobody_of_any_other_tenant() {
    let (s, world) = ledger_setup().await;
    let other = second_ledger_tenant(&s).await;
    let mut conn = s.service().await;
    let functions =
        format!("SELECT n AS id FROM auth.org_nodes_with_capability('{LEDGER_READ}') n");
    s.bind(DecisionBinding {
        tenants: Some(TenantScope::Only(vec![world.tenant])),
        signed: None,
    })
    .await;
    assert_eq!(
        nodes(&mut conn, &as_user(world.tenant, world.user), ROWS)
            .await
            .len(),
        2
    );
    for named in [
        as_user(other.tenant, other.user),
        user_claims(other.tenant, other.user),
        // SET ROLE to the group the role is a member of escapes nothing.
        format!(
            "SET LOCAL ROLE portcullis_decision; {}",
            as_user(other.tenant, other.user)
        ),
    ] {
        assert!(
            nodes(&mut conn, &named, &functions).await.is_empty(),
            "{named}"
        );
    }
    // Lifted again: the other tenant's user is named as before.
    s.bind(DecisionBinding {
        tenants: Some(TenantScope::Any),
        signed: None,
    })
    .await;
    assert_eq!(
        nodes(&mut conn, &as_user(other.tenant, other.user), ROWS)
            .await
            .len(),
        1
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn in_signed_mode_raw_settings_and_raw_claims_name_nobody() {
    let (s, world) = ledger_setup().await;
    let mut conn = s.service().await;
    s.bind(DecisionBinding {
        tenants: None,
        signed: Some(true),
    })
    .await;
    for raw in [
        as_user(world.tenant, world.user),
        format!(
            "SELECT set_config('app.tenant_id', '{}', true), set_config('app.user_id', '{}', true);",
            world.tenant, world.user
        ),
        user_claims(world.tenant, world.user),
        // A value that looks like an assertion but was not signed.
        format!(
            "SELECT set_config('app.user_assertion', 'pcsa1.k1.{}.{}.9999999999.{}', true);",
            world.tenant,
            world.user,
            "0".repeat(64)
        ),
    ] {
        assert!(nodes(&mut conn, &raw, ROWS).await.is_empty(), "{raw}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn in_signed_mode_an_assertion_portcullis_issued_names_its_user_until_it_expires() {
    let (s, world) = ledger_setup().await;
    s.bind(DecisionBinding {
        tenants: None,
        signed: Some(true),
    })
    .await;
    let server = TestServer::start(s.test.db()).await;
    let issued = AuthenticationClient::new(server.channel().await)
        .issue_sql_assertion(IssueSqlAssertionRequest {
            access_token: user_token(&server.tokens, world.tenant, world.user),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(issued.user_id, world.user.to_string());
    let expires = issued.expires_at.unwrap().seconds;
    assert!(expires <= Utc::now().timestamp() + 300, "{expires}");
    let mut conn = s.service().await;
    let with = |assertion: &str| format!("SELECT auth.set_user_context('{assertion}');");
    assert_eq!(
        nodes(&mut conn, &with(&issued.assertion), ROWS).await.len(),
        2
    );
    // One character changed: refused where it is set, nobody after.
    let mut tampered = issued.assertion.clone();
    let last = tampered.pop().unwrap();
    tampered.push(if last == '0' { '1' } else { '0' });
    let error = conn
        .batch_execute(&format!("BEGIN; {} COMMIT;", with(&tampered)))
        .await
        .unwrap_err();
    assert!(
        error.to_string().contains("not one Portcullis signed"),
        "{error}"
    );
    conn.batch_execute("ROLLBACK").await.unwrap();
    // Naming another user with the same MAC is a tampering too.
    let forged = issued
        .assertion
        .replace(&world.user.to_string(), &Uuid::new_v4().to_string());
    assert!(
        conn.batch_execute(&format!("BEGIN; {} COMMIT;", with(&forged)))
            .await
            .is_err()
    );
    conn.batch_execute("ROLLBACK").await.unwrap();
    // A service token names no user.
    let service = portcullis::proto::v1::IssueSqlAssertionRequest {
        access_token: service_token(&server.tokens, Some(world.tenant), &[]),
    };
    let refused = AuthenticationClient::new(server.channel().await)
        .issue_sql_assertion(service)
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::Unauthenticated);
    // An expired one, signed with the real key as Portcullis would.
    let expired = sign_assertion(&s, world.tenant, world.user, Utc::now().timestamp() - 1).await;
    assert!(
        conn.batch_execute(&format!("BEGIN; {} COMMIT;", with(&expired)))
            .await
            .is_err()
    );
    conn.batch_execute("ROLLBACK").await.unwrap();
    let valid = sign_assertion(&s, world.tenant, world.user, Utc::now().timestamp() + 60).await;
    assert_eq!(nodes(&mut conn, &with(&valid), ROWS).await.len(), 2);
}

/// An assertion signed with the database's key (read as the superuser).
async fn sign_assertion(s: &Setup, tenant: Uuid, user: Uuid, expiry: i64) -> String {
    use hmac::Mac;
    #[derive(diesel::QueryableByName)]
    struct Key {
        #[diesel(sql_type = diesel::sql_types::Bytea)]
        secret_key: Vec<u8>,
    }
    let admin = admin_url().await;
    let url = derive_url(&admin, admin.username(), admin.password(), &s.test.name).unwrap();
    let mut conn = AsyncPgConnection::establish(url.as_str()).await.unwrap();
    let key: Key =
        diesel::sql_query("SELECT secret_key FROM auth.sql_assertion_keys WHERE key_id = 'k1'")
            .get_result(&mut conn)
            .await
            .unwrap();
    let signed = format!("pcsa1.k1.{tenant}.{user}.{expiry}");
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(&key.secret_key).unwrap();
    mac.update(signed.as_bytes());
    format!("{signed}.{:x}", mac.finalize().into_bytes())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_user_writes_no_request_for_another_tenant() {
    let (s, world) = ledger_setup().await;
    let other = populate(&s.test.db()).await;
    s.grant(&world, "payment.transfer.approve").await;
    let mut conn = s.service().await;
    let submit = |tenant: Uuid| {
        format!(
            "BEGIN; {} INSERT INTO payment_flow.payment_requests (tenant_id, org_node_id, memo_text, amount_cents) \
             VALUES ('{tenant}', '{}', 'submitted', 100); COMMIT;",
            as_user(world.tenant, world.user),
            world.root
        )
    };
    conn.batch_execute(&submit(world.tenant)).await.unwrap();
    let error = conn.batch_execute(&submit(other.tenant)).await.unwrap_err();
    assert!(error.to_string().contains("row-level security"), "{error}");
    conn.batch_execute("ROLLBACK").await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_user_named_with_another_tenant_sees_nothing() {
    let (s, world) = ledger_setup().await;
    let other = populate(&s.test.db()).await;
    let mut conn = s.service().await;
    assert!(
        nodes(&mut conn, &as_user(other.tenant, world.user), ROWS)
            .await
            .is_empty()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn approving_needs_the_approval_capability_and_changes_only_the_status() {
    let (s, world) = ledger_setup().await;
    let mut conn = s.service().await;
    let update = "UPDATE payment_flow.payment_requests SET status_code = 'approved'";
    conn.batch_execute(&format!(
        "BEGIN; {} {update}; COMMIT",
        as_user(world.tenant, world.user)
    ))
    .await
    .unwrap();
    // Reading is not approving: no row was changed.
    let approved = "SELECT org_node_id AS id FROM payment_flow.payment_requests WHERE status_code = 'approved'";
    assert!(
        nodes(&mut conn, &as_user(world.tenant, world.user), approved)
            .await
            .is_empty()
    );
    let amount = format!(
        "BEGIN; {} UPDATE payment_flow.payment_requests SET amount_cents = 1; COMMIT",
        as_user(world.tenant, world.user)
    );
    let error = conn.batch_execute(&amount).await.unwrap_err();
    assert!(error.to_string().contains("permission denied"), "{error}");
}

#[test]
fn the_decision_functions_agree_with_the_service_on_random_worlds() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let s = runtime.block_on(setup());
    let db = s.test.db();
    let keys = KeyRing::ephemeral(
        Utc::now() - chrono::Duration::hours(1),
        Duration::from_secs(60),
    );
    let conn = tokio::sync::Mutex::new(runtime.block_on(s.service()));
    let mut runner = TestRunner::new(Config {
        cases: 16,
        failure_persistence: None,
        ..Config::default()
    });
    runner
        .run(&world(), |world| {
            runtime.block_on(async {
                let mut conn = conn.lock().await;
                let conn = &mut *conn;
                let loaded = load_named(&db, &world, Some(LEDGER_READ)).await;
                s.requests_at(loaded.tenant, &loaded.nodes).await;
                for &user in &loaded.users {
                    let subject = Subject {
                        tenant_id: loaded.tenant.into(),
                        user_id: user.into(),
                    };
                    let context = as_user(loaded.tenant, user);
                    for key in &loaded.capability_keys {
                        let checks: Vec<Check> = loaded
                            .nodes
                            .iter()
                            .map(|&n| Check {
                                capability: CapabilityKey::parse(key).unwrap(),
                                org_node_id: n.into(),
                            })
                            .collect();
                        let decisions = authz::check(&db, subject, &checks, false, None).await.unwrap();
                        let allowed: BTreeSet<Uuid> = loaded
                            .nodes
                            .iter()
                            .zip(&decisions)
                            .filter(|(_, d)| d.reason == Reason::Allowed)
                            .map(|(n, _)| *n)
                            .collect();
                        let by_function = nodes(
                            conn,
                            &context,
                            &format!("SELECT n AS id FROM auth.org_nodes_with_capability('{key}') n"),
                        )
                        .await;
                        proptest::prop_assert_eq!(&by_function, &allowed, "org_nodes_with_capability({})", key);
                        let by_boolean = nodes(
                            conn,
                            &context,
                            &format!(
                                "SELECT n AS id FROM unnest($${{{}}}$$::uuid[]) n WHERE auth.has_capability('{key}', n)",
                                loaded.nodes.iter().map(Uuid::to_string).collect::<Vec<_>>().join(",")
                            ),
                        )
                        .await;
                        proptest::prop_assert_eq!(&by_boolean, &allowed, "has_capability({})", key);
                        if key == LEDGER_READ {
                            // The service's rows: exactly those CheckCapability allows.
                            let rows = nodes(conn, &context, ROWS).await;
                            proptest::prop_assert_eq!(&rows, &allowed, "payment_requests under RLS");
                        }
                    }
                    for (scope, name) in [(Scope::Any, "any"), (Scope::Read, "read"), (Scope::Analyze, "analyze")] {
                        let pages: BTreeSet<Uuid> =
                            listed(&db, &keys, subject, scope).await.into_keys().collect();
                        let by_function = nodes(
                            conn,
                            &context,
                            &format!("SELECT n AS id FROM auth.visible_org_nodes('{name}') n"),
                        )
                        .await;
                        proptest::prop_assert_eq!(&by_function, &pages, "visible_org_nodes({})", name);
                    }
                }
                Ok(())
            })
        })
        .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unknown_scope_is_an_error_that_names_it() {
    let (s, world) = ledger_setup().await;
    let mut conn = s.service().await;
    conn.batch_execute(&format!("BEGIN; {}", as_user(world.tenant, world.user)))
        .await
        .unwrap();
    let error = diesel::sql_query("SELECT n AS id FROM auth.visible_org_nodes($1) n")
        .bind::<Text, _>("everything")
        .load::<Node>(&mut conn)
        .await
        .unwrap_err();
    assert!(
        error
            .to_string()
            .contains("scope must be any, read or analyze"),
        "{error}"
    );
}
