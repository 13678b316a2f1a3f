//! The RLS-scoped transaction: the only door to the database.

use std::time::{Duration, Instant};

use diesel::sql_types::Text;
use diesel_async::RunQueryDsl;
use portcullis::db::{Db, DbError, PoolSettings, RlsContext};
use scoped_futures::ScopedFutureExt;
use uuid::Uuid;

use crate::support::fixtures::{count, execute};
use crate::support::{TestDb, test_pool};

#[derive(diesel::QueryableByName)]
struct Setting {
    #[diesel(sql_type = Text)]
    value: String,
}

/// The tenant id and the backend process id, as seen inside a read scope.
async fn context_and_backend(db: &Db, ctx: &RlsContext) -> (String, String) {
    db.read(ctx, |conn| {
        async move {
            let tenant: Setting = diesel::sql_query(
                "SELECT coalesce(current_setting('app.tenant_id', true), '') AS value",
            )
            .get_result(conn)
            .await?;
            let pid: Setting = diesel::sql_query("SELECT pg_backend_pid()::text AS value")
                .get_result(conn)
                .await?;
            Ok::<_, DbError>((tenant.value, pid.value))
        }
        .scope_boxed()
    })
    .await
    .unwrap()
}

fn single_connection(test: &TestDb, acquire_timeout: Duration) -> Db {
    Db::new(
        test.app_url.as_str(),
        &PoolSettings {
            max_size: 1,
            acquire_timeout,
            idle_timeout: None,
            max_lifetime: None,
            ..test_pool()
        },
    )
    .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_context_is_set_inside_the_scope() {
    let test = TestDb::new().await;
    let tenant = Uuid::new_v4();
    let (seen, _) = context_and_backend(&test.db(), &RlsContext::tenant(tenant)).await;
    assert_eq!(seen, tenant.to_string());
}

#[tokio::test(flavor = "multi_thread")]
async fn the_context_does_not_outlive_its_transaction_on_a_reused_connection() {
    let test = TestDb::new().await;
    let db = single_connection(&test, Duration::from_secs(5));
    let (_, first_pid) = context_and_backend(&db, &RlsContext::tenant(Uuid::new_v4())).await;
    let (seen, second_pid) = context_and_backend(&db, &RlsContext::anonymous()).await;
    assert_eq!(
        first_pid, second_pid,
        "the pool should have reused its one connection"
    );
    assert_eq!(seen, "", "the previous transaction's tenant leaked");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_read_scope_refuses_writes() {
    let test = TestDb::new().await;
    let db = test.db();
    let tenant = Uuid::new_v4();
    let result = db
        .read(&RlsContext::tenant(tenant), |conn| {
            async move {
                diesel::sql_query(format!(
                    "INSERT INTO auth.tenants (tenant_id, tenant_slug, tenant_label) VALUES ('{tenant}', 'x', 'X')"
                ))
                .execute(conn)
                .await?;
                Ok::<_, DbError>(())
            }
            .scope_boxed()
        })
        .await;
    let error = result.unwrap_err().to_string();
    assert!(error.contains("read-only transaction"), "{error}");
}

#[tokio::test(flavor = "multi_thread")]
async fn failed_work_is_rolled_back() {
    let test = TestDb::new().await;
    let db = test.db();
    let tenant = Uuid::new_v4();
    let ctx = RlsContext::tenant(tenant);
    let result: Result<(), DbError> = db
        .write(&ctx, |conn| {
            async move {
                diesel::sql_query(format!(
                    "INSERT INTO auth.tenants (tenant_id, tenant_slug, tenant_label) VALUES ('{tenant}', 'gone', 'Gone')"
                ))
                .execute(conn)
                .await?;
                Err(DbError::Unavailable("the work failed after writing".into()))
            }
            .scope_boxed()
        })
        .await;
    assert!(result.is_err());
    assert_eq!(count(&db, &ctx, "auth.tenants").await.unwrap(), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn committed_work_is_visible_to_the_next_scope() {
    let test = TestDb::new().await;
    let db = test.db();
    let tenant = Uuid::new_v4();
    let ctx = RlsContext::tenant(tenant);
    execute(
        &db,
        &ctx,
        &format!("INSERT INTO auth.tenants (tenant_id, tenant_slug, tenant_label) VALUES ('{tenant}', 'kept', 'Kept')"),
    )
    .await
    .unwrap();
    assert_eq!(count(&db, &ctx, "auth.tenants").await.unwrap(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_exhausted_pool_answers_unavailable_within_the_acquire_timeout() {
    let test = TestDb::new().await;
    let db = single_connection(&test, Duration::from_millis(300));
    let holder = db.clone();
    let busy = tokio::spawn(async move {
        holder
            .read(&RlsContext::anonymous(), |conn| {
                async move {
                    diesel::sql_query("SELECT pg_sleep(2)")
                        .execute(conn)
                        .await?;
                    Ok::<_, DbError>(())
                }
                .scope_boxed()
            })
            .await
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let started = Instant::now();
    let result = db.ping().await;
    assert!(matches!(result, Err(DbError::Unavailable(_))), "{result:?}");
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "waited {:?}",
        started.elapsed()
    );
    busy.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unreachable_database_answers_unavailable_not_a_hang() {
    let test = TestDb::new().await;
    let port = crate::support::ports::unused_port();
    let db = test.db_via("127.0.0.1", port);
    let started = Instant::now();
    let result = db.ping().await;
    assert!(matches!(result, Err(DbError::Unavailable(_))), "{result:?}");
    assert!(
        started.elapsed() < Duration::from_secs(6),
        "waited {:?}",
        started.elapsed()
    );
}

#[test]
fn database_errors_map_to_grpc_codes_without_leaking_sql() {
    let unavailable = tonic::Status::from(DbError::Unavailable("pool timed out".into()));
    assert_eq!(unavailable.code(), tonic::Code::Unavailable);

    let query = DbError::Query(diesel::result::Error::QueryBuilderError(
        "SELECT secret FROM auth.users".into(),
    ));
    let internal = tonic::Status::from(query);
    assert_eq!(internal.code(), tonic::Code::Internal);
    assert!(
        !internal.message().contains("SELECT"),
        "{}",
        internal.message()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_statement_past_the_timeout_is_cancelled_and_reported() {
    let test = TestDb::new().await;
    let db = Db::new(
        test.app_url.as_str(),
        &PoolSettings {
            statement_timeout: Duration::from_millis(200),
            ..test_pool()
        },
    )
    .unwrap();
    let started = Instant::now();
    let result = db
        .read(&RlsContext::anonymous(), |conn| {
            async move {
                diesel::sql_query("SELECT pg_sleep(5)")
                    .execute(conn)
                    .await?;
                Ok::<_, DbError>(())
            }
            .scope_boxed()
        })
        .await;
    assert!(matches!(result, Err(DbError::Timeout)), "{result:?}");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "waited {:?}",
        started.elapsed()
    );
    assert_eq!(
        tonic::Status::from(DbError::Timeout).code(),
        tonic::Code::DeadlineExceeded
    );
}

/// Waits until `n` callers are queued for a connection.
async fn until_waiting(db: &Db, n: u64) {
    while db.status().waiting != n {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn callers_waiting_for_a_connection_are_served_in_arrival_order() {
    let test = TestDb::new().await;
    let db = single_connection(&test, Duration::from_secs(5));
    let order = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let served = |name: &'static str| {
        let (db, order) = (db.clone(), order.clone());
        async move {
            db.read(&RlsContext::anonymous(), |_conn| {
                async move {
                    order.lock().unwrap().push(name);
                    Ok::<_, DbError>(())
                }
                .scope_boxed()
            })
            .await
            .unwrap();
        }
    };

    // A holds the only connection until told to let go, then asks again at
    // once: it must queue behind B and C, who asked while it held it.
    let (release, released) = tokio::sync::oneshot::channel::<()>();
    let (entered, holding) = tokio::sync::oneshot::channel::<()>();
    let holder = {
        let db = db.clone();
        let again = served("A again");
        tokio::spawn(async move {
            db.read(&RlsContext::anonymous(), |_conn| {
                async move {
                    entered.send(()).unwrap();
                    released.await.unwrap();
                    Ok::<_, DbError>(())
                }
                .scope_boxed()
            })
            .await
            .unwrap();
            again.await;
        })
    };
    holding.await.unwrap();
    let b = tokio::spawn(served("B"));
    until_waiting(&db, 1).await;
    let c = tokio::spawn(served("C"));
    until_waiting(&db, 2).await;
    release.send(()).unwrap();
    for task in [holder, b, c] {
        task.await.unwrap();
    }
    assert_eq!(*order.lock().unwrap(), ["B", "C", "A again"]);
}

/// The timeout is known by its SQLSTATE, not its message: under German
/// server messages it is still a timeout. Needs the `de_DE.UTF-8` locale
/// on the database host (`.ci/run` generates it); skipped without it
/// unless `PORTCULLIS_TEST_REQUIRE_DE_LOCALE` is set.
#[tokio::test(flavor = "multi_thread")]
async fn a_timeout_is_known_by_its_sqlstate_whatever_the_message_language() {
    use diesel_async::{AsyncConnection, AsyncPgConnection, SimpleAsyncConnection};
    let test = TestDb::new().await;
    let mut admin = AsyncPgConnection::establish(test.admin_url.as_str())
        .await
        .unwrap();
    let german = admin
        .batch_execute(&format!(
            "ALTER ROLE {} IN DATABASE {} SET lc_messages = 'de_DE.UTF-8'",
            test.app_role(),
            test.name
        ))
        .await;
    if let Err(error) = german {
        assert!(
            std::env::var_os("PORTCULLIS_TEST_REQUIRE_DE_LOCALE").is_none(),
            "no German locale on the database host: {error}"
        );
        eprintln!("skipped: no German locale on the database host ({error})");
        return;
    }
    let db = Db::new(
        test.app_url.as_str(),
        &PoolSettings {
            statement_timeout: Duration::from_millis(200),
            ..test_pool()
        },
    )
    .unwrap();
    let anonymous = RlsContext::anonymous();
    let run = |sql: &'static str| {
        db.read(&anonymous, move |conn| {
            async move {
                diesel::sql_query(sql).execute(conn).await?;
                Ok::<_, DbError>(())
            }
            .scope_boxed()
        })
    };
    let other = run("SELECT 1/0").await.unwrap_err().to_string();
    assert!(other.contains("Division durch Null"), "not German: {other}");
    let result = run("SELECT pg_sleep(5)").await;
    assert!(matches!(result, Err(DbError::Timeout)), "{result:?}");
}

/// The hot path sends BEGIN, the context, its read and COMMIT in one write.
/// A read whose statement is new to the connection must be prepared first
/// (a round trip of its own); the COMMIT must still wait behind it, or the
/// read would run after the transaction, without its context.
#[tokio::test(flavor = "multi_thread")]
async fn a_pipelined_read_prepared_on_the_way_still_runs_inside_its_transaction() {
    use futures_util::FutureExt;
    let test = TestDb::new().await;
    let db = single_connection(&test, Duration::from_secs(5));
    let tenant = Uuid::new_v4();
    for round in 0..3 {
        // A text never sent before, so never prepared on this connection.
        let sql = format!(
            "SELECT current_setting('app.tenant_id', true) || ' ' \
             || current_setting('transaction_read_only') || ' {round}-{}' AS value",
            Uuid::new_v4().simple()
        );
        let seen: Setting = db
            .read_pipelined(&RlsContext::tenant(tenant), move |conn| {
                let mut conn = conn;
                async move { diesel::sql_query(sql).get_result(&mut conn).await }.boxed()
            })
            .await
            .unwrap();
        assert!(
            seen.value.starts_with(&format!("{tenant} on ")),
            "round {round}: {}",
            seen.value
        );
    }
}

#[derive(diesel::QueryableByName)]
struct Count {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    n: i64,
}

/// A read's statements agree with each other: a row committed while the
/// read runs is not seen by its later statements either (the listing reads
/// the subject's sources and the page they cover in separate statements).
#[tokio::test(flavor = "multi_thread")]
async fn a_read_sees_one_snapshot_whatever_commits_while_it_runs() {
    let test = TestDb::new().await;
    let db = test.db();
    let tenant = Uuid::new_v4();
    let test = &test;
    let (before, after) = db
        .read(&RlsContext::tenant(tenant), |conn| {
            async move {
                let sql = "SELECT count(*) AS n FROM auth.tenants";
                let before = diesel::sql_query(sql).get_result::<Count>(conn).await?.n;
                let mut other = test.superuser().await;
                diesel::sql_query(format!(
                    "INSERT INTO auth.tenants (tenant_id, tenant_slug, tenant_label) \
                     VALUES ('{tenant}', 'meanwhile', 'Meanwhile')"
                ))
                .execute(&mut other)
                .await?;
                let after = diesel::sql_query(sql).get_result::<Count>(conn).await?.n;
                Ok::<_, DbError>((before, after))
            }
            .scope_boxed()
        })
        .await
        .unwrap();
    assert_eq!(
        (before, after),
        (0, 0),
        "the read saw a commit made after it began"
    );
    let ctx = RlsContext::tenant(tenant);
    assert_eq!(count(&db, &ctx, "auth.tenants").await.unwrap(), 1);
}

/// The pipelined read begins as a plain read does: read-only, one snapshot.
#[tokio::test(flavor = "multi_thread")]
async fn a_pipelined_read_sees_one_snapshot() {
    use futures_util::FutureExt;
    let test = TestDb::new().await;
    let seen: Setting = test
        .db()
        .read_pipelined(&RlsContext::anonymous(), |conn| {
            let mut conn = conn;
            async move {
                diesel::sql_query(
                    "SELECT current_setting('transaction_isolation') || ' ' \
                     || current_setting('transaction_read_only') AS value",
                )
                .get_result(&mut conn)
                .await
            }
            .boxed()
        })
        .await
        .unwrap();
    assert_eq!(seen.value, "repeatable read on");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_function_planted_on_the_search_path_never_runs_in_a_check() {
    use diesel_async::{AsyncConnection, AsyncPgConnection, SimpleAsyncConnection};
    use portcullis::authz::{self, CapabilityKey, Check, Subject};
    let test = TestDb::new().await;
    let db = test.db();
    let world = crate::support::fixtures::populate(&db).await;
    // A role that may create in `public` (a grant PostgreSQL 15 no longer
    // makes by default) plants overloads matching the check's own calls
    // more closely than PostgreSQL's.
    let admin = crate::support::admin_url().await;
    let url =
        portcullis::ops::admin::derive_url(&admin, admin.username(), admin.password(), &test.name)
            .unwrap();
    AsyncPgConnection::establish(url.as_str())
        .await
        .unwrap()
        .batch_execute(
            "CREATE FUNCTION public.num_nulls(VARIADIC text[]) RETURNS integer \
               LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'the planted function ran'; END $$; \
             CREATE FUNCTION public.set_config(text, text, boolean) RETURNS text \
               LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'the planted function ran'; END $$;",
        )
        .await
        .unwrap();
    let subject = Subject {
        tenant_id: world.tenant.into(),
        user_id: world.user.into(),
    };
    let check = Check {
        capability: CapabilityKey::parse(&format!(
            "test.cap_{}",
            &world.tenant.simple().to_string()[..12]
        ))
        .unwrap(),
        org_node_id: world.child.into(),
    };
    let decisions = authz::check(&db, subject, &[check], false, None)
        .await
        .expect("the check ran PostgreSQL's own functions");
    assert!(decisions[0].allowed());
}
