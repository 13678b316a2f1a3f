//! Row-level security, connected as the application role: the database
//! itself fences tenants, whatever the service asks.

use portcullis::db::RlsContext;
use uuid::Uuid;

use crate::support::TestDb;
use crate::support::fixtures::{TenantWorld, count, execute, populate, refused};

#[derive(Clone, Copy)]
enum FencedBy {
    Tenant,
    Service,
    /// The revocation list: ids only, readable by the sync task alone.
    Session,
}

/// Every table, with the column that says whose a row is.
const FENCED_TABLES: &[(&str, &str, FencedBy, Option<&str>)] = &[
    // (table, fence column, fenced by, its own id column)
    (
        "auth.tenants",
        "tenant_id",
        FencedBy::Tenant,
        Some("tenant_id"),
    ),
    ("auth.users", "tenant_id", FencedBy::Tenant, Some("user_id")),
    (
        "auth.user_identities",
        "tenant_id",
        FencedBy::Tenant,
        Some("ident_id"),
    ),
    (
        "auth.refresh_sessions",
        "tenant_id",
        FencedBy::Tenant,
        Some("session_id"),
    ),
    (
        "auth.otp_codes",
        "tenant_id",
        FencedBy::Tenant,
        Some("otp_id"),
    ),
    (
        "auth.org_nodes",
        "tenant_id",
        FencedBy::Tenant,
        Some("org_node_id"),
    ),
    ("auth.org_node_paths", "tenant_id", FencedBy::Tenant, None),
    ("auth.roles", "tenant_id", FencedBy::Tenant, Some("role_id")),
    (
        "auth.role_capabilities",
        "tenant_id",
        FencedBy::Tenant,
        None,
    ),
    (
        "auth.org_assignments",
        "tenant_id",
        FencedBy::Tenant,
        Some("assignment_id"),
    ),
    (
        "auth.visibility_grants",
        "tenant_id",
        FencedBy::Tenant,
        Some("grant_id"),
    ),
    (
        "auth.invitations",
        "tenant_id",
        FencedBy::Tenant,
        Some("invite_id"),
    ),
    ("auth.idempotency_keys", "tenant_id", FencedBy::Tenant, None),
    ("auth.login_throttles", "tenant_id", FencedBy::Tenant, None),
    ("auth.otp_outbox", "tenant_id", FencedBy::Tenant, Some("id")),
    ("auth.id_token_uses", "tenant_id", FencedBy::Tenant, None),
    ("auth.services", "svc_id", FencedBy::Service, Some("svc_id")),
    (
        "auth.service_secrets",
        "svc_id",
        FencedBy::Service,
        Some("secret_id"),
    ),
    (
        "auth.service_permissions",
        "svc_id",
        FencedBy::Service,
        None,
    ),
    (
        "auth.service_sessions",
        "svc_id",
        FencedBy::Service,
        Some("svc_session_id"),
    ),
    (
        "auth.token_revocations",
        "session_id",
        FencedBy::Session,
        None,
    ),
    (
        "audit.audit_events",
        "tenant_id",
        FencedBy::Tenant,
        Some("audit_id"),
    ),
];

/// The global catalogue, fenced by "has any identity" rather than by owner.
const GLOBAL_TABLES: &[&str] = &[
    "auth.capabilities",
    "auth.endpoint_policy",
    "auth.endpoint_catalogue_version",
];

/// Seen by global administrators alone (and each row names its caller).
const GLOBAL_ADMIN_TABLES: &[&str] = &["auth.global_idempotency_keys"];

/// Appended and read by global administrators alone: the endpoint
/// catalogue's change log.
const GLOBAL_ADMIN_LOGS: &[&str] = &["audit.policy_change_log"];

/// Counters of unauthenticated callers: a transaction sees the rows of the
/// client address and the service key in its context, nothing else.
const ANONYMOUS_TABLES: &[&str] = &["auth.anonymous_throttles"];

