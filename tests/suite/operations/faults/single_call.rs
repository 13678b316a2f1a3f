//! One call at a time: a backend the server ends under a call (an
//! administrator's `pg_terminate_backend`, as a restart does to every
//! session) answers a retryable `UNAVAILABLE`, never `INTERNAL`, and
//! nothing of the call is committed.

use std::time::{Duration, Instant};

use diesel_async::{AsyncPgConnection, RunQueryDsl, SimpleAsyncConnection};
use portcullis::proto::v1::authorization_client::AuthorizationClient;
use portcullis::proto::v1::service_credentials_client::ServiceCredentialsClient;
use portcullis::proto::v1::{
    CheckCapabilityRequest, ExchangeServiceCredentialRequest, Subject, UserRef, subject,
};
use tonic::Code;

use super::{Count, lock, password_login, password_user};
use crate::support::fixtures::populate;
use crate::support::server::TestServer;
use crate::support::services::{bearer, create_service, token_of};
use crate::support::{APP_ROLE, TestDb};

/// Ends every application-role backend waiting on a lock, once one is;
/// how many were ended.
async fn terminate_the_waiting(admin: &mut AsyncPgConnection) -> i64 {
    lock_waiters(admin, "pg_terminate_backend(pid)").await
}

/// Waits (up to 10 s) until an application-role backend waits for a
/// table lock (`LOCK TABLE`; row locks between the service's own
/// transactions do not count); how many do, after `apply` (SQL of each
/// one's `pid`) ran on each.
async fn lock_waiters(admin: &mut AsyncPgConnection, apply: &str) -> i64 {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let waiting: Count = diesel::sql_query(format!(
            "SELECT count({apply}) AS n FROM pg_stat_activity \
              WHERE datname = current_database() AND usename = '{APP_ROLE}' \
                AND wait_event_type = 'Lock' AND wait_event = 'relation'"
        ))
        .get_result(admin)
        .await
        .unwrap();
        if waiting.n > 0 || Instant::now() > deadline {
            return waiting.n;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_write_whose_backend_is_terminated_answers_unavailable_and_commits_nothing() {
    let test = TestDb::new().await;
    let db = test.db();
    let service = create_service(&db, None, &["authz.check"]).await;
    let server = TestServer::start(db).await;
    let channel = server.channel().await;
    // The exchange's session insert waits behind this lock.
    let mut holder = lock(&test, "auth.service_sessions").await;
    let exchange = tokio::spawn(async move {
        ServiceCredentialsClient::new(channel)
            .exchange_service_credential(ExchangeServiceCredentialRequest {
                service_key: service.key.as_str().to_owned(),
                secret: service.secret.clone(),
                requested_permissions: Vec::new(),
            })
            .await
    });
    let mut admin = test.superuser().await;
    assert_eq!(terminate_the_waiting(&mut admin).await, 1);
    let answer = tokio::time::timeout(Duration::from_secs(10), exchange)
        .await
        .unwrap()
        .unwrap();
    holder.batch_execute("ROLLBACK").await.unwrap();
    let status = answer.unwrap_err();
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    let sessions: Count = diesel::sql_query("SELECT count(*) AS n FROM auth.service_sessions")
        .get_result(&mut admin)
        .await
        .unwrap();
    assert_eq!(
        sessions.n, 0,
        "a session of the failed exchange was committed"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_check_whose_backend_is_terminated_answers_unavailable() {
    let test = TestDb::new().await;
    let db = test.db();
    let world = populate(&db).await;
    let service = create_service(&db, None, &["authz.check"]).await;
    let server = TestServer::start(db).await;
    let channel = server.channel().await;
    let token = token_of(&channel, &service).await.access_token;
    // The check's read of the user waits behind this lock.
    let mut holder = lock(&test, "auth.users").await;
    let check = tokio::spawn(async move {
        AuthorizationClient::new(channel)
            .check_capability(bearer(
                CheckCapabilityRequest {
                    subject: Some(Subject {
                        kind: Some(subject::Kind::User(UserRef {
                            tenant_id: world.tenant.to_string(),
                            user_id: world.user.to_string(),
                        })),
                    }),
                    capability: "cap.x".into(),
                    org_node_id: world.root.to_string(),
                    explain: false,
                },
                &token,
            ))
            .await
    });
    let mut admin = test.superuser().await;
    assert_eq!(terminate_the_waiting(&mut admin).await, 1);
    let answer = tokio::time::timeout(Duration::from_secs(10), check)
        .await
        .unwrap()
        .unwrap();
    holder.batch_execute("ROLLBACK").await.unwrap();
    let status = answer.unwrap_err();
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn logins_cut_by_the_database_do_not_lock_out_the_user_who_gave_the_right_password() {
    use portcullis::authn::{AuthnSettings, ThrottlePolicy};
    use portcullis::proto::v1::authentication_client::AuthenticationClient;

    let test = TestDb::new().await;
    let db = test.db();
    let world = populate(&db).await;
    let email = format!(
        "cut-{}@example.test",
        &world.tenant.simple().to_string()[..8]
    );
    password_user(&db, world.tenant, &email).await;
    // Three failures lock the login for a minute.
    let authn = AuthnSettings {
        throttle: ThrottlePolicy {
            login_threshold: 3,
            base_delay: Duration::from_secs(60),
            max_delay: Duration::from_secs(60),
            ..ThrottlePolicy::default()
        },
        ..AuthnSettings::default()
    };
    let server = TestServer::build(db).authn(authn).start().await;
    let client = AuthenticationClient::new(server.channel().await);
    let login = move || {
        let mut client = client.clone();
        let request = password_login(world.tenant, &email);
        async move { client.authenticate(request).await }
    };
    // Each login's session insert waits behind this lock, after its
    // attempt was counted and its password checked; then the database
    // ends those sessions.
    let mut holder = lock(&test, "auth.refresh_sessions").await;
    let mut admin = test.superuser().await;
    for _ in 0..3 {
        let cut = tokio::spawn(login());
        assert_eq!(terminate_the_waiting(&mut admin).await, 1);
        let status = cut.await.unwrap().unwrap_err();
        assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    }
    holder.batch_execute("ROLLBACK").await.unwrap();
    // The right password, once the database is back, is let in.
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        match login().await {
            Ok(_) => break,
            Err(status) if Instant::now() < deadline => {
                assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(status) => panic!("still refused 3 s after the database came back: {status:?}"),
        }
    }
}

/// A create whose transaction PostgreSQL picks to break a deadlock
/// (SQLSTATE 40P01, known by its code) answers ABORTED; with an
/// idempotency key the service runs it again and it is made once.
#[tokio::test(flavor = "multi_thread")]
async fn a_create_caught_in_a_deadlock_answers_aborted_and_with_a_key_runs_again() {
    use portcullis::proto::v1::CreateOrgNodeRequest;
    use portcullis::proto::v1::administration_client::AdministrationClient;

    let test = TestDb::new().await;
    let db = test.db();
    let world = populate(&db).await;
    let admin = create_service(&db, Some(world.tenant), &["admin.org.write"]).await;
    // PostgreSQL looks for a deadlock once, `deadlock_timeout` after a
    // backend starts waiting, and the backend that finds it is the one
    // rolled back. The create's looks after 3 s, by when the holder below
    // has closed the cycle even on a loaded machine; the holder's own look
    // comes much later. (With both at 1 s, a create that looked before the
    // cycle closed left the holder to find it, and the holder was chosen.)
    test.superuser()
        .await
        .batch_execute(&format!(
            "ALTER ROLE {} IN DATABASE \"{}\" SET deadlock_timeout = '3s'",
            test.app_role(),
            test.name
        ))
        .await
        .unwrap();
    let server = TestServer::start(test.db()).await;
    let channel = server.channel().await;
    let token = token_of(&channel, &admin).await.access_token;
    let mut watcher = test.superuser().await;
    for (label, key, expected) in [
        ("Deadlock without a key", "", Code::Aborted),
        ("Deadlock with a key", "deadlocked-once", Code::Ok),
    ] {
        // The create inserts its node (its foreign key share-locks the
        // parent row), then waits for the audit table this holds.
        let mut holder = test.superuser().await;
        holder
            .batch_execute(
                "SET deadlock_timeout = '60s'; \
                 BEGIN; LOCK TABLE audit.audit_events IN ACCESS EXCLUSIVE MODE",
            )
            .await
            .unwrap();
        let mut client = AdministrationClient::new(channel.clone());
        let request = bearer(
            CreateOrgNodeRequest {
                tenant_id: world.tenant.to_string(),
                parent_org_node_id: world.root.to_string(),
                node_type: "site".into(),
                label: label.into(),
                idempotency_key: key.into(),
                dry_run: false,
            },
            &token,
        );
        let create = tokio::spawn(async move { client.create_org_node(request).await });
        assert_eq!(lock_waiters(&mut watcher, "pid").await, 1);
        // Now this waits for the create's lock on the parent: a cycle,
        // which the create's backend (waiting longer) detects and breaks.
        let parent = world.root;
        let closing = tokio::spawn(async move {
            holder
                .batch_execute(&format!(
                    "SELECT 1 FROM auth.org_nodes WHERE org_node_id = '{parent}' FOR UPDATE"
                ))
                .await
                .unwrap();
            holder.batch_execute("ROLLBACK").await.unwrap();
        });
        tokio::time::timeout(Duration::from_secs(10), closing)
            .await
            .unwrap()
            .unwrap();
        let answer = tokio::time::timeout(Duration::from_secs(10), create)
            .await
            .unwrap()
            .unwrap();
        let code = answer
            .as_ref()
            .map_or_else(|status| status.code(), |_| Code::Ok);
        assert_eq!(code, expected, "key {key:?}: {answer:?}");
    }
    let made: Count = diesel::sql_query(
        "SELECT count(*) AS n FROM auth.org_nodes WHERE node_label LIKE 'Deadlock%'",
    )
    .get_result(&mut watcher)
    .await
    .unwrap();
    assert_eq!(made.n, 1, "only the keyed create, once");
}
