use diesel::QueryDsl;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use portcullis::db::schema::{audit, auth};
use portcullis::ops::migrate;

use crate::support::TestDb;

#[tokio::test(flavor = "multi_thread")]
async fn migrations_apply_to_an_empty_database_and_a_second_run_changes_nothing() {
    let test = TestDb::empty().await;

    let first = migrate::run(&test.owner_url).await.unwrap();
    let on_disk = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/migrations"))
        .unwrap()
        .filter(|entry| entry.as_ref().unwrap().path().is_dir())
        .count();
    assert_eq!(first.len(), on_disk, "applied: {first:?}");
    let schema_after_first = schema_fingerprint(&test).await;

    let second = migrate::run(&test.owner_url).await.unwrap();
    assert!(second.is_empty(), "second run applied {second:?}");
    assert_eq!(schema_fingerprint(&test).await, schema_after_first);
}

/// Tables, columns, policies and grants of the two schemas, as text.
async fn schema_fingerprint(test: &TestDb) -> Vec<String> {
    #[derive(diesel::QueryableByName)]
    struct Line {
        #[diesel(sql_type = diesel::sql_types::Text)]
        line: String,
    }
    let mut conn = AsyncPgConnection::establish(test.owner_url.as_str())
        .await
        .unwrap();
    let lines: Vec<Line> = diesel::sql_query(
        "SELECT format('column %s.%s.%s %s %s', table_schema, table_name, column_name, data_type, is_nullable) AS line
           FROM information_schema.columns WHERE table_schema IN ('auth', 'audit')
         UNION ALL
         SELECT format('policy %s.%s.%s %s %s %s', schemaname, tablename, policyname, cmd, qual, with_check)
           FROM pg_policies WHERE schemaname IN ('auth', 'audit')
         UNION ALL
         SELECT format('grant %s.%s %s %s', table_schema, table_name, grantee, privilege_type)
           FROM information_schema.role_table_grants WHERE table_schema IN ('auth', 'audit')
         ORDER BY 1",
    )
    .load(&mut conn)
    .await
    .unwrap();
    assert!(lines.len() > 100, "fingerprint too small to mean anything");
    lines.into_iter().map(|l| l.line).collect()
}

/// `src/db/schema.rs` is written by hand; this catches it drifting from
/// the migrations (a column missing or renamed fails the SELECT).
#[tokio::test(flavor = "multi_thread")]
async fn every_column_of_the_diesel_schema_exists_in_the_migrated_database() {
    let test = TestDb::new().await;
    let mut conn = AsyncPgConnection::establish(test.owner_url.as_str())
        .await
        .unwrap();
    macro_rules! probe {
        ($($table:path),+ $(,)?) => {$(
            {
                use $table as t;
                t::table.select(t::all_columns).limit(0).execute(&mut conn).await
                    .unwrap_or_else(|e| panic!("{}: {e}", stringify!($table)));
            }
        )+};
    }
    probe!(
        auth::tenants,
        auth::users,
        auth::user_identities,
        auth::refresh_sessions,
        auth::otp_codes,
        auth::org_nodes,
        auth::org_node_paths,
        auth::capabilities,
        auth::roles,
        auth::role_capabilities,
        auth::org_assignments,
        auth::visibility_grants,
        auth::invitations,
        auth::services,
        auth::service_secrets,
        auth::service_permissions,
        auth::service_sessions,
        auth::token_revocations,
        auth::login_throttles,
        auth::otp_outbox,
        audit::audit_events,
    );
}
