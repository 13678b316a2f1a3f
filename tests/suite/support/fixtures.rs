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
    /// The capability the user's role holds (one per tenant).
    pub fn capability(&self) -> String {
        format!("test.cap_{}", &self.tenant.simple().to_string()[..12])
    }

    /// The user's check of that capability at the child node (held
    /// through the assignment at the root).
    pub fn check_at_child(&self) -> portcullis::proto::v1::CheckCapabilityRequest {
        use portcullis::proto::v1::{CheckCapabilityRequest, Subject, UserRef, subject};
        CheckCapabilityRequest {
            subject: Some(Subject {
                kind: Some(subject::Kind::User(UserRef {
                    tenant_id: self.tenant.to_string(),
                    user_id: self.user.to_string(),
                })),
            }),
            capability: self.capability(),
            org_node_id: self.child.to_string(),
            explain: false,
        }
    }

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
        INSERT INTO auth.tenants (tenant_id, tenant_slug, tenant_label) VALUES ('{t}', 't-{short}', 'Tenant {short}');
        INSERT INTO auth.users (user_id, tenant_id, display_label, email_addr) VALUES ('{u}', '{t}', 'User', 'u-{short}@example.test');
        INSERT INTO auth.user_identities (tenant_id, user_id, ident_provider_code) VALUES ('{t}', '{u}', 'password');
        INSERT INTO auth.refresh_sessions (tenant_id, user_id, refresh_token_hash_text, expiry_utc) VALUES ('{t}', '{u}', repeat('1', 64), now() + interval '1 day');
        INSERT INTO auth.otp_codes (otp_id, tenant_id, user_id, destination_text, channel_code, purpose_code, code_hash_text, expiry_utc)
            VALUES ('{otp}', '{t}', '{u}', 'u-{short}@example.test', 'email', 'login', repeat('2', 64), now() + interval '10 minutes');
        INSERT INTO auth.otp_outbox (tenant_id, otp_id, channel, destination, purpose, code, expires_at)
            VALUES ('{t}', '{otp}', 'email', 'u-{short}@example.test', 'login', '123456', now() + interval '10 minutes');
        INSERT INTO auth.login_throttles (tenant_id, key, failures) VALUES ('{t}', 'addr:192.0.2.1', 1);
        INSERT INTO auth.org_nodes (org_node_id, tenant_id, parent_org_node_id, node_type_code, node_label) VALUES
            ('{root}', '{t}', NULL, 'company', 'Root'),
            ('{child}', '{t}', '{root}', 'site', 'Child');
        INSERT INTO auth.capabilities (cap_id, cap_key) VALUES ('{cap}', 'test.cap_{short}');
        INSERT INTO auth.roles (role_id, tenant_id, role_key, role_label) VALUES ('{role}', '{t}', 'role', 'Role');
        INSERT INTO auth.role_capabilities (tenant_id, role_id, cap_id) VALUES ('{t}', '{role}', '{cap}');
        INSERT INTO auth.org_assignments (tenant_id, user_id, role_id, org_node_id) VALUES ('{t}', '{u}', '{role}', '{root}');
        INSERT INTO auth.visibility_grants (tenant_id, user_id, org_node_id, access_scope_code) VALUES ('{t}', '{u}', '{child}', 'read');
        INSERT INTO auth.invitations (tenant_id, email_addr, target_role_id, target_org_node_id, invite_token_hash_text, expiry_utc)
            VALUES ('{t}', 'new-{short}@example.test', '{role}', '{child}', repeat('3', 64), now() + interval '1 day');
        INSERT INTO auth.services (svc_id, tenant_id, svc_key, svc_label) VALUES ('{svc}', '{t}', 'svc-{short}', 'Service');
        INSERT INTO auth.service_secrets (svc_id, secret_hash_text) VALUES ('{svc}', repeat('4', 64));
        INSERT INTO auth.service_permissions (svc_id, perm_key) VALUES ('{svc}', 'authz.check');
        INSERT INTO auth.service_sessions (svc_session_id, svc_id, token_hash_text, expiry_utc) VALUES ('{sess}', '{svc}', repeat('5', 64), now() + interval '10 minutes');
        INSERT INTO auth.token_revocations (session_id, token_kind, expires_at) VALUES ('{sess}', 'service', now() + interval '10 minutes');
        INSERT INTO audit.audit_events (tenant_id, actor_kind_code, action_key, entity_kind_code) VALUES ('{t}', 'system', 'test.populated', 'tenant');
        INSERT INTO auth.idempotency_keys (tenant_id, caller, operation, key, request_hash)
            VALUES ('{t}', 'service:{svc}', 'create_org_node', 'k-{short}', decode(repeat('ab', 32), 'hex'));
        INSERT INTO auth.global_idempotency_keys (caller, operation, key, request_hash)
            VALUES ('service:{svc}', 'create_tenant', 'k-{short}', decode(repeat('ab', 32), 'hex'));
        INSERT INTO auth.id_token_uses (token_sha256, tenant_id, expiry_utc)
            VALUES (sha256(convert_to('{t}', 'UTF8')), '{t}', now() + interval '10 minutes');
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

#[derive(diesel::QueryableByName)]
struct AssignmentId {
    #[diesel(sql_type = diesel::sql_types::Uuid)]
    assignment_id: Uuid,
}

/// The id of the world's user's (first) assignment, read as the superuser.
pub async fn assignment_of(test: &crate::support::TestDb, world: &TenantWorld) -> Uuid {
    let mut conn = test.superuser().await;
    diesel::sql_query("SELECT assignment_id FROM auth.org_assignments WHERE user_id = $1")
        .bind::<diesel::sql_types::Uuid, _>(world.user)
        .get_result::<AssignmentId>(&mut conn)
        .await
        .unwrap()
        .assignment_id
}
