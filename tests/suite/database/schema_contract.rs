//! The seed's schema ("Migration 001" of the platform's schema story) is
//! the contract other teams write SQL, policies and dashboards against:
//! every table and column it lists exists, with a compatible type, and the
//! application role reads them by those names.

use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use portcullis::db::RlsContext;

use crate::support::TestDb;
use crate::support::fixtures::{count, populate};

/// The seed's tables and columns with their types, as the seed writes
/// them (`table column TYPE`).
const SEED: &str = "
tenants tenant_id UUID
tenants tenant_label TEXT
tenants tenant_state_code TEXT
tenants created_utc TIMESTAMPTZ
users user_id UUID
users tenant_id UUID
users email_addr TEXT
users phone_e164 TEXT
users display_label TEXT
users user_state_code TEXT
users created_utc TIMESTAMPTZ
users updated_utc TIMESTAMPTZ
user_identities ident_id UUID
user_identities user_id UUID
user_identities ident_provider_code TEXT
user_identities provider_subject_key TEXT
user_identities email_verified_flag BOOLEAN
user_identities phone_verified_flag BOOLEAN
user_identities password_hash_text TEXT
user_identities created_utc TIMESTAMPTZ
refresh_sessions session_id UUID
refresh_sessions user_id UUID
refresh_sessions tenant_id UUID
refresh_sessions refresh_token_hash_text TEXT
refresh_sessions client_user_agent_text TEXT
refresh_sessions client_ip_text TEXT
refresh_sessions expiry_utc TIMESTAMPTZ
refresh_sessions revoked_utc TIMESTAMPTZ
refresh_sessions created_utc TIMESTAMPTZ
otp_codes otp_id UUID
otp_codes tenant_id UUID
otp_codes destination_text TEXT
otp_codes channel_code TEXT
otp_codes purpose_code TEXT
otp_codes code_hash_text TEXT
otp_codes expiry_utc TIMESTAMPTZ
otp_codes consumed_utc TIMESTAMPTZ
otp_codes attempt_count INT
otp_codes attempt_max INT
otp_codes created_utc TIMESTAMPTZ
org_nodes org_node_id UUID
org_nodes tenant_id UUID
org_nodes node_type_code TEXT
org_nodes node_label TEXT
org_nodes parent_org_node_id UUID
org_nodes active_flag BOOLEAN
org_nodes created_utc TIMESTAMPTZ
org_node_paths tenant_id UUID
org_node_paths ancestor_org_node_id UUID
org_node_paths descendant_org_node_id UUID
org_node_paths depth_val INT
roles role_id UUID
roles tenant_id UUID
roles role_label TEXT
roles created_utc TIMESTAMPTZ
capabilities cap_id UUID
capabilities cap_key TEXT
capabilities created_utc TIMESTAMPTZ
role_capabilities role_id UUID
role_capabilities cap_id UUID
org_assignments assignment_id UUID
org_assignments tenant_id UUID
org_assignments user_id UUID
org_assignments org_node_id UUID
org_assignments role_id UUID
org_assignments start_utc TIMESTAMPTZ
org_assignments end_utc TIMESTAMPTZ
visibility_grants grant_id UUID
visibility_grants tenant_id UUID
visibility_grants user_id UUID
visibility_grants org_node_id UUID
visibility_grants access_scope_code TEXT
visibility_grants start_utc TIMESTAMPTZ
visibility_grants end_utc TIMESTAMPTZ
invitations invite_id UUID
invitations tenant_id UUID
invitations email_addr TEXT
invitations phone_e164 TEXT
invitations invited_by_user_id UUID
invitations target_role_id UUID
invitations target_org_node_id UUID
invitations invite_token_hash_text TEXT
invitations expiry_utc TIMESTAMPTZ
invitations accepted_utc TIMESTAMPTZ
invitations created_utc TIMESTAMPTZ
audit_events audit_id UUID
audit_events tenant_id UUID
audit_events actor_user_id UUID
audit_events action_key TEXT
audit_events entity_kind_code TEXT
audit_events entity_id UUID
audit_events occurred_utc TIMESTAMPTZ
audit_events payload_json JSONB
services svc_id UUID
services tenant_id UUID
services svc_key TEXT
services svc_label TEXT
services svc_state_code TEXT
services created_utc TIMESTAMPTZ
service_secrets secret_id UUID
service_secrets svc_id UUID
service_secrets secret_hash_text TEXT
service_secrets created_utc TIMESTAMPTZ
service_secrets revoked_utc TIMESTAMPTZ
service_permissions svc_id UUID
service_permissions perm_key TEXT
service_sessions svc_session_id UUID
service_sessions svc_id UUID
service_sessions token_hash_text TEXT
service_sessions expiry_utc TIMESTAMPTZ
service_sessions revoked_utc TIMESTAMPTZ
service_sessions created_utc TIMESTAMPTZ
";

