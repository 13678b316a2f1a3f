//! Service accounts: exchanging a secret for a token, rotation, revocation.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use portcullis::proto::v1::RevokeServiceTokenRequest;
use portcullis::proto::v1::revoke_service_token_request::Target;
use portcullis::proto::v1::service_credentials_client::ServiceCredentialsClient;
use portcullis::service_accounts;
use tonic::Code;
use uuid::Uuid;

use crate::support::fixtures::populate;
use crate::support::server::{TestServer, test_tokens_with};
use crate::support::services::{bearer, create_service, exchange, token_of, verify};
use crate::support::{TestDb, audit_rows};

const REFUSED: &str = "invalid service credentials";

async fn revoke(
    channel: &tonic::transport::Channel,
    caller: &str,
    target: Target,
) -> Result<(), tonic::Status> {
    ServiceCredentialsClient::new(channel.clone())
        .revoke_service_token(bearer(
            RevokeServiceTokenRequest {
                target: Some(target),
            },
            caller,
        ))
        .await
        .map(|_| ())
}

#[tokio::test(flavor = "multi_thread")]
async fn exchange_returns_a_token_carrying_every_granted_permission() {
    let test = TestDb::new().await;
    let db = test.db();
    let world = populate(&db).await;
    let service = create_service(&db, Some(world.tenant), &["authz.check", "tokens.verify"]).await;
    let server = TestServer::start(db).await;
    let channel = server.channel().await;

    let issued = token_of(&channel, &service).await;
    assert_eq!(issued.granted_permissions, ["authz.check", "tokens.verify"]);
    let seen = verify(&channel, &issued.access_token, &issued.access_token)
        .await
        .unwrap();
    assert!(seen.active);
    assert_eq!(seen.subject_id, service.id.to_string());
    assert_eq!(seen.tenant_id, world.tenant.to_string());
    assert_eq!(seen.session_id, issued.service_session_id);
    assert_eq!(seen.permissions, ["authz.check", "tokens.verify"]);
    let expires = issued.expires_at.unwrap().seconds - chrono::Utc::now().timestamp();
    assert!(
        (590..=600).contains(&expires),
        "expires in {expires}s, wanted 10 minutes"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn requested_permissions_narrow_the_token() {
    let test = TestDb::new().await;
    let db = test.db();
    let service = create_service(&db, None, &["authz.check", "tokens.verify"]).await;
    let server = TestServer::start(db).await;
    let issued = exchange(
        &server.channel().await,
        service.key.as_str(),
        &service.secret,
        &["authz.check"],
    )
    .await
    .unwrap();
    assert_eq!(issued.granted_permissions, ["authz.check"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unknown_key_is_refused_with_the_common_message() {
    let test = TestDb::new().await;
    let db = test.db();
    let service = create_service(&db, None, &["authz.check"]).await;
    let server = TestServer::start(db).await;
    let status = exchange(
        &server.channel().await,
        "no-such-service",
        &service.secret,
        &[],
    )
    .await
    .unwrap_err();
    assert_eq!(
        (status.code(), status.message()),
        (Code::Unauthenticated, REFUSED)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_wrong_secret_is_refused_with_the_common_message() {
    let test = TestDb::new().await;
    let db = test.db();
    let service = create_service(&db, None, &["authz.check"]).await;
    let other = create_service(&db, None, &["authz.check"]).await;
    let server = TestServer::start(db).await;
    let channel = server.channel().await;
    // Another service's valid secret, a garbled one, and one of the right shape.
    let mut garbled = service.secret.clone();
    garbled.replace_range(garbled.len() - 4.., "AAAA");
    for secret in [other.secret.as_str(), garbled.as_str(), "not-a-secret"] {
        let status = exchange(&channel, service.key.as_str(), secret, &[])
            .await
            .unwrap_err();
        assert_eq!(
            (status.code(), status.message()),
            (Code::Unauthenticated, REFUSED),
            "{secret}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_revoked_secret_is_refused_at_once() {
    let test = TestDb::new().await;
    let db = test.db();
    let service = create_service(&db, None, &["authz.check"]).await;
    let server = TestServer::start(db.clone()).await;
    let channel = server.channel().await;
    token_of(&channel, &service).await;

    let secret_id = Uuid::try_parse(&service.secret[4..36]).unwrap();
    service_accounts::revoke_secret(&db, &service.key, secret_id)
        .await
        .unwrap();
    let status = exchange(&channel, service.key.as_str(), &service.secret, &[])
        .await
        .unwrap_err();
    assert_eq!(
        (status.code(), status.message()),
        (Code::Unauthenticated, REFUSED)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_disabled_service_is_refused_and_its_tokens_stop_working() {
    let test = TestDb::new().await;
    let db = test.db();
    let service = create_service(&db, None, &["tokens.verify"]).await;
    let server = TestServer::start(db.clone()).await;
    let channel = server.channel().await;
    let issued = token_of(&channel, &service).await;

    assert_eq!(
        service_accounts::disable(&db, &service.key, chrono::Utc::now())
            .await
            .unwrap(),
        1
    );
    let status = exchange(&channel, service.key.as_str(), &service.secret, &[])
        .await
        .unwrap_err();
    assert_eq!(
        (status.code(), status.message()),
        (Code::Unauthenticated, REFUSED)
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    while verify(&channel, &issued.access_token, &issued.access_token)
        .await
        .is_ok()
    {
        assert!(
            Instant::now() < deadline,
            "the disabled service's token still works"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_suspended_tenant_s_service_is_refused() {
    let test = TestDb::new().await;
    let db = test.db();
    let world = populate(&db).await;
    let service = create_service(&db, Some(world.tenant), &["authz.check"]).await;
    crate::support::fixtures::execute(
        &db,
        &portcullis::db::RlsContext::tenant(world.tenant),
        "UPDATE auth.tenants SET tenant_state_code = 'suspended'",
    )
    .await
    .unwrap();
    let server = TestServer::start(db).await;
    let status = exchange(
        &server.channel().await,
        service.key.as_str(),
        &service.secret,
        &[],
    )
    .await
    .unwrap_err();
    assert_eq!(
        (status.code(), status.message()),
        (Code::Unauthenticated, REFUSED)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn asking_for_a_permission_the_service_lacks_is_denied_naming_it() {
    let test = TestDb::new().await;
    let db = test.db();
    let service = create_service(&db, None, &["authz.check"]).await;
    let server = TestServer::start(db).await;
    let status = exchange(
        &server.channel().await,
        service.key.as_str(),
        &service.secret,
        &["authz.check", "admin.tenants"],
    )
    .await
    .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);
    assert!(
        status.message().contains("admin.tenants"),
        "{}",
        status.message()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn malformed_fields_are_invalid_argument_naming_the_field() {
    let test = TestDb::new().await;
    let db = test.db();
    let service = create_service(&db, None, &["authz.check"]).await;
    let server = TestServer::start(db).await;
    let channel = server.channel().await;
    let long_secret = "x".repeat(300);
    let cases: [(&str, &str, &[&str], &str); 5] = [
        ("", &service.secret, &[], "service_key"),
        ("Bad Key!", &service.secret, &[], "service_key"),
        (service.key.as_str(), "", &[], "secret"),
        (service.key.as_str(), &long_secret, &[], "secret"),
        (
            service.key.as_str(),
            &service.secret,
            &["authz.check", "Not.Valid"],
            "requested_permissions[1]",
        ),
    ];
    for (key, secret, permissions, field) in cases {
        let status = exchange(&channel, key, secret, permissions)
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{field}: {status:?}");
        assert!(
            status.message().starts_with(&format!("{field}:")),
            "{field}: {}",
            status.message()
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn two_active_secrets_both_work_and_revoking_one_leaves_the_other() {
    let test = TestDb::new().await;
    let db = test.db();
    let service = create_service(&db, None, &["authz.check"]).await;
    let (second_id, second) = service_accounts::issue_secret(&db, &service.key, false)
        .await
        .unwrap();
    let second = secrecy::ExposeSecret::expose_secret(&second).to_owned();
    let server = TestServer::start(db.clone()).await;
    let channel = server.channel().await;
    exchange(&channel, service.key.as_str(), &service.secret, &[])
        .await
        .unwrap();
    exchange(&channel, service.key.as_str(), &second, &[])
        .await
        .unwrap();

    service_accounts::revoke_secret(&db, &service.key, second_id)
        .await
        .unwrap();
    exchange(&channel, service.key.as_str(), &service.secret, &[])
        .await
        .unwrap();
    assert!(
        exchange(&channel, service.key.as_str(), &second, &[])
            .await
            .is_err()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_revoked_token_is_refused_by_another_replica_within_five_seconds() {
    let test = TestDb::new().await;
    let db = test.db();
    let service = create_service(&db, None, &["tokens.verify"]).await;
    let checker = create_service(&db, None, &["tokens.verify"]).await;
    // Two replicas sharing the database and the signing keys, each with its
    // own revocation list.
    let first = TestServer::start(db.clone()).await;
    let first_channel = first.channel().await;
    let issued = token_of(&first_channel, &service).await;
    let checker_token = token_of(&first_channel, &checker).await.access_token;
    let second = TestServer::build(db.clone())
        .tokens(test_tokens_with(first.tokens.keys().clone()))
        .start()
        .await;
    let second_channel = second.channel().await;
    assert!(
        verify(&second_channel, &checker_token, &issued.access_token)
            .await
            .unwrap()
            .active
    );

    revoke(
        &first_channel,
        &issued.access_token,
        Target::Token(issued.access_token.clone()),
    )
    .await
    .unwrap();
    let revoked_at = Instant::now();
    loop {
        let seen = verify(&second_channel, &checker_token, &issued.access_token)
            .await
            .unwrap();
        if !seen.active {
            break;
        }
        assert!(
            revoked_at.elapsed() < Duration::from_secs(5),
            "still active on the other replica"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_service_may_revoke_its_own_session_by_id_but_not_another_s() {
    let test = TestDb::new().await;
    let db = test.db();
    let mine = create_service(&db, None, &["tokens.verify"]).await;
    let theirs = create_service(&db, None, &["tokens.verify"]).await;
    let server = TestServer::start(db).await;
    let channel = server.channel().await;
    let my_token = token_of(&channel, &mine).await;
    let my_other = token_of(&channel, &mine).await;
    let their_token = token_of(&channel, &theirs).await;

    let status = revoke(
        &channel,
        &my_token.access_token,
        Target::ServiceSessionId(their_token.service_session_id.clone()),
    )
    .await
    .unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
    let unknown = revoke(
        &channel,
        &my_token.access_token,
        Target::ServiceSessionId(Uuid::new_v4().to_string()),
    )
    .await
    .unwrap_err();
    assert_eq!(
        (unknown.code(), unknown.message()),
        (status.code(), status.message())
    );
    assert!(
        verify(&channel, &my_token.access_token, &their_token.access_token)
            .await
            .unwrap()
            .active
    );

    revoke(
        &channel,
        &my_token.access_token,
        Target::ServiceSessionId(my_other.service_session_id.clone()),
    )
    .await
    .unwrap();
    assert!(
        !verify(&channel, &my_token.access_token, &my_other.access_token)
            .await
            .unwrap()
            .active
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn fifty_concurrent_exchanges_all_succeed_with_distinct_sessions() {
    let test = TestDb::new().await;
    let db = test.db();
    let service = create_service(&db, None, &["authz.check"]).await;
    let server = TestServer::start(db).await;
    let channel = server.channel().await;
    let calls = (0..50).map(|_| exchange(&channel, service.key.as_str(), &service.secret, &[]));
    let results = futures_util::future::join_all(calls).await;
    let sessions: HashSet<String> = results
        .into_iter()
        .map(|r| r.unwrap().service_session_id)
        .collect();
    assert_eq!(sessions.len(), 50);
}

#[tokio::test(flavor = "multi_thread")]
async fn exchanges_are_audited_with_their_actor_success_and_failure_alike() {
    let test = TestDb::new().await;
    let db = test.db();
    let world = populate(&db).await;
    let service = create_service(&db, Some(world.tenant), &["authz.check"]).await;
    let server = TestServer::start(db).await;
    let channel = server.channel().await;
    let issued = token_of(&channel, &service).await;
    exchange(&channel, service.key.as_str(), "wrong", &[])
        .await
        .unwrap_err();
    exchange(&channel, "nobody", &service.secret, &[])
        .await
        .unwrap_err();

    let exchanged = audit_rows(&test, "service.credential_exchanged").await;
    assert_eq!(exchanged.len(), 1);
    assert_eq!(exchanged[0].actor_kind, "service");
    assert_eq!(
        exchanged[0].actor_id.as_deref(),
        Some(service.id.to_string().as_str())
    );
    assert_eq!(exchanged[0].tenant_id, Some(world.tenant));
    assert_eq!(
        exchanged[0].entity_id.as_deref(),
        Some(issued.service_session_id.as_str())
    );

    let refused = audit_rows(&test, "service.credential_refused").await;
    assert_eq!(refused.len(), 2);
    assert!(
        refused[0].payload.contains("malformed_secret")
            && refused[0].tenant_id == Some(world.tenant)
    );
    assert!(refused[1].payload.contains("unknown_key") && refused[1].tenant_id.is_none());
    for row in exchanged.iter().chain(&refused) {
        assert!(
            !row.payload.contains(&service.secret[36..]),
            "secret in audit payload"
        );
        assert!(
            !row.payload.contains(&issued.access_token),
            "token in audit payload"
        );
    }
}

/// A session of the world's service whose token expired ten seconds ago:
/// dead by its `exp`, still accepted within the 30-second leeway.
async fn session_expired_within_the_leeway(db: &portcullis::db::Db, service: Uuid) -> Uuid {
    let session = Uuid::new_v4();
    crate::support::fixtures::batch(
        db,
        &portcullis::db::RlsContext::operator(),
        &format!(
            "INSERT INTO auth.service_sessions (svc_session_id, svc_id, token_hash_text, expiry_utc) \
             VALUES ('{session}', '{service}', repeat('b', 64), now() - interval '10 seconds')"
        ),
    )
    .await
    .unwrap();
    session
}

#[tokio::test(flavor = "multi_thread")]
async fn a_revoked_token_stays_revoked_through_the_leeway() {
    use chrono::Utc;
    use portcullis::tokens::{NewToken, TokenError, TokenType};
    use secrecy::ExposeSecret;

    let test = TestDb::new().await;
    let db = test.db();
    let world = populate(&db).await;
    let session = session_expired_within_the_leeway(&db, world.service).await;
    crate::support::fixtures::batch(
        &db,
        &portcullis::db::RlsContext::operator(),
        &format!(
            "INSERT INTO auth.token_revocations (session_id, token_kind, expires_at) \
             VALUES ('{session}', 'service', now() - interval '10 seconds')"
        ),
    )
    .await
    .unwrap();
    let tokens = crate::support::server::test_tokens();
    let issued = tokens
        .issue(
            &NewToken {
                typ: TokenType::Service,
                subject: world.service,
                tenant: Some(world.tenant),
                session,
                permissions: vec!["authz.check".into()],
                lifetime: Duration::from_secs(60),
                service_key: None,
            },
            Utc::now() - chrono::Duration::seconds(70),
        )
        .unwrap();
    tokens.revocations().sync(&db).await.unwrap();
    let verified = tokens.verify(issued.token.expose_secret(), Utc::now());
    assert!(
        matches!(verified, Err(TokenError::Revoked)),
        "{:?}",
        verified.err()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn disabling_a_service_revokes_tokens_still_inside_the_leeway() {
    let test = TestDb::new().await;
    let db = test.db();
    let world = populate(&db).await;
    let session = session_expired_within_the_leeway(&db, world.service).await;
    let key = format!("svc-{}", &world.tenant.simple().to_string()[..12]);
    service_accounts::disable(
        &db,
        &service_accounts::names::ServiceKey::parse(&key).unwrap(),
        chrono::Utc::now(),
    )
    .await
    .unwrap();
    let listed = crate::support::fixtures::count(
        &db,
        &portcullis::db::RlsContext::purpose("revocation_sync"),
        &format!("auth.token_revocations WHERE session_id = '{session}'"),
    )
    .await
    .unwrap();
    assert_eq!(listed, 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_service_token_revocation_is_audited_in_the_services_tenant() {
    let test = TestDb::new().await;
    let db = test.db();
    let world = populate(&db).await;
    let service = create_service(&db, Some(world.tenant), &["authz.check"]).await;
    let server = TestServer::start(db).await;
    let channel = server.channel().await;
    let issued = token_of(&channel, &service).await;
    revoke(
        &channel,
        &issued.access_token,
        Target::Token(issued.access_token.clone()),
    )
    .await
    .unwrap();
    let revoked = audit_rows(&test, "service.token_revoked").await;
    assert_eq!(revoked.len(), 1);
    assert_eq!(revoked[0].tenant_id, Some(world.tenant));
}

#[tokio::test(flavor = "multi_thread")]
async fn refusals_for_a_real_key_flood_no_tenants_trail() {
    let test = TestDb::new().await;
    let db = test.db();
    let world = populate(&db).await;
    let service = create_service(&db, Some(world.tenant), &["authz.check"]).await;
    let server = TestServer::start(db).await;
    let channel = server.channel().await;
    for _ in 0..25 {
        exchange(&channel, service.key.as_str(), "wrong", &[])
            .await
            .unwrap_err();
    }
    let refused = audit_rows(&test, "service.credential_refused").await;
    assert_eq!(refused.len(), 20, "refusals audited per key per hour");
    // The real secret is not locked out by the flood.
    token_of(&channel, &service).await;
}

type LastUse = Option<chrono::DateTime<chrono::Utc>>;

/// When the service's one secret was last used, as recorded.
async fn secret_last_used(conn: &mut diesel_async::AsyncPgConnection, service: Uuid) -> LastUse {
    use diesel::sql_types::{Nullable, Timestamptz};
    use diesel_async::RunQueryDsl;
    #[derive(diesel::QueryableByName)]
    struct Row {
        #[diesel(sql_type = Nullable<Timestamptz>)]
        last_used_utc: LastUse,
    }
    diesel::sql_query("SELECT last_used_utc FROM auth.service_secrets WHERE svc_id = $1")
        .bind::<diesel::sql_types::Uuid, _>(service)
        .get_result::<Row>(conn)
        .await
        .unwrap()
        .last_used_utc
}

/// Recorded to the minute: concurrent exchanges of one secret must not all
/// write its row.
#[tokio::test(flavor = "multi_thread")]
async fn a_secret_s_last_use_is_recorded_to_the_minute() {
    use diesel_async::RunQueryDsl;
    let test = TestDb::new().await;
    let db = test.db();
    let service = create_service(&db, None, &["authz.check"]).await;
    let server = TestServer::start(db).await;
    let channel = server.channel().await;
    let mut conn = test.superuser().await;
    assert_eq!(secret_last_used(&mut conn, service.id).await, None);

    let before = chrono::Utc::now() - chrono::TimeDelta::seconds(1);
    token_of(&channel, &service).await;
    let first = secret_last_used(&mut conn, service.id).await;
    assert!(first.is_some_and(|at| at >= before), "{first:?}");

    token_of(&channel, &service).await;
    assert_eq!(
        secret_last_used(&mut conn, service.id).await,
        first,
        "a use within the minute was written again"
    );

    diesel::sql_query(
        "UPDATE auth.service_secrets SET last_used_utc = now() - interval '2 minutes' \
         WHERE svc_id = $1",
    )
    .bind::<diesel::sql_types::Uuid, _>(service.id)
    .execute(&mut conn)
    .await
    .unwrap();
    let again = chrono::Utc::now() - chrono::TimeDelta::seconds(1);
    token_of(&channel, &service).await;
    let latest = secret_last_used(&mut conn, service.id).await;
    assert!(
        latest.is_some_and(|at| at >= again),
        "a use after the minute was not recorded: {latest:?}"
    );
}
