//! One call at a time: a backend the server ends under a call (an
//! administrator's `pg_terminate_backend`, as a restart does to every
//! session) answers a retryable `UNAVAILABLE`, never `INTERNAL`, and
//! nothing of the call is committed.

use std::time::{Duration, Instant};

use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl, SimpleAsyncConnection};
use portcullis::proto::v1::authorization_client::AuthorizationClient;
use portcullis::proto::v1::service_credentials_client::ServiceCredentialsClient;
use portcullis::proto::v1::{
    CheckCapabilityRequest, ExchangeServiceCredentialRequest, Subject, UserRef, subject,
};
use tonic::Code;

use super::{Count, superuser};
use crate::support::fixtures::populate;
use crate::support::server::TestServer;
use crate::support::services::{bearer, create_service, token_of};
use crate::support::{APP_ROLE, TestDb};

/// Ends every application-role backend waiting on a lock, once one is;
/// how many were ended.
async fn terminate_the_waiting(admin: &mut AsyncPgConnection) -> i64 {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let ended: Count = diesel::sql_query(format!(
            "SELECT count(pg_terminate_backend(pid)) AS n FROM pg_stat_activity \
              WHERE datname = current_database() AND usename = '{APP_ROLE}' \
                AND wait_event_type = 'Lock'"
        ))
        .get_result(admin)
        .await
        .unwrap();
        if ended.n > 0 || Instant::now() > deadline {
            return ended.n;
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
    let mut holder = AsyncPgConnection::establish(test.migration_url.as_str())
        .await
        .unwrap();
    holder
        .batch_execute("BEGIN; LOCK TABLE auth.service_sessions IN ACCESS EXCLUSIVE MODE")
        .await
        .unwrap();
    let exchange = tokio::spawn(async move {
        ServiceCredentialsClient::new(channel)
            .exchange_service_credential(ExchangeServiceCredentialRequest {
                service_key: service.key.as_str().to_owned(),
                secret: service.secret.clone(),
                requested_permissions: Vec::new(),
            })
            .await
    });
    let mut admin = superuser(&test).await;
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
    let mut holder = AsyncPgConnection::establish(test.migration_url.as_str())
        .await
        .unwrap();
    holder
        .batch_execute("BEGIN; LOCK TABLE auth.users IN ACCESS EXCLUSIVE MODE")
        .await
        .unwrap();
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
    let mut admin = superuser(&test).await;
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
    use portcullis::authn::users::{NewUser, create_user};
    use portcullis::authn::{AuthnSettings, Email, HashCost, Login, Passwords, ThrottlePolicy};
    use portcullis::names::NewPassword;
    use portcullis::proto::v1::authentication_client::AuthenticationClient;
    use portcullis::proto::v1::{
        AuthenticateRequest, PasswordCredentials, authenticate_request, password_credentials,
    };

    const PASSWORD: &str = "correct horse battery staple";
    let test = TestDb::new().await;
    let db = test.db();
    let world = populate(&db).await;
    let passwords =
        Passwords::new(HashCost::INSECURE_FAST_FOR_TESTS, 2, Duration::from_secs(5)).unwrap();
    let email = format!(
        "cut-{}@example.test",
        &world.tenant.simple().to_string()[..8]
    );
    create_user(
        &db,
        &passwords,
        &NewUser {
            tenant_id: world.tenant,
            display_name: "Cut".into(),
            logins: vec![Login::Email(Email::parse(&email).unwrap())],
            password: Some(NewPassword::parse(PASSWORD).unwrap()),
        },
    )
    .await
    .unwrap();
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
    let app = crate::support::server::test_app(
        db,
        crate::support::server::test_tokens(),
        authn,
        crate::support::server::test_settings(),
    );
    let server = TestServer::start_app(app).await;
    let client = AuthenticationClient::new(server.channel().await);
    let login = move || {
        let mut client = client.clone();
        let request = AuthenticateRequest {
            tenant_id: world.tenant.to_string(),
            method: Some(authenticate_request::Method::Password(
                PasswordCredentials {
                    login: Some(password_credentials::Login::Email(email.clone())),
                    password: PASSWORD.into(),
                },
            )),
        };
        async move { client.authenticate(request).await }
    };
    // Each login's session insert waits behind this lock, after its
    // attempt was counted and its password checked; then the database
    // ends those sessions.
    let mut holder = AsyncPgConnection::establish(test.migration_url.as_str())
        .await
        .unwrap();
    holder
        .batch_execute("BEGIN; LOCK TABLE auth.refresh_sessions IN ACCESS EXCLUSIVE MODE")
        .await
        .unwrap();
    let mut admin = superuser(&test).await;
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