/// The applied migrations: seen by the schema's owner (the migration role)
/// alone; the application role holds no privilege on it at all.
const MIGRATION_TRACKING_TABLES: &[&str] = &["auth.schema_migrations"];

/// What the SQL decision functions (run as the owner) trust: the roles'
/// bindings, the issuers a server recorded, the assertion keys. The
/// application role reaches the last two for one purpose each.
const DECISION_TRUST_TABLES: &[&str] = &[
    "auth.decision_roles",
    "auth.token_issuers",
    "auth.sql_assertion_keys",
];

/// The change stream's positions and its pruning horizon: written by the
/// owner's trigger at COMMIT, read in a server's `watch` context alone
/// (fenced there by tenant), pruned in its `watch_retention` context.
const CHANGE_STREAM_TABLES: &[&str] = &["audit.access_changes", "audit.access_change_horizon"];

fn owner_value(world: &TenantWorld, fence: FencedBy) -> Uuid {
    match fence {
        FencedBy::Tenant => world.tenant,
        FencedBy::Service => world.service,
        FencedBy::Session => world.service_session,
    }
}

/// A context that may read the world's rows of a table.
fn reader(world: &TenantWorld, fence: FencedBy) -> RlsContext {
    match fence {
        FencedBy::Session => RlsContext::purpose("revocation_sync"),
        _ => world.context(),
    }
}

async fn two_tenants() -> (TestDb, TenantWorld, TenantWorld) {
    let test = TestDb::new().await;
    let db = test.db();
    let a = populate(&db).await;
    let b = populate(&db).await;
    (test, a, b)
}