#[derive(diesel::QueryableByName)]
struct Column {
    #[diesel(sql_type = diesel::sql_types::Text)]
    found: String,
}

#[tokio::test(flavor = "multi_thread")]
async fn every_table_and_column_of_the_seed_exists_with_its_type() {
    let test = TestDb::new().await;
    let mut conn = AsyncPgConnection::establish(test.migration_url.as_str())
        .await
        .unwrap();
    let present: Vec<String> = diesel::sql_query(
        "SELECT table_name || ' ' || column_name || ' ' || udt_name AS found
           FROM information_schema.columns WHERE table_schema IN ('auth', 'audit')",
    )
    .load::<Column>(&mut conn)
    .await
    .unwrap()
    .into_iter()
    .map(|c| c.found)
    .collect();
    let missing: Vec<&str> = SEED
        .lines()
        .filter(|line| !line.is_empty())
        .filter(|line| {
            let mut parts = line.split(' ');
            let (table, column, seed_type) = (
                parts.next().unwrap(),
                parts.next().unwrap(),
                parts.next().unwrap(),
            );
            let udt = match seed_type {
                "UUID" => "uuid",
                "TEXT" => "text",
                "TIMESTAMPTZ" => "timestamptz",
                "BOOLEAN" => "bool",
                "INT" => "int4",
                "JSONB" => "jsonb",
                other => panic!("no PostgreSQL name for the seed's {other}"),
            };
            !present.contains(&format!("{table} {column} {udt}"))
        })
        .collect();
    assert!(missing.is_empty(), "not as the seed has them: {missing:#?}");
}

/// What other teams run, as the application role in a tenant's context:
/// the seed's own names answer.
#[tokio::test(flavor = "multi_thread")]
async fn the_application_role_reads_the_seeds_names() {
    let test = TestDb::new().await;
    let db = test.db();
    let world = populate(&db).await;
    let tenant = RlsContext::tenant(world.tenant);
    for (query, rows) in [
        (
            "(SELECT org_node_id, node_label, parent_org_node_id FROM auth.org_nodes) q",
            2,
        ),
        ("(SELECT cap_key FROM auth.capabilities) q", 1),
        ("(SELECT email_addr FROM auth.users) q", 1),
        (
            "(SELECT ident_provider_code, email_verified_flag FROM auth.user_identities) q",
            1,
        ),
        (
            "(SELECT assignment_id, start_utc, end_utc FROM auth.org_assignments) q",
            1,
        ),
    ] {
        let found = count(&db, &tenant, query).await.unwrap();
        assert!(found >= rows, "{query}: {found} rows");
    }
}

/// The seed's enumerations, each CHECKed to exactly its values (and the
/// product's additions, each listed in the book's schema reference).
const SEED_CODES: &[(&str, &str, &[&str])] = &[
    ("tenants", "tenant_state_code", &["active", "suspended"]),
    ("users", "user_state_code", &["active", "inactive"]),
    (
        "user_identities",
        "ident_provider_code",
        // `oidc`: issuers other than Google (migration 000013).
        &["password", "google", "oidc"],
    ),
    ("otp_codes", "channel_code", &["email", "sms", "whatsapp"]),
    (
        "otp_codes",
        "purpose_code",
        &["login", "verify_email", "verify_phone", "reset_password"],
    ),
    (
        "visibility_grants",
        "access_scope_code",
        &["read", "analyze"],
    ),
    ("services", "svc_state_code", &["active", "disabled"]),
];

