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

/// One column as the database and as `schema.rs` describe it.
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord, diesel::QueryableByName)]
struct Column {
    #[diesel(sql_type = diesel::sql_types::Text)]
    table: String,
    #[diesel(sql_type = diesel::sql_types::Text)]
    column: String,
    /// PostgreSQL's type name (`uuid`, `text`, `_text` for `text[]`, …),
    /// with `?` when the column is nullable and `*` in the primary key.
    #[diesel(sql_type = diesel::sql_types::Text)]
    shape: String,
}

/// What `diesel print-schema` would write for the migrated database, as
/// columns: `schema.rs` must say exactly this (every table, column, type,
/// nullability and primary key), so it can never drift from the migrations.
#[tokio::test(flavor = "multi_thread")]
async fn the_diesel_schema_is_exactly_the_migrated_database() {
    let test = TestDb::new().await;
    let mut conn = AsyncPgConnection::establish(test.owner_url.as_str())
        .await
        .unwrap();
    let mut in_database: Vec<Column> = diesel::sql_query(
        "SELECT c.table_schema || '.' || c.table_name AS table, c.column_name AS column,
                c.udt_name || CASE WHEN c.is_nullable = 'YES' THEN '?' ELSE '' END
                           || CASE WHEN k.column_name IS NULL THEN '' ELSE '*' END AS shape
           FROM information_schema.columns c
           JOIN information_schema.tables t
             ON t.table_schema = c.table_schema AND t.table_name = c.table_name
            AND t.table_type = 'BASE TABLE'
           LEFT JOIN information_schema.table_constraints p
             ON p.table_schema = c.table_schema AND p.table_name = c.table_name
            AND p.constraint_type = 'PRIMARY KEY'
           LEFT JOIN information_schema.key_column_usage k
             ON k.constraint_name = p.constraint_name AND k.table_schema = p.table_schema
            AND k.table_name = c.table_name AND k.column_name = c.column_name
          WHERE c.table_schema IN ('auth', 'audit')",
    )
    .load(&mut conn)
    .await
    .unwrap();
    in_database.sort();
    let mut in_schema_rs = diesel_schema_columns(include_str!("../../src/db/schema.rs"));
    in_schema_rs.sort();
    let missing: Vec<_> = in_database
        .iter()
        .filter(|c| !in_schema_rs.contains(c))
        .collect();
    let stale: Vec<_> = in_schema_rs
        .iter()
        .filter(|c| !in_database.contains(c))
        .collect();
    assert!(
        missing.is_empty() && stale.is_empty(),
        "schema.rs differs from the migrated database\n in the database, not in schema.rs: {missing:#?}\n in schema.rs, not in the database: {stale:#?}"
    );
}

/// The columns `diesel::table!` declares in `source`, in the shape the
/// database query above gives them.
fn diesel_schema_columns(source: &str) -> Vec<Column> {
    fn udt(diesel_type: &str) -> String {
        match diesel_type {
            "Uuid" => "uuid".into(),
            "Text" => "text".into(),
            "Timestamptz" => "timestamptz".into(),
            "Bytea" => "bytea".into(),
            "Int4" | "Integer" => "int4".into(),
            "Int8" | "BigInt" => "int8".into(),
            "Bool" => "bool".into(),
            "Jsonb" => "jsonb".into(),
            other => match other
                .strip_prefix("Array<")
                .and_then(|t| t.strip_suffix('>'))
            {
                Some(element) => format!("_{}", udt(element)),
                None => panic!("schema.rs: no PostgreSQL name known for {other}"),
            },
        }
    }
    let mut columns = Vec::new();
    for block in source.split("diesel::table! {").skip(1) {
        let mut lines = block.trim_start().lines();
        let header = lines.next().unwrap();
        let (table, rest) = header.split_once(" (").unwrap();
        let keys: Vec<&str> = rest.split_once(')').unwrap().0.split(", ").collect();
        for line in lines {
            let line = line.trim();
            if line == "}" {
                break;
            }
            if line.is_empty() || line.starts_with("//") {
                continue;
            }
            let (column, diesel_type) = line
                .trim_end_matches(',')
                .split_once(" -> ")
                .unwrap_or_else(|| panic!("schema.rs: cannot read `{line}`"));
            let (diesel_type, nullable) = match diesel_type.strip_prefix("Nullable<") {
                Some(inner) => (inner.strip_suffix('>').unwrap(), "?"),
                None => (diesel_type, ""),
            };
            let key = if keys.contains(&column) { "*" } else { "" };
            columns.push(Column {
                table: table.to_owned(),
                column: column.to_owned(),
                shape: format!("{}{nullable}{key}", udt(diesel_type)),
            });
        }
    }
    assert!(
        columns.len() > 100,
        "parsed too few columns: {}",
        columns.len()
    );
    columns
}