#[tokio::test(flavor = "multi_thread")]
async fn the_test_covers_every_table_of_auth_and_audit() {
    let test = TestDb::new().await;
    let tables = count(
        &test.db(),
        &RlsContext::anonymous(),
        "pg_tables WHERE schemaname IN ('auth', 'audit')",
    )
    .await
    .unwrap();
    assert_eq!(
        tables as usize,
        FENCED_TABLES.len()
            + GLOBAL_TABLES.len()
            + GLOBAL_ADMIN_TABLES.len()
            + GLOBAL_ADMIN_LOGS.len()
            + ANONYMOUS_TABLES.len()
            + MIGRATION_TRACKING_TABLES.len()
            + DECISION_TRUST_TABLES.len()
            + CHANGE_STREAM_TABLES.len()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn every_table_in_auth_and_audit_has_rls_enabled_and_forced() {
    let test = TestDb::new().await;
    let db = test.db();
    let ctx = RlsContext::anonymous();
    let scope = "pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
                 WHERE n.nspname IN ('auth', 'audit') AND c.relkind IN ('r', 'p')";
    let all = count(&db, &ctx, scope).await.unwrap();
    let unforced = count(
        &db,
        &ctx,
        &format!("{scope} AND NOT (c.relrowsecurity AND c.relforcerowsecurity)"),
    )
    .await
    .unwrap();
    assert_eq!(
        all as usize,
        FENCED_TABLES.len()
            + GLOBAL_TABLES.len()
            + GLOBAL_ADMIN_TABLES.len()
            + GLOBAL_ADMIN_LOGS.len()
            + ANONYMOUS_TABLES.len()
            + MIGRATION_TRACKING_TABLES.len()
            + DECISION_TRUST_TABLES.len()
            + CHANGE_STREAM_TABLES.len()
    );
    assert_eq!(unforced, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn every_policy_reads_the_context_through_a_scalar_subquery() {
    let test = TestDb::new().await;
    let db = test.db();
    let ctx = RlsContext::anonymous();
    // Three kinds read no request context, and apply to the schema's owner
    // alone (checked below): the tracking table's, the read access the SQL
    // decision functions (SECURITY DEFINER, run as the owner) need, and the
    // change stream's positions, written by the owner's trigger at COMMIT.
    let policies = "pg_policies WHERE schemaname IN ('auth', 'audit') \
                    AND tablename <> 'schema_migrations' \
                    AND policyname NOT IN ('decision_functions_read', 'positioned_at_commit')";
    let text = "(coalesce(qual, '') || coalesce(with_check, ''))";
    assert!(count(&db, &ctx, policies).await.unwrap() >= 18);
    let not_reading_context = count(
        &db,
        &ctx,
        &format!("{policies} AND {text} NOT LIKE '%SELECT auth.ctx_%'"),
    )
    .await
    .unwrap();
    let called_per_row = count(
        &db,
        &ctx,
        &format!("{policies} AND {text} ~ '(?<!SELECT )auth\\.ctx_'"),
    )
    .await
    .unwrap();
    assert_eq!((not_reading_context, called_per_row), (0, 0));
}

#[tokio::test(flavor = "multi_thread")]
async fn the_owner_only_policies_admit_the_schema_owner_alone() {
    let test = TestDb::new().await;
    let db = test.db();
    let ctx = RlsContext::anonymous();
    let for_others = count(
        &db,
        &ctx,
        "pg_policies WHERE (policyname = 'decision_functions_read' AND cmd <> 'SELECT' \
              OR policyname = 'positioned_at_commit' AND cmd <> 'INSERT' \
              OR policyname IN ('decision_functions_read', 'positioned_at_commit') \
                 AND roles <> ARRAY[(SELECT nspowner::regrole::name \
              FROM pg_namespace WHERE nspname = 'auth')])",
    )
    .await
    .unwrap();
    assert_eq!(for_others, 0);
    assert_eq!(
        count(
            &db,
            &ctx,
            "pg_policies WHERE policyname = 'decision_functions_read'"
        )
        .await
        .unwrap(),
        11
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_application_role_cannot_touch_the_migration_tracking_table() {
    let test = TestDb::new().await;
    let db = test.db();
    for table in MIGRATION_TRACKING_TABLES {
        let privileged = count(
            &db,
            &RlsContext::anonymous(),
            &format!(
                "(SELECT 1) one WHERE has_table_privilege(current_user, '{table}', \
                 'SELECT, INSERT, UPDATE, DELETE, TRUNCATE')"
            ),
        )
        .await
        .unwrap();
        assert_eq!(privileged, 0, "{table}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_decision_trust_tables_open_to_the_application_role_for_one_purpose_each() {
    let test = TestDb::new().await;
    let db = test.db();
    let anyone = RlsContext::operator();
    // The bindings: no privilege at all.
    let bindings = count(&db, &anyone, "auth.decision_roles").await;
    assert!(
        bindings.is_err_and(|e| e.to_string().contains("permission denied")),
        "the application role read the bindings"
    );
    // The issuers: recorded under their purpose, never read.
    let record =
        "INSERT INTO auth.token_issuers (issuer_text) VALUES ('https://issuer.example.test')";
    assert!(refused(&execute(&db, &anyone, record).await));
    execute(&db, &RlsContext::purpose("token_issuer"), record)
        .await
        .unwrap();
    assert!(
        count(
            &db,
            &RlsContext::purpose("token_issuer"),
            "auth.token_issuers"
        )
        .await
        .is_err()
    );
    // The assertion keys: read to sign, under their purpose alone.
    assert_eq!(
        count(&db, &anyone, "auth.sql_assertion_keys")
            .await
            .unwrap(),
        0
    );
    let signing = RlsContext::purpose("sql_assertion");
    assert_eq!(
        count(&db, &signing, "auth.sql_assertion_keys")
            .await
            .unwrap(),
        1
    );
    let planted = "INSERT INTO auth.sql_assertion_keys (key_id, secret_key) \
                   VALUES ('k9', decode(repeat('00', 32), 'hex'))";
    assert!(refused(&execute(&db, &signing, planted).await));
}

#[tokio::test(flavor = "multi_thread")]
async fn application_role_is_not_superuser_nor_bypassrls() {
    let test = TestDb::new().await;
    let db = test.db();
    let ctx = RlsContext::anonymous();
    let safe = count(&db, &ctx, "pg_roles WHERE rolname = current_user AND NOT rolsuper AND NOT rolbypassrls AND NOT rolcreaterole AND NOT rolcreatedb")
        .await
        .unwrap();
    assert_eq!(safe, 1);
    let current = count(
        &db,
        &ctx,
        &format!(
            "pg_roles WHERE rolname = current_user AND rolname = '{}'",
            test.app_role()
        ),
    )
    .await
    .unwrap();
    assert_eq!(
        current, 1,
        "the data path must connect as the application role"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn application_role_owns_nothing() {
    let test = TestDb::new().await;
    let db = test.db();
    let ctx = RlsContext::anonymous();
    let mine = "(SELECT oid FROM pg_roles WHERE pg_has_role(current_user, oid, 'MEMBER'))";
    for catalog in [
        format!("pg_class WHERE relowner IN {mine}"),
        format!("pg_namespace WHERE nspowner IN {mine}"),
        format!("pg_proc WHERE proowner IN {mine}"),
        format!("pg_type WHERE typowner IN {mine}"),
        format!("pg_database WHERE datdba IN {mine}"),
    ] {
        assert_eq!(count(&db, &ctx, &catalog).await.unwrap(), 0, "{catalog}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn without_context_every_table_shows_no_rows() {
    let (test, _a, _b) = two_tenants().await;
    let db = test.db();
    let tables = FENCED_TABLES
        .iter()
        .map(|t| t.0)
        .chain(GLOBAL_TABLES.iter().copied())
        .chain(GLOBAL_ADMIN_TABLES.iter().copied())
        .chain(GLOBAL_ADMIN_LOGS.iter().copied())
        .chain(ANONYMOUS_TABLES.iter().copied());
    for table in tables {
        let rows = count(&db, &RlsContext::anonymous(), table).await.unwrap();
        assert_eq!(rows, 0, "{table} shows rows without context");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tenant_cannot_read_another_tenants_rows() {
    let (test, a, b) = two_tenants().await;
    let db = test.db();
    for &(table, column, fence, _) in FENCED_TABLES {
        let theirs = format!("{table} WHERE {column} = '{}'", owner_value(&b, fence));
        match count(&db, &a.context(), &theirs).await {
            Ok(rows) => assert_eq!(rows, 0, "{table}: tenant A reads B's rows"),
            Err(error) => assert!(
                error.to_string().contains("permission denied"),
                "{table}: {error}"
            ),
        }
        // B's rows are there: the zero above is the fence, not an empty table.
        assert!(
            count(&db, &reader(&b, fence), &theirs).await.unwrap() > 0,
            "{table} has no rows for B"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tenant_cannot_update_another_tenants_rows() {
    let (test, a, b) = two_tenants().await;
    let db = test.db();
    for &(table, column, fence, _) in FENCED_TABLES {
        let value = owner_value(&b, fence);
        let result = execute(
            &db,
            &a.context(),
            &format!("UPDATE {table} SET {column} = {column} WHERE {column} = '{value}'"),
        )
        .await;
        assert!(
            matches!(result, Ok(0)) || refused(&result),
            "{table}: {result:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tenant_cannot_delete_another_tenants_rows() {
    let (test, a, b) = two_tenants().await;
    let db = test.db();
    for &(table, column, fence, _) in FENCED_TABLES {
        let theirs = format!("{table} WHERE {column} = '{}'", owner_value(&b, fence));
        let before = count(&db, &reader(&b, fence), &theirs).await;
        let result = execute(&db, &a.context(), &format!("DELETE FROM {theirs}")).await;
        assert!(
            matches!(result, Ok(0)) || refused(&result),
            "{table}: {result:?}"
        );
        let after = count(&db, &reader(&b, fence), &theirs).await;
        assert_eq!(
            format!("{before:?}"),
            format!("{after:?}"),
            "{table}: B's rows changed"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tenant_cannot_insert_rows_with_a_forged_owner() {
    let (test, a, b) = two_tenants().await;
    let db = test.db();
    for &(table, column, fence, own_id) in FENCED_TABLES {
        let forged = owner_value(&b, fence);
        // Tables A cannot read get an explicit row instead of a copy of A's.
        let sql = if table == "audit.audit_events" {
            format!(
                "INSERT INTO {table} (tenant_id, actor_kind_code, action_key, entity_kind_code) \
                 VALUES ('{forged}', 'system', 'test.forged', 'tenant')"
            )
        } else if table == "auth.token_revocations" {
            format!(
                "INSERT INTO {table} (session_id, token_kind, expires_at) \
                 VALUES ('{forged}', 'service', now() + interval '1 minute')"
            )
        } else {
            // Copy one of A's own rows, claiming it for B.
            let overrides = match own_id {
                Some(id) if id == column => format!("jsonb_build_object('{id}', '{forged}'::uuid)"),
                Some(id) => format!(
                    "jsonb_build_object('{column}', '{forged}'::uuid, '{id}', gen_random_uuid())"
                ),
                None => format!("jsonb_build_object('{column}', '{forged}'::uuid)"),
            };
            // A root node, so the row reaches the policy rather than the
            // trigger that refuses a parent from another tenant.
            let roots_only = if table == "auth.org_nodes" {
                " AND src.parent_org_node_id IS NULL"
            } else {
                ""
            };
            format!(
                "INSERT INTO {table} SELECT (jsonb_populate_record(NULL::{table}, to_jsonb(src) || {overrides})).* \
                 FROM {table} src WHERE src.{column} = '{}'{roots_only} LIMIT 1",
                owner_value(&a, fence)
            )
        };
        let result = execute(&db, &a.context(), &sql).await;
        assert!(
            refused(&result),
            "{table}: forged insert was not refused: {result:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_invitation_lookup_context_reads_one_invitation_and_writes_nothing() {
    let (test, _a, b) = two_tenants().await;
    let db = test.db();
    let invitation = Uuid::new_v4();
    execute(
        &db,
        &b.context(),
        &format!(
            "INSERT INTO auth.invitations (invite_id, tenant_id, email_addr, target_role_id, target_org_node_id, invite_token_hash_text, expiry_utc) \
             SELECT '{invitation}', tenant_id, 'named@example.test', target_role_id, target_org_node_id, repeat('7', 64), expiry_utc \
             FROM auth.invitations LIMIT 1"
        ),
    )
    .await
    .unwrap();
    assert_eq!(
        count(&db, &b.context(), "auth.invitations").await.unwrap(),
        2
    );

    let lookup = RlsContext::anonymous().with_invitation(invitation);
    let seen = format!("auth.invitations WHERE invite_id = '{invitation}'");
    assert_eq!(count(&db, &lookup, &seen).await.unwrap(), 1);
    assert_eq!(count(&db, &lookup, "auth.invitations").await.unwrap(), 1);
    for &(table, ..) in FENCED_TABLES {
        if table != "auth.invitations" {
            let rows = count(&db, &lookup, table).await.unwrap_or(0);
            assert_eq!(rows, 0, "{table} shows rows to the invitation lookup");
        }
    }
    let update = execute(
        &db,
        &lookup,
        "UPDATE auth.invitations SET revoked_utc = now()",
    )
    .await;
    assert!(matches!(update, Ok(0)), "{update:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn global_administration_rows_are_out_of_every_tenants_reach() {
    let (test, a, _b) = two_tenants().await;
    let db = test.db();
    let insert = "INSERT INTO auth.global_idempotency_keys (caller, operation, key, request_hash) \
                  VALUES ('system', 'create_tenant', 'k', decode(repeat('ab', 32), 'hex'))";
    for &table in GLOBAL_ADMIN_TABLES {
        assert!(
            count(&db, &RlsContext::operator(), table).await.unwrap() > 0,
            "{table} is empty"
        );
        assert_eq!(count(&db, &a.context(), table).await.unwrap(), 0, "{table}");
        let update = execute(
            &db,
            &a.context(),
            &format!("UPDATE {table} SET response = NULL"),
        )
        .await;
        assert!(matches!(update, Ok(0)), "{table}: {update:?}");
    }
    let forged = execute(&db, &a.context(), insert).await;
    assert!(refused(&forged), "{forged:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_policy_change_log_is_out_of_every_tenants_reach() {
    let (test, a, _b) = two_tenants().await;
    let db = test.db();
    for &table in GLOBAL_ADMIN_LOGS {
        let forged = execute(
            &db,
            &a.context(),
            &format!(
                "INSERT INTO {table} (actor_kind_code, action_key, endpoint_id) \
                 VALUES ('system', 'endpoint_policy.deleted', gen_random_uuid())"
            ),
        )
        .await;
        assert!(refused(&forged), "{table}: {forged:?}");
        execute(
            &db,
            &RlsContext::operator(),
            &format!(
                "INSERT INTO {table} (actor_kind_code, action_key, endpoint_id) \
                 VALUES ('system', 'endpoint_policy.deleted', gen_random_uuid())"
            ),
        )
        .await
        .unwrap();
        assert_eq!(count(&db, &a.context(), table).await.unwrap(), 0, "{table}");
        assert_eq!(count(&db, &RlsContext::operator(), table).await.unwrap(), 1);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_catalogue_version_is_read_by_any_identity_and_moved_by_global_administrators_alone() {
    let (test, a, _b) = two_tenants().await;
    let db = test.db();
    let table = "auth.endpoint_catalogue_version";
    let bump = format!("UPDATE {table} SET version_no = version_no + 1");
    assert_eq!(count(&db, &a.context(), table).await.unwrap(), 1);
    assert_eq!(execute(&db, &a.context(), &bump).await.unwrap(), 0);
    assert_eq!(
        execute(&db, &RlsContext::operator(), &bump).await.unwrap(),
        1
    );
}

fn service_key_of(world: &TenantWorld) -> String {
    format!("svc-{}", &world.tenant.simple().to_string()[..12])
}

#[tokio::test(flavor = "multi_thread")]
async fn the_service_key_context_reads_its_service_and_writes_nothing() {
    let (test, _a, b) = two_tenants().await;
    let db = test.db();
    // What an unauthenticated caller gets by presenting B's service key.
    let lookup = RlsContext::anonymous().with_service_key(service_key_of(&b));
    let svc = b.service;
    assert_eq!(
        count(
            &db,
            &lookup,
            &format!("auth.services WHERE svc_id = '{svc}'")
        )
        .await
        .unwrap(),
        1
    );
    assert_eq!(
        count(&db, &lookup, "auth.service_permissions")
            .await
            .unwrap(),
        1
    );
    let grant_itself = execute(
        &db,
        &lookup,
        &format!("INSERT INTO auth.service_permissions (svc_id, perm_key) VALUES ('{svc}', 'admin.tenants.write')"),
    )
    .await;
    assert!(refused(&grant_itself), "{grant_itself:?}");
    let open_session = execute(
        &db,
        &lookup,
        &format!("INSERT INTO auth.service_sessions (svc_id, token_hash_text, expiry_utc) VALUES ('{svc}', repeat('9', 64), now() + interval '1 hour')"),
    )
    .await;
    assert!(refused(&open_session), "{open_session:?}");
    let new_secret = execute(
        &db,
        &lookup,
        &format!(
            "INSERT INTO auth.service_secrets (svc_id, secret_hash_text) VALUES ('{svc}', repeat('a', 64))"
        ),
    )
    .await;
    assert!(refused(&new_secret), "{new_secret:?}");
    for update in [
        "UPDATE auth.services SET svc_state_code = 'disabled'",
        "UPDATE auth.service_secrets SET revoked_utc = now()",
        "UPDATE auth.service_sessions SET revoked_utc = now()",
        "DELETE FROM auth.service_permissions",
    ] {
        let result = execute(&db, &lookup, update).await;
        assert!(
            matches!(result, Ok(0)) || refused(&result),
            "{update}: {result:?}"
        );
    }
    let revoke = execute(
        &db,
        &lookup,
        &format!(
            "INSERT INTO auth.token_revocations (session_id, token_kind, expires_at) \
             VALUES ('{}', 'service', now() + interval '1 minute') ON CONFLICT DO NOTHING",
            Uuid::new_v4()
        ),
    )
    .await;
    assert!(refused(&revoke), "{revoke:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_service_cannot_move_itself_to_another_tenant() {
    let (test, a, b) = two_tenants().await;
    let db = test.db();
    let own = RlsContext::tenant(a.tenant).with_service(a.service);
    let moved = execute(
        &db,
        &own,
        &format!(
            "UPDATE auth.services SET tenant_id = '{}' WHERE svc_id = '{}'",
            b.tenant, a.service
        ),
    )
    .await;
    assert!(refused(&moved), "{moved:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_address_context_sees_only_its_own_throttles() {
    let (test, a, _b) = two_tenants().await;
    let db = test.db();
    let here = RlsContext::tenant(a.tenant).with_client_address(Some("192.0.2.10"));
    let there = RlsContext::tenant(a.tenant).with_client_address(Some("192.0.2.11"));
    for ctx in [&here, &there] {
        execute(
            &db,
            ctx,
            "INSERT INTO auth.anonymous_throttles (scope, subject, counter, failures) \
             VALUES ('address', current_setting('app.client_address'), 'login_failures', 3)",
        )
        .await
        .unwrap();
    }
    assert_eq!(
        count(&db, &here, "auth.anonymous_throttles").await.unwrap(),
        1
    );
    let forged = execute(
        &db,
        &here,
        "INSERT INTO auth.anonymous_throttles (scope, subject, counter) VALUES ('address', '192.0.2.11', 'otp_requests')",
    )
    .await;
    assert!(refused(&forged), "{forged:?}");
    let reset = execute(
        &db,
        &here,
        "UPDATE auth.anonymous_throttles SET failures = 0 WHERE subject = '192.0.2.11'",
    )
    .await;
    assert!(matches!(reset, Ok(0)), "{reset:?}");
    assert_eq!(
        count(
            &db,
            &RlsContext::tenant(a.tenant),
            "auth.anonymous_throttles"
        )
        .await
        .unwrap(),
        0
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_change_stream_is_read_in_the_watch_context_alone_and_fenced_by_tenant() {
    let (test, a, b) = two_tenants().await;
    let db = test.db();
    for world in [&a, &b] {
        let sql = format!(
            "INSERT INTO audit.audit_events \
               (tenant_id, actor_kind_code, action_key, entity_kind_code, entity_id) \
             VALUES ('{}', 'system', 'org.node_renamed', 'org_node', '{}')",
            world.tenant, world.child
        );
        execute(&db, &world.context(), &sql).await.unwrap();
    }
    let changes = "audit.access_changes";
    assert_eq!(
        count(&db, &a.context(), changes).await.unwrap(),
        0,
        "a tenant's own requests read no positions"
    );
    let watching_a = RlsContext::purpose("watch").with_tenant(a.tenant);
    assert_eq!(count(&db, &watching_a, changes).await.unwrap(), 1);
    assert_eq!(
        count(&db, &RlsContext::purpose("watch"), changes)
            .await
            .unwrap(),
        2
    );
    // Only the owner's trigger writes positions.
    let forged = "INSERT INTO audit.access_changes (change_position, audit_id, committed_utc) \
                  SELECT 1000000, audit_id, now() FROM audit.audit_events LIMIT 1";
    assert!(refused(&execute(&db, &watching_a, forged).await));
    assert!(refused(&execute(&db, &a.context(), forged).await));
}