#[tokio::test(flavor = "multi_thread")]
async fn the_seeds_codes_are_checked_to_its_values() {
    let test = TestDb::new().await;
    let mut conn = AsyncPgConnection::establish(test.migration_url.as_str())
        .await
        .unwrap();
    for (table, column, values) in SEED_CODES {
        // The CHECK on this column alone, as PostgreSQL prints it:
        // `CHECK ((col = ANY (ARRAY['a'::text, 'b'::text])))`.
        let checks: Vec<String> = diesel::sql_query(format!(
            "SELECT pg_get_constraintdef(c.oid) AS found FROM pg_constraint c \
               JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = ANY (c.conkey) \
              WHERE c.contype = 'c' AND c.conrelid = 'auth.{table}'::regclass \
                AND a.attname = '{column}' AND cardinality(c.conkey) = 1"
        ))
        .load::<Column>(&mut conn)
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.found)
        .collect();
        let allowed: Vec<String> = checks
            .iter()
            .flat_map(|check| check.split('\'').skip(1).step_by(2).map(str::to_owned))
            .collect();
        let mut expected: Vec<String> = values.iter().map(|v| (*v).to_owned()).collect();
        let mut allowed = allowed;
        expected.sort();
        allowed.sort();
        assert_eq!(allowed, expected, "{table}.{column}: {checks:?}");
    }
}

/// Columns Portcullis added to the seed's tables that an `INSERT` written
/// against the seed's columns must still give: the schema reference
/// (`docs/reference/schema.md`) names them as required. Every other addition has a default or is
/// nullable.
const REQUIRED_BEYOND_THE_SEED: &[&str] = &["roles role_key", "tenants tenant_slug"];

#[tokio::test(flavor = "multi_thread")]
async fn a_column_added_to_a_seed_table_has_a_default_or_is_documented_as_required() {
    let test = TestDb::new().await;
    let mut conn = AsyncPgConnection::establish(test.migration_url.as_str())
        .await
        .unwrap();
    let seed: Vec<(&str, &str)> = SEED
        .lines()
        .filter(|line| !line.is_empty())
        .map(|line| {
            let mut parts = line.split(' ');
            (parts.next().unwrap(), parts.next().unwrap())
        })
        .collect();
    let demanding: Vec<String> = diesel::sql_query(
        "SELECT table_name || ' ' || column_name AS found FROM information_schema.columns \
          WHERE table_schema = 'auth' AND is_nullable = 'NO' AND column_default IS NULL \
          ORDER BY 1",
    )
    .load::<Column>(&mut conn)
    .await
    .unwrap()
    .into_iter()
    .map(|c| c.found)
    .filter(|found| {
        let (table, column) = found.split_once(' ').unwrap();
        seed.iter().any(|(t, _)| *t == table) && !seed.contains(&(table, column))
    })
    .collect();
    assert_eq!(demanding, REQUIRED_BEYOND_THE_SEED);
    let schema_page = include_str!("../../../docs/reference/schema.md");
    for required in REQUIRED_BEYOND_THE_SEED {
        let column = required.replace(' ', ".");
        assert!(
            schema_page.contains(&format!("`{column}`")),
            "{column} is not documented"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_role_capability_written_with_the_seeds_columns_takes_the_transactions_tenant() {
    let test = TestDb::new().await;
    let db = test.db();
    let world = populate(&db).await;
    let key = format!("test.seed_{}", &world.tenant.simple().to_string()[..12]);
    crate::support::fixtures::execute(
        &db,
        &RlsContext::operator(),
        &format!("INSERT INTO auth.capabilities (cap_key) VALUES ('{key}')"),
    )
    .await
    .unwrap();
    let tenant = RlsContext::tenant(world.tenant);
    crate::support::fixtures::execute(
        &db,
        &tenant,
        &format!(
            "INSERT INTO auth.role_capabilities (role_id, cap_id) \
             SELECT '{}', cap_id FROM auth.capabilities WHERE cap_key = '{key}'",
            world.role
        ),
    )
    .await
    .unwrap();
    let written = count(
        &db,
        &tenant,
        &format!(
            "(SELECT 1 FROM auth.role_capabilities rc JOIN auth.capabilities c USING (cap_id) \
              WHERE c.cap_key = '{key}' AND rc.tenant_id = '{}') q",
            world.tenant
        ),
    )
    .await
    .unwrap();
    assert_eq!(written, 1);
}
