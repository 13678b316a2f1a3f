//! A small organisation to ask questions about.
//!
//! ```text
//! root
//! ├── a            u: rx here (in force)
//! │   └── a1
//! │       └── a1x
//! ├── b            u: ry here from tomorrow; w: read grant here
//! └── c (inactive)
//!     └── c1
//! ```
//! u also held ry at root until yesterday; v (inactive) holds rx at root.
//! rx grants cap.x, ry grants cap.y; cap.z exists but no role grants it.

use portcullis::db::{Db, RlsContext};
use uuid::Uuid;

use super::fixtures::{batch, execute};

pub struct Org {
    pub tenant: Uuid,
    pub root: Uuid,
    pub a: Uuid,
    pub a1: Uuid,
    pub a1x: Uuid,
    pub b: Uuid,
    pub c: Uuid,
    pub c1: Uuid,
    pub u: Uuid,
    pub v: Uuid,
    pub w: Uuid,
    pub rx: Uuid,
    pub ry: Uuid,
    pub u_rx_at_a: Uuid,
    pub w_read_at_b: Uuid,
}

impl Org {
    pub async fn create(db: &Db) -> Self {
        let id = Uuid::new_v4;
        let org = Self {
            tenant: id(),
            root: id(),
            a: id(),
            a1: id(),
            a1x: id(),
            b: id(),
            c: id(),
            c1: id(),
            u: id(),
            v: id(),
            w: id(),
            rx: id(),
            ry: id(),
            u_rx_at_a: id(),
            w_read_at_b: id(),
        };
        let Org {
            tenant: t,
            root,
            a,
            a1,
            a1x,
            b,
            c,
            c1,
            u,
            v,
            w,
            rx,
            ry,
            u_rx_at_a,
            w_read_at_b,
        } = org;
        let short = &t.simple().to_string()[..12];
        execute(
            db,
            &RlsContext::operator(),
            "INSERT INTO auth.capabilities (cap_key) VALUES ('cap.x'), ('cap.y'), ('cap.z') ON CONFLICT DO NOTHING",
        )
        .await
        .unwrap();
        let sql = format!(
            r#"
            INSERT INTO auth.tenants (tenant_id, tenant_slug, tenant_label) VALUES ('{t}', 'org-{short}', 'Org');
            INSERT INTO auth.org_nodes (org_node_id, tenant_id, parent_org_node_id, node_type_code, node_label, active_flag) VALUES
                ('{root}', '{t}', NULL, 'company', 'root', true),
                ('{a}', '{t}', '{root}', 'region', 'a', true),
                ('{a1}', '{t}', '{a}', 'site', 'a1', true),
                ('{a1x}', '{t}', '{a1}', 'team', 'a1x', true),
                ('{b}', '{t}', '{root}', 'region', 'b', true),
                ('{c}', '{t}', '{root}', 'region', 'c', false),
                ('{c1}', '{t}', '{c}', 'site', 'c1', true);
            INSERT INTO auth.users (user_id, tenant_id, display_label, user_state_code) VALUES
                ('{u}', '{t}', 'u', 'active'), ('{v}', '{t}', 'v', 'inactive'), ('{w}', '{t}', 'w', 'active');
            INSERT INTO auth.roles (role_id, tenant_id, role_key, role_label) VALUES
                ('{rx}', '{t}', 'rx', 'Role X'), ('{ry}', '{t}', 'ry', 'Role Y');
            INSERT INTO auth.role_capabilities (tenant_id, role_id, cap_id)
                SELECT '{t}'::uuid, '{rx}'::uuid, cap_id FROM auth.capabilities WHERE cap_key = 'cap.x'
                UNION ALL SELECT '{t}'::uuid, '{ry}'::uuid, cap_id FROM auth.capabilities WHERE cap_key = 'cap.y';
            INSERT INTO auth.org_assignments (assignment_id, tenant_id, user_id, role_id, org_node_id, start_utc, end_utc) VALUES
                ('{u_rx_at_a}', '{t}', '{u}', '{rx}', '{a}', now() - interval '1 day', NULL),
                (gen_random_uuid(), '{t}', '{u}', '{ry}', '{b}', now() + interval '1 day', NULL),
                (gen_random_uuid(), '{t}', '{u}', '{ry}', '{root}', now() - interval '10 days', now() - interval '1 day'),
                (gen_random_uuid(), '{t}', '{v}', '{rx}', '{root}', now() - interval '1 day', NULL);
            INSERT INTO auth.visibility_grants (grant_id, tenant_id, user_id, org_node_id, access_scope_code) VALUES
                ('{w_read_at_b}', '{t}', '{w}', '{b}', 'read');
            "#
        );
        batch(db, &RlsContext::operator().with_tenant(t), &sql)
            .await
            .unwrap();
        org
    }

    pub fn ctx(&self) -> RlsContext {
        RlsContext::tenant(self.tenant)
    }

    /// Gives `user` the role `role` at `node`, in force since an hour ago.
    pub async fn assign(&self, db: &Db, user: Uuid, role: Uuid, node: Uuid) {
        execute(
            db,
            &self.ctx(),
            &format!(
                "INSERT INTO auth.org_assignments (tenant_id, user_id, role_id, org_node_id, start_utc) \
                 VALUES ('{}', '{user}', '{role}', '{node}', now() - interval '1 hour')",
                self.tenant
            ),
        )
        .await
        .unwrap();
    }
}
