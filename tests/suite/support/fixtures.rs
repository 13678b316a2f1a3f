//! Data fixtures, written through the application role's scoped door.

use diesel::sql_types::BigInt;
use diesel_async::RunQueryDsl;
use portcullis::db::{Db, DbError, RlsContext};
use scoped_futures::ScopedFutureExt;
use uuid::Uuid;

/// One tenant with a row in every table.
#[derive(Clone, Debug)]
pub struct TenantWorld {
    pub tenant: Uuid,
    pub user: Uuid,
    pub root: Uuid,
    pub child: Uuid,
    pub role: Uuid,
    pub capability: Uuid,
    pub service: Uuid,
    pub service_session: Uuid,
}

impl TenantWorld {
    /// Everything this tenant's own requests could carry.
    pub fn context(&self) -> RlsContext {
        RlsContext::tenant(self.tenant)
            .with_user(self.user)
            .with_service(self.service)
    }
}

pub async fn populate(db: &Db) -> TenantWorld {
    let w = TenantWorld {
        tenant: Uuid::new_v4(),
        user: Uuid::new_v4(),
        root: Uuid::new_v4(),
        child: Uuid::new_v4(),
        role: Uuid::new_v4(),
        capability: Uuid::new_v4(),
        service: Uuid::new_v4(),
        service_session: Uuid::new_v4(),
    };
    let short = &w.tenant.simple().to_string()[..12];
    let sql = format!(
        r#"
        INSERT INTO auth.tenants (id, slug, name) VALUES ('{t}', 't-{short}', 'Tenant {short}');
        INSERT INTO auth.users (id, tenant_id, display_name) VALUES ('{u}', '{t}', 'User');
        INSERT INTO auth.user_identities (tenant_id, user_id, kind, login) VALUES ('{t}', '{u}', 'email', 'u-{short}@example.test');
        INSERT INTO auth.refresh_sessions (tenant_id, user_id, token_hash, expires_at) VALUES ('{t}', '{u}', '\x01', now() + interval '1 day');
        INSERT INTO auth.otp_codes (id, tenant_id, user_id, destination, channel, purpose, code_hash, expires_at)
            VALUES ('{otp}', '{t}', '{u}', 'u-{short}@example.test', 'email', 'login', '\x02', now() + interval '10 minutes');
        INSERT INTO auth.otp_outbox (tenant_id, otp_id, channel, destination, purpose, code, expires_at)
            VALUES ('{t}', '{otp}', 'email', 'u-{short}@example.test', 'login', '123456', now() + interval '10 minutes');
        INSERT INTO auth.login_throttles (tenant_id, key, failures) VALUES ('{t}', 'addr:192.0.2.1', 1);
        INSERT INTO auth.org_nodes (id, tenant_id, parent_id, node_type, label) VALUES
            ('{root}', '{t}', NULL, 'company', 'Root'),
            ('{child}', '{t}', '{root}', 'site', 'Child');
        INSERT INTO auth.capabilities (id, key) VALUES ('{cap}', 'test.cap_{short}');
        INSERT INTO auth.roles (id, tenant_id, key, label) VALUES ('{role}', '{t}', 'role', 'Role');
        INSERT INTO auth.role_capabilities (tenant_id, role_id, capability_id) VALUES ('{t}', '{role}', '{cap}');
        INSERT INTO auth.org_assignments (tenant_id, user_id, role_id, org_node_id) VALUES ('{t}', '{u}', '{role}', '{root}');
        INSERT INTO auth.visibility_grants (tenant_id, user_id, org_node_id, scope) VALUES ('{t}', '{u}', '{child}', 'read');
        INSERT INTO auth.invitations (tenant_id, destination_kind, destination, role_id, org_node_id, token_hash, expires_at)
            VALUES ('{t}', 'email', 'new-{short}@example.test', '{role}', '{child}', '\x03', now() + interval '1 day');
        INSERT INTO auth.services (id, tenant_id, key, label) VALUES ('{svc}', '{t}', 'svc-{short}', 'Service');
        INSERT INTO auth.service_secrets (service_id, secret_hash) VALUES ('{svc}', '\x04');
        INSERT INTO auth.service_permissions (service_id, permission) VALUES ('{svc}', 'authz.check');
        INSERT INTO auth.service_sessions (id, service_id, token_hash, expires_at) VALUES ('{sess}', '{svc}', '\x05', now() + interval '10 minutes');
        INSERT INTO auth.token_revocations (session_id, token_kind, expires_at) VALUES ('{sess}', 'service', now() + interval '10 minutes');
        INSERT INTO audit.audit_events (tenant_id, actor_kind, action, entity_kind) VALUES ('{t}', 'system', 'test.populated', 'tenant');
        INSERT INTO auth.idempotency_keys (tenant_id, caller, operation, key, request_hash)
            VALUES ('{t}', 'service:{svc}', 'create_org_node', 'k-{short}', decode(repeat('ab', 32), 'hex'));
        INSERT INTO auth.global_idempotency_keys (caller, operation, key, request_hash)
            VALUES ('service:{svc}', 'create_tenant', 'k-{short}', decode(repeat('ab', 32), 'hex'));
        "#,
        t = w.tenant,
        u = w.user,
        root = w.root,
        child = w.child,
        cap = w.capability,
        role = w.role,
        svc = w.service,
        sess = w.service_session,
        otp = Uuid::new_v4(),
    );
    db.write_script(&RlsContext::operator().with_tenant(w.tenant), &sql)
        .await
        .expect("populating a tenant");
    w
}

#[derive(diesel::QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

/// `SELECT count(*) FROM {from_where}` in a read scope with `ctx`.
pub async fn count(db: &Db, ctx: &RlsContext, from_where: &str) -> Result<i64, DbError> {
    let sql = format!("SELECT count(*) AS n FROM {from_where}");
    db.read(ctx, |conn| {
        async move {
            let row: Count = diesel::sql_query(sql).get_result(conn).await?;
            Ok::<_, DbError>(row.n)
        }
        .scope_boxed()
    })
    .await
}

/// Runs one statement in a write scope with `ctx`; returns the rows affected.
pub async fn execute(db: &Db, ctx: &RlsContext, sql: &str) -> Result<usize, DbError> {
    let sql = sql.to_owned();
    db.write(ctx, |conn| {
        async move { Ok::<_, DbError>(diesel::sql_query(sql).execute(conn).await?) }.scope_boxed()
    })
    .await
}

/// Whether the database refused: an RLS policy or a missing privilege.
pub fn refused(result: &Result<usize, DbError>) -> bool {
    match result {
        Err(DbError::Query(error)) => {
            let message = error.to_string();
            message.contains("row-level security") || message.contains("permission denied")
        }
        _ => false,
    }
}

/// Runs several statements (simple protocol) in one write scope with `ctx`.
pub async fn batch(db: &Db, ctx: &RlsContext, sql: &str) -> Result<(), DbError> {
    db.write_script(ctx, sql).await
}
