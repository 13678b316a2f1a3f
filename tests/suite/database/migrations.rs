use diesel::QueryDsl;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use portcullis::db::schema::{audit, auth};
use portcullis::ops::migrate;

use crate::support::TestDb;

#[tokio::test(flavor = "multi_thread")]
async fn migrations_apply_to_an_empty_database_and_a_second_run_changes_nothing() {
    let test = TestDb::empty().await;

    let first = migrate::run(&test.migration_url).await.unwrap();
    let on_disk = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/migrations"))
        .unwrap()
        .filter(|entry| entry.as_ref().unwrap().path().is_dir())
        .count();
    assert_eq!(first.len(), on_disk, "applied: {first:?}");
    let schema_after_first = schema_fingerprint(&test).await;

    let second = migrate::run(&test.migration_url).await.unwrap();
    assert!(second.is_empty(), "second run applied {second:?}");
    assert_eq!(schema_fingerprint(&test).await, schema_after_first);
}

/// Tables, columns (with their defaults), policies, grants, functions and
/// indexes of the two schemas, as text.
async fn schema_fingerprint(test: &TestDb) -> Vec<String> {
    #[derive(diesel::QueryableByName)]
    struct Line {
        #[diesel(sql_type = diesel::sql_types::Text)]
        line: String,
    }
    let mut conn = AsyncPgConnection::establish(test.migration_url.as_str())
        .await
        .unwrap();
    let lines: Vec<Line> = diesel::sql_query(
        "SELECT format('column %s.%s.%s %s %s %s', table_schema, table_name, column_name, data_type, is_nullable, column_default) AS line
           FROM information_schema.columns WHERE table_schema IN ('auth', 'audit')
         UNION ALL
         SELECT format('policy %s.%s.%s %s %s %s', schemaname, tablename, policyname, cmd, qual, with_check)
           FROM pg_policies WHERE schemaname IN ('auth', 'audit')
         UNION ALL
         SELECT format('grant %s.%s %s %s', table_schema, table_name, grantee, privilege_type)
           FROM information_schema.role_table_grants WHERE table_schema IN ('auth', 'audit')
         UNION ALL
         SELECT format('function %s %s %s', p.oid::regprocedure, md5(p.prosrc), p.proacl)
           FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
          WHERE n.nspname IN ('auth', 'audit')
         UNION ALL
         SELECT format('index %s', indexdef) FROM pg_indexes WHERE schemaname IN ('auth', 'audit')
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
    let mut conn = AsyncPgConnection::establish(test.migration_url.as_str())
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
    let mut conn = AsyncPgConnection::establish(test.migration_url.as_str())
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
          WHERE c.table_schema IN ('auth', 'audit')
            -- The migration harness's own table, not the application's.
            AND c.table_schema || '.' || c.table_name <> 'auth.schema_migrations'",
    )
    .load(&mut conn)
    .await
    .unwrap();
    in_database.sort();
    let mut in_schema_rs = diesel_schema_columns(include_str!("../../../src/db/schema.rs"));
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

/// The version whose shape the rows below are written in (directory names
/// sort by version; `~` sorts after any suffix): every migration after it
/// must keep them.
const POPULATED_AT: &str = "2026-11-22-000010";

/// A database in use at an older version (users, identities, sessions,
/// assignments, audit rows) is migrated to the newest version: every row is
/// still there, the user still logs in with the same password and still
/// holds their capability.
#[tokio::test(flavor = "multi_thread")]
async fn rows_written_at_an_older_version_survive_every_later_migration() {
    use diesel::migration::MigrationSource;
    use diesel_async::SimpleAsyncConnection;
    use diesel_migrations::MigrationHarness;
    use portcullis::authn::{AuthnSettings, ClientInfo, Email, Login};
    use secrecy::SecretString;

    let test = TestDb::empty().await;
    let conn = AsyncPgConnection::establish(test.migration_url.as_str())
        .await
        .unwrap();
    let mut harness = migrate::Tracked::new(conn);
    let older: Vec<_> = MigrationSource::<diesel::pg::Pg>::migrations(&migrate::MIGRATIONS)
        .unwrap()
        .into_iter()
        .filter(|m| m.name().to_string().as_str() < format!("{POPULATED_AT}~").as_str())
        .collect();
    assert!(
        older.len() >= 10,
        "{} migrations up to {POPULATED_AT}",
        older.len()
    );
    for migration in &older {
        let applied =
            tokio::task::block_in_place(|| harness.run_next_migration(migrate::MIGRATIONS))
                .unwrap();
        assert_eq!(applied.to_string(), migration.name().version().to_string());
    }
    drop(harness);

    // Written in that version's shape, as the superuser (no RLS context
    // needed): a tenant with a user who logs in by password, a role held
    // at a node, a session and an audit row.
    let password = "correct horse battery staple";
    let app = crate::support::server::test_app(
        test.db(),
        crate::support::server::test_tokens(),
        AuthnSettings::default(),
        crate::support::server::test_settings(),
    );
    let hash = app
        .passwords
        .hash(&SecretString::from(password))
        .await
        .unwrap();
    let (tenant, user, node) = (
        uuid::Uuid::new_v4(),
        uuid::Uuid::new_v4(),
        uuid::Uuid::new_v4(),
    );
    let (role, capability) = (uuid::Uuid::new_v4(), uuid::Uuid::new_v4());
    let (archive, invitation) = (uuid::Uuid::new_v4(), uuid::Uuid::new_v4());
    let mut superuser = test.admin_url.clone();
    superuser.set_path(&format!("/{}", test.name));
    let mut conn = AsyncPgConnection::establish(superuser.as_str())
        .await
        .unwrap();
    // The closure trigger writes as the owner, whom RLS fences: it needs
    // the tenant in context.
    conn.batch_execute(&format!(
        "BEGIN;
         SELECT set_config('app.tenant_id', '{tenant}', true);
         INSERT INTO auth.tenants (id, slug, name) VALUES ('{tenant}', 'upgraded', 'Upgraded');
         INSERT INTO auth.users (id, tenant_id, display_name) VALUES ('{user}', '{tenant}', 'Uma');
         INSERT INTO auth.user_identities (tenant_id, user_id, kind, login, password_hash, verified_at, created_at)
              VALUES ('{tenant}', '{user}', 'email', 'uma@upgraded.example', '{hash}', now(), now() - interval '1 day'),
                     ('{tenant}', '{user}', 'phone', '+33612345678', '{hash}', NULL, now());
         INSERT INTO auth.org_nodes (id, tenant_id, node_type, label) VALUES ('{node}', '{tenant}', 'company', 'Root');
         INSERT INTO auth.org_nodes (id, tenant_id, parent_id, node_type, label, status)
              VALUES ('{archive}', '{tenant}', '{node}', 'team', 'Archive', 'inactive');
         INSERT INTO auth.capabilities (id, key) VALUES ('{capability}', 'ledger.read');
         INSERT INTO auth.roles (id, tenant_id, key, label) VALUES ('{role}', '{tenant}', 'reader', 'Reader');
         INSERT INTO auth.role_capabilities (tenant_id, role_id, capability_id) VALUES ('{tenant}', '{role}', '{capability}');
         INSERT INTO auth.org_assignments (tenant_id, user_id, role_id, org_node_id, start_utc)
              VALUES ('{tenant}', '{user}', '{role}', '{node}', now() - interval '1 day');
         INSERT INTO auth.refresh_sessions (tenant_id, user_id, token_hash, expires_at)
              VALUES ('{tenant}', '{user}', decode(repeat('ab', 32), 'hex'), now() + interval '1 day');
         INSERT INTO auth.invitations (id, tenant_id, destination_kind, destination, role_id, org_node_id, token_hash, expires_at)
              VALUES ('{invitation}', '{tenant}', 'phone', '+33699999999', '{role}', '{node}', decode(repeat('cd', 32), 'hex'), now() + interval '1 day');
         INSERT INTO audit.audit_events (tenant_id, actor_kind, action, entity_kind, entity_id)
              VALUES ('{tenant}', 'system', 'user.created', 'user', '{user}');
         INSERT INTO audit.audit_events (tenant_id, actor_kind, actor_id, action, entity_kind, entity_id)
              VALUES ('{tenant}', 'user', '{user}', 'auth.login_failed', 'login', 'email:uma@upgraded.example');
         COMMIT;"
    ))
    .await
    .unwrap();
    // Every table but the identities, which become one per provider.
    let counts = "SELECT format('%s %s %s %s %s %s %s %s %s %s',
        (SELECT count(*) FROM auth.tenants), (SELECT count(*) FROM auth.users),
        (SELECT count(*) FROM auth.invitations), (SELECT count(*) FROM auth.org_nodes),
        (SELECT count(*) FROM auth.org_node_paths), (SELECT count(*) FROM auth.roles),
        (SELECT count(*) FROM auth.role_capabilities), (SELECT count(*) FROM auth.org_assignments),
        (SELECT count(*) FROM auth.refresh_sessions), (SELECT count(*) FROM audit.audit_events)) AS line";
    #[derive(diesel::QueryableByName)]
    struct Line {
        #[diesel(sql_type = diesel::sql_types::Text)]
        line: String,
    }
    let before = diesel::sql_query(counts)
        .get_result::<Line>(&mut conn)
        .await
        .unwrap()
        .line;
    assert_eq!(before, "1 1 1 2 3 1 1 1 1 2");

    let applied = migrate::run(&test.migration_url).await.unwrap();
    assert!(
        !applied.is_empty(),
        "nothing to migrate after {POPULATED_AT}"
    );
    let after = diesel::sql_query(counts)
        .get_result::<Line>(&mut conn)
        .await
        .unwrap()
        .line;
    assert_eq!(after, before, "rows lost by {applied:?}");
    // The logins moved onto the user, the identities merged into one
    // password identity that keeps the hash and which login was verified;
    // the rest in the seed's shape.
    let shape = diesel::sql_query(format!(
        "SELECT format('%s|%s|%s|%s|%s|%s|%s|%s|%s|%s',
            (SELECT email_addr || ' ' || phone_e164 FROM auth.users WHERE user_id = '{user}'),
            (SELECT count(*) FROM auth.user_identities),
            (SELECT ident_provider_code || ' ' || email_verified_flag || ' ' || phone_verified_flag
               || ' ' || (password_hash_text = '{hash}') FROM auth.user_identities),
            (SELECT string_agg(active_flag::text, ' ' ORDER BY node_label) FROM auth.org_nodes),
            (SELECT phone_e164 || ' ' || (email_addr IS NULL) FROM auth.invitations WHERE invite_id = '{invitation}'),
            (SELECT length(invite_token_hash_text) FROM auth.invitations),
            (SELECT length(refresh_token_hash_text) FROM auth.refresh_sessions),
            (SELECT actor_user_id::text FROM audit.audit_events WHERE action_key = 'auth.login_failed'),
            (SELECT entity_ref_text FROM audit.audit_events WHERE action_key = 'auth.login_failed'),
            (SELECT entity_id::text FROM audit.audit_events WHERE action_key = 'user.created')) AS line"
    ))
    .get_result::<Line>(&mut conn)
    .await
    .unwrap()
    .line;
    assert_eq!(
        shape,
        format!(
            "uma@upgraded.example +33612345678|1|password true false true|false true|\
             +33699999999 true|64|64|{user}|email:uma@upgraded.example|{user}"
        )
    );

    let logins = [
        Login::Email(Email::parse("uma@upgraded.example").unwrap()),
        Login::Phone(portcullis::authn::Phone::parse("+33612345678").unwrap()),
    ];
    for login in &logins {
        let session = app
            .authenticator()
            .authenticate_password(
                tenant.into(),
                login,
                &SecretString::from(password),
                &ClientInfo::default(),
                None,
                chrono::Utc::now(),
            )
            .await
            .unwrap();
        assert_eq!(session.user_id, user, "{login}");
    }
    let decisions = portcullis::authz::check(
        &test.db(),
        portcullis::authz::Subject {
            tenant_id: tenant.into(),
            user_id: user.into(),
        },
        &[portcullis::authz::Check {
            capability: portcullis::authz::CapabilityKey::parse("ledger.read").unwrap(),
            org_node_id: node.into(),
        }],
        false,
        None,
    )
    .await
    .unwrap();
    assert!(decisions[0].allowed(), "{decisions:?}");
}

/// The newest migration can be reverted (`down.sql`) and applied again,
/// ending where it started.
#[tokio::test(flavor = "multi_thread")]
async fn the_newest_migration_reverts_and_reapplies_to_the_same_schema() {
    use diesel_migrations::MigrationHarness;

    let test = TestDb::new().await;
    let before = schema_fingerprint(&test).await;
    let conn = AsyncPgConnection::establish(test.migration_url.as_str())
        .await
        .unwrap();
    let mut harness = migrate::Tracked::new(conn);
    let reverted =
        tokio::task::block_in_place(|| harness.revert_last_migration(migrate::MIGRATIONS)).unwrap();
    drop(harness);
    assert_ne!(
        schema_fingerprint(&test).await,
        before,
        "{reverted} changed nothing"
    );
    let applied = migrate::run(&test.migration_url).await.unwrap();
    assert_eq!(applied, vec![reverted.to_string()]);
    assert_eq!(schema_fingerprint(&test).await, before);
}
