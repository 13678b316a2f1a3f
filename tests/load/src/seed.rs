//! `portcullis-load seed`: builds a profile's data set through the real
//! schema, its triggers and row-level security, with set-based
//! `INSERT … SELECT generate_series` statements (COPY FROM is refused on
//! tables with row-level security, and the application role must not
//! bypass it). Deterministic: the same profile always yields the same ids.

use std::path::Path;

use secrecy::{ExposeSecret, SecretString};

use super::dataset::{BENCH_PASSWORD, BENCH_SERVICE_KEY, Profile, Shape, tenant_id};
use super::{filtered, forward_auth, manifest};
use portcullis::authn::Passwords;
use portcullis::db::{Db, DbError, RlsContext};
use portcullis::service_accounts::names::{Permission, ServiceKey};
use portcullis::service_accounts::{self, NewService, ServiceError};

#[derive(Debug, thiserror::Error)]
pub enum SeedError {
    #[error(transparent)]
    Db(#[from] DbError),
    #[error(transparent)]
    Service(#[from] ServiceError),
    #[error(transparent)]
    Password(#[from] portcullis::authn::PasswordError),
}

/// Provisions the bench database of `profile` as a dev service of its own,
/// migrates it, seeds it, and writes its manifest under `dir`.
pub async fn seed_profile(
    admin_url: Option<&str>,
    profile: Profile,
    dir: &Path,
) -> anyhow::Result<()> {
    use portcullis::ops::{admin, cluster, migrate, provision};
    let server = cluster::locate(admin_url, Path::new("target/portcullis-pg")).await?;
    let names = manifest::names(profile)?;
    let passwords = manifest::passwords()?;
    let dev = provision::Confirmation::default();
    provision::provision(
        server.url(),
        provision::Environment::Dev,
        &names,
        &passwords,
        dev,
    )
    .await?;
    let (migration_url, app_url) = manifest::urls(server.url(), profile)?;
    migrate::run(&migration_url).await?;
    let started = std::time::Instant::now();
    // Seeding a large profile runs single statements for minutes.
    let db = Db::new(
        app_url.as_str(),
        &portcullis::db::PoolSettings {
            statement_timeout: std::time::Duration::from_secs(3600),
            ..portcullis::db::PoolSettings::default()
        },
    )?;
    let hasher = Passwords::new(
        portcullis::authn::HashCost::OWASP,
        1,
        std::time::Duration::from_secs(30),
    )?;
    let secret = seed(&db, &hasher, profile).await?;
    // The application role may not ANALYZE; the owner may.
    admin::AdminConnection::connect(&migration_url)
        .await?
        .execute("analysing the bench data", "VACUUM ANALYZE")
        .await?;
    filtered::seed(server.url(), profile).await?;
    forward_auth::seed_catalogue(
        &mut filtered::superuser(server.url(), profile).await?,
        profile.shape(),
    )
    .await?;
    let mut shown = app_url.clone();
    let _ = shown.set_password(None);
    let path = manifest::write(
        dir,
        &manifest::Manifest {
            profile,
            app_url: shown.to_string(),
            service_secret: secret.expose_secret().to_owned(),
        },
    )?;
    println!(
        "seeded {} in {:.1?}; manifest {}",
        profile.as_str(),
        started.elapsed(),
        path.display()
    );
    Ok(())
}

/// Seeds `profile` (idempotently: a tenant already seeded is skipped) and
/// returns a fresh secret of the bench service account.
pub async fn seed(
    db: &Db,
    passwords: &Passwords,
    profile: Profile,
) -> Result<SecretString, SeedError> {
    let shape = profile.shape();
    let catalogue = format!(
        "INSERT INTO auth.capabilities (cap_key, cap_description) \
         SELECT 'bench.cap_' || c, 'bench capability' FROM generate_series(0, {}) c ON CONFLICT DO NOTHING",
        shape.capabilities - 1
    );
    db.write_script(&RlsContext::operator(), &catalogue).await?;
    let password_hash = passwords.hash(&SecretString::from(BENCH_PASSWORD)).await?;
    for tenant in 0..shape.tenants {
        let started = std::time::Instant::now();
        let sql = tenant_sql(shape, tenant, &password_hash);
        db.write_script(&RlsContext::operator().with_tenant(tenant_id(tenant)), &sql)
            .await?;
        tracing::info!(tenant, elapsed = ?started.elapsed(), "bench tenant seeded");
    }
    let key = ServiceKey::parse(BENCH_SERVICE_KEY)
        .map_err(|e| ServiceError::UnknownService(e.to_string()))?;
    let granted = [
        "authz.check",
        "authz.list_visible",
        "authz.list_users",
        "tokens.verify",
    ];
    let permissions = granted
        .iter()
        .filter_map(|p| Permission::parse(p).ok())
        .collect();
    let created = service_accounts::create(
        db,
        &NewService {
            key: key.clone(),
            label: "Benchmark load generator".into(),
            tenant_id: None,
            permissions,
        },
    )
    .await;
    match created {
        Ok(_) | Err(ServiceError::DuplicateKey(_)) => {}
        Err(other) => return Err(other.into()),
    }
    // A data set seeded by an earlier release lacks the newer permissions.
    let ensure = format!(
        "INSERT INTO auth.service_permissions (svc_id, perm_key)
         SELECT s.svc_id, p FROM auth.services s, unnest(ARRAY['{}']) p
          WHERE s.svc_key = '{BENCH_SERVICE_KEY}'
         ON CONFLICT DO NOTHING",
        granted.join("','")
    );
    db.write_script(&RlsContext::operator(), &ensure).await?;
    let (_, secret) = service_accounts::issue_secret(db, &key, true).await?;
    Ok(secret)
}

/// Everything of one tenant, in one transaction. Nodes are inserted parents
/// first (a node's parent has index `(i - 1) / 10`), so the closure triggers
/// build `org_node_paths` row by row exactly as for any other insert.
fn tenant_sql(shape: Shape, tenant: u32, password_hash: &str) -> String {
    let t = tenant;
    let nodes = shape.nodes_per_tenant;
    let users = shape.users_per_tenant;
    let roles = shape.roles_per_tenant;
    let per_role = shape.capabilities_per_role;
    let capabilities = shape.capabilities;
    let password_users = shape.password_users_per_tenant;
    let node = |expr: &str| format!("md5('bench/node/{t}/' || ({expr}))::uuid");
    let user = |expr: &str| format!("md5('bench/user/{t}/' || ({expr}))::uuid");
    let role = |expr: &str| format!("md5('bench/role/{t}/' || ({expr}))::uuid");
    let tenant_uuid = format!("md5('bench/tenant/{t}')::uuid");
    let hash = password_hash.replace('\'', "''");
    format!(
        r#"
INSERT INTO auth.tenants (tenant_id, tenant_slug, tenant_label)
SELECT {tenant_uuid}, 'bench-{t}', 'Bench tenant {t}'
WHERE NOT EXISTS (SELECT 1 FROM auth.tenants WHERE tenant_id = {tenant_uuid});

INSERT INTO auth.org_nodes (org_node_id, tenant_id, parent_org_node_id, node_type_code, node_label)
SELECT {node_i}, {tenant_uuid},
       CASE WHEN i = 0 THEN NULL ELSE {node_parent} END,
       CASE WHEN i = 0 THEN 'company' WHEN i < 11 THEN 'region' WHEN i < 111 THEN 'area'
            WHEN i < 1111 THEN 'site' ELSE 'team' END,
       'node ' || i
  FROM generate_series(0, {last_node}) AS i
 WHERE NOT EXISTS (SELECT 1 FROM auth.org_nodes WHERE tenant_id = {tenant_uuid})
 ORDER BY i;

-- The first users log in with a password (the login scenario).
INSERT INTO auth.users (user_id, tenant_id, display_label, email_addr)
SELECT {user_i}, {tenant_uuid}, 'user ' || i,
       CASE WHEN i <= {last_password_user} THEN 'bench-' || i || '@t{t}.example' END
  FROM generate_series(0, {last_user}) AS i
ON CONFLICT DO NOTHING;

INSERT INTO auth.user_identities (tenant_id, user_id, ident_provider_code, password_hash_text, email_verified_flag)
SELECT {tenant_uuid}, {user_i}, 'password', '{hash}', true
  FROM generate_series(0, {last_password_user}) AS i
ON CONFLICT DO NOTHING;

INSERT INTO auth.roles (role_id, tenant_id, role_key, role_label)
SELECT {role_i}, {tenant_uuid}, 'role_' || i, 'Role ' || i
  FROM generate_series(0, {last_role}) AS i
ON CONFLICT DO NOTHING;

INSERT INTO auth.role_capabilities (tenant_id, role_id, cap_id)
SELECT {tenant_uuid}, {role_r}, c.cap_id
  FROM generate_series(0, {last_role}) AS r
 CROSS JOIN generate_series(0, {last_per_role}) AS j
  JOIN auth.capabilities c ON c.cap_key = 'bench.cap_' || ((r * 7 + j * 13) % {capabilities})
ON CONFLICT DO NOTHING;

-- Two assignments per user at pseudo-random nodes; one in ten is expired.
-- User 0 holds role 0 at the root, for listings of a whole tenant.
INSERT INTO auth.org_assignments (assignment_id, tenant_id, user_id, role_id, org_node_id, start_utc, end_utc)
SELECT md5('bench/assignment/{t}/' || u || '/' || k)::uuid, {tenant_uuid}, {user_u},
       {role_assigned},
       CASE WHEN u = 0 AND k = 0 THEN {root} ELSE {node_assigned} END,
       CASE WHEN (u + k) % 10 = 1 THEN now() - interval '60 days' ELSE now() - interval '30 days' END,
       CASE WHEN (u + k) % 10 = 1 THEN now() - interval '30 days' END
  FROM generate_series(0, {last_user}) AS u
 CROSS JOIN generate_series(0, 1) AS k
ON CONFLICT DO NOTHING;

-- An analyze grant for every fifth user.
INSERT INTO auth.visibility_grants (grant_id, tenant_id, user_id, org_node_id, access_scope_code, start_utc)
SELECT md5('bench/grant/{t}/' || u)::uuid, {tenant_uuid}, {user_u}, {node_granted}, 'analyze', now() - interval '30 days'
  FROM generate_series(0, {last_user}, 5) AS u
ON CONFLICT DO NOTHING;
"#,
        node_i = node("i"),
        node_parent = node("(i - 1) / 10"),
        last_node = nodes - 1,
        user_i = user("i"),
        user_u = user("u"),
        last_user = users - 1,
        last_password_user = password_users.saturating_sub(1),
        role_i = role("i"),
        role_r = role("r"),
        last_role = roles - 1,
        last_per_role = per_role - 1,
        role_assigned = role(&format!("(u + k * 7) % {roles}")),
        root = node("0"),
        node_assigned = node(&format!("(u::bigint * 7919 + k * 104729 + 1) % {nodes}")),
        node_granted = node(&format!("(u::bigint * 31) % {nodes}")),
    )
}
