-- Demo data for `portcullis seed-demo`. Idempotent: fixed ids, and every
-- insert skips rows that exist. Runs in one RLS-scoped transaction whose
-- context is the demo tenant plus operator rights for global rows.
--
-- Org tree (4 levels):
--   Demo Corp (company)
--   ├── Europe (region)
--   │   ├── Paris (site)
--   │   │   └── Paris Treasury (team)
--   │   └── Berlin (site)
--   │       └── Berlin Archive (team, inactive)
--   └── Americas (region)
--       └── New York (site)

INSERT INTO auth.tenants (id, slug, name) VALUES
    ('d0000000-0000-4000-8000-000000000001', 'demo', 'Demo Corp')
ON CONFLICT DO NOTHING;

INSERT INTO auth.capabilities (id, key, description) VALUES
    ('d0000000-0000-4000-8004-000000000001', 'payment.ledger.download', 'Download ledger exports'),
    ('d0000000-0000-4000-8004-000000000002', 'payment.ledger.read', 'Read ledger entries'),
    ('d0000000-0000-4000-8004-000000000003', 'payment.transfer.approve', 'Approve outgoing transfers'),
    ('d0000000-0000-4000-8004-000000000004', 'report.analytics.view', 'View analytics reports'),
    ('d0000000-0000-4000-8004-000000000005', 'admin.org.write', 'Change the org tree'),
    ('d0000000-0000-4000-8004-000000000006', 'admin.users.manage', 'Manage users')
ON CONFLICT DO NOTHING;

INSERT INTO auth.org_nodes (id, tenant_id, parent_id, node_type, label, status) VALUES
    ('d0000000-0000-4000-8001-000000000001', 'd0000000-0000-4000-8000-000000000001', NULL, 'company', 'Demo Corp', 'active'),
    ('d0000000-0000-4000-8001-000000000002', 'd0000000-0000-4000-8000-000000000001', 'd0000000-0000-4000-8001-000000000001', 'region', 'Europe', 'active'),
    ('d0000000-0000-4000-8001-000000000003', 'd0000000-0000-4000-8000-000000000001', 'd0000000-0000-4000-8001-000000000001', 'region', 'Americas', 'active'),
    ('d0000000-0000-4000-8001-000000000004', 'd0000000-0000-4000-8000-000000000001', 'd0000000-0000-4000-8001-000000000002', 'site', 'Paris', 'active'),
    ('d0000000-0000-4000-8001-000000000005', 'd0000000-0000-4000-8000-000000000001', 'd0000000-0000-4000-8001-000000000002', 'site', 'Berlin', 'active'),
    ('d0000000-0000-4000-8001-000000000006', 'd0000000-0000-4000-8000-000000000001', 'd0000000-0000-4000-8001-000000000003', 'site', 'New York', 'active'),
    ('d0000000-0000-4000-8001-000000000007', 'd0000000-0000-4000-8000-000000000001', 'd0000000-0000-4000-8001-000000000004', 'team', 'Paris Treasury', 'active'),
    ('d0000000-0000-4000-8001-000000000008', 'd0000000-0000-4000-8000-000000000001', 'd0000000-0000-4000-8001-000000000005', 'team', 'Berlin Archive', 'inactive')
ON CONFLICT DO NOTHING;

INSERT INTO auth.roles (id, tenant_id, key, label) VALUES
    ('d0000000-0000-4000-8002-000000000001', 'd0000000-0000-4000-8000-000000000001', 'treasurer', 'Treasurer'),
    ('d0000000-0000-4000-8002-000000000002', 'd0000000-0000-4000-8000-000000000001', 'auditor', 'Auditor'),
    ('d0000000-0000-4000-8002-000000000003', 'd0000000-0000-4000-8000-000000000001', 'org_admin', 'Organisation administrator')
ON CONFLICT DO NOTHING;

INSERT INTO auth.role_capabilities (tenant_id, role_id, capability_id) VALUES
    ('d0000000-0000-4000-8000-000000000001', 'd0000000-0000-4000-8002-000000000001', 'd0000000-0000-4000-8004-000000000001'),
    ('d0000000-0000-4000-8000-000000000001', 'd0000000-0000-4000-8002-000000000001', 'd0000000-0000-4000-8004-000000000002'),
    ('d0000000-0000-4000-8000-000000000001', 'd0000000-0000-4000-8002-000000000001', 'd0000000-0000-4000-8004-000000000003'),
    ('d0000000-0000-4000-8000-000000000001', 'd0000000-0000-4000-8002-000000000002', 'd0000000-0000-4000-8004-000000000002'),
    ('d0000000-0000-4000-8000-000000000001', 'd0000000-0000-4000-8002-000000000002', 'd0000000-0000-4000-8004-000000000004'),
    ('d0000000-0000-4000-8000-000000000001', 'd0000000-0000-4000-8002-000000000003', 'd0000000-0000-4000-8004-000000000005'),
    ('d0000000-0000-4000-8000-000000000001', 'd0000000-0000-4000-8002-000000000003', 'd0000000-0000-4000-8004-000000000006')
ON CONFLICT DO NOTHING;

INSERT INTO auth.users (id, tenant_id, display_name, status) VALUES
    ('d0000000-0000-4000-8003-000000000001', 'd0000000-0000-4000-8000-000000000001', 'Alice Treasurer', 'active'),
    ('d0000000-0000-4000-8003-000000000002', 'd0000000-0000-4000-8000-000000000001', 'Bob Auditor', 'active'),
    ('d0000000-0000-4000-8003-000000000003', 'd0000000-0000-4000-8000-000000000001', 'Carol Admin', 'active'),
    ('d0000000-0000-4000-8003-000000000004', 'd0000000-0000-4000-8000-000000000001', 'Dave Former', 'inactive')
ON CONFLICT DO NOTHING;

INSERT INTO auth.user_identities (id, tenant_id, user_id, kind, login, verified_at) VALUES
    ('d0000000-0000-4000-8008-000000000001', 'd0000000-0000-4000-8000-000000000001', 'd0000000-0000-4000-8003-000000000001', 'email', 'alice@demo.example', now()),
    ('d0000000-0000-4000-8008-000000000002', 'd0000000-0000-4000-8000-000000000001', 'd0000000-0000-4000-8003-000000000002', 'email', 'bob@demo.example', now()),
    ('d0000000-0000-4000-8008-000000000003', 'd0000000-0000-4000-8000-000000000001', 'd0000000-0000-4000-8003-000000000003', 'email', 'carol@demo.example', now()),
    ('d0000000-0000-4000-8008-000000000004', 'd0000000-0000-4000-8000-000000000001', 'd0000000-0000-4000-8003-000000000004', 'email', 'dave@demo.example', now())
ON CONFLICT DO NOTHING;

-- Alice: treasurer for Europe (so Paris, Berlin and below).
-- Bob: auditor at Paris; his treasurer assignment at Paris has expired.
-- Carol: organisation administrator at the root.
-- Dave: inactive user whose assignment would otherwise be in force.
INSERT INTO auth.org_assignments (id, tenant_id, user_id, role_id, org_node_id, start_utc, end_utc) VALUES
    ('d0000000-0000-4000-8005-000000000001', 'd0000000-0000-4000-8000-000000000001', 'd0000000-0000-4000-8003-000000000001', 'd0000000-0000-4000-8002-000000000001', 'd0000000-0000-4000-8001-000000000002', now() - interval '90 days', NULL),
    ('d0000000-0000-4000-8005-000000000002', 'd0000000-0000-4000-8000-000000000001', 'd0000000-0000-4000-8003-000000000002', 'd0000000-0000-4000-8002-000000000002', 'd0000000-0000-4000-8001-000000000004', now() - interval '90 days', NULL),
    ('d0000000-0000-4000-8005-000000000003', 'd0000000-0000-4000-8000-000000000001', 'd0000000-0000-4000-8003-000000000002', 'd0000000-0000-4000-8002-000000000001', 'd0000000-0000-4000-8001-000000000004', now() - interval '60 days', now() - interval '30 days'),
    ('d0000000-0000-4000-8005-000000000004', 'd0000000-0000-4000-8000-000000000001', 'd0000000-0000-4000-8003-000000000003', 'd0000000-0000-4000-8002-000000000003', 'd0000000-0000-4000-8001-000000000001', now() - interval '90 days', NULL),
    ('d0000000-0000-4000-8005-000000000005', 'd0000000-0000-4000-8000-000000000001', 'd0000000-0000-4000-8003-000000000004', 'd0000000-0000-4000-8002-000000000001', 'd0000000-0000-4000-8001-000000000001', now() - interval '90 days', NULL)
ON CONFLICT DO NOTHING;

-- Visibility without capabilities: Bob may analyse the Americas, Alice may read them.
INSERT INTO auth.visibility_grants (id, tenant_id, user_id, org_node_id, scope, start_utc, end_utc) VALUES
    ('d0000000-0000-4000-8006-000000000001', 'd0000000-0000-4000-8000-000000000001', 'd0000000-0000-4000-8003-000000000002', 'd0000000-0000-4000-8001-000000000003', 'analyze', now() - interval '90 days', NULL),
    ('d0000000-0000-4000-8006-000000000002', 'd0000000-0000-4000-8000-000000000001', 'd0000000-0000-4000-8003-000000000001', 'd0000000-0000-4000-8001-000000000003', 'read', now() - interval '90 days', NULL)
ON CONFLICT DO NOTHING;

-- A service account for the demo tenant's API gateway.
INSERT INTO auth.services (id, tenant_id, key, label) VALUES
    ('d0000000-0000-4000-8007-000000000001', 'd0000000-0000-4000-8000-000000000001', 'demo-gateway', 'Demo API gateway')
ON CONFLICT DO NOTHING;

INSERT INTO auth.service_permissions (service_id, permission) VALUES
    ('d0000000-0000-4000-8007-000000000001', 'authz.check'),
    ('d0000000-0000-4000-8007-000000000001', 'authz.list_visible'),
    ('d0000000-0000-4000-8007-000000000001', 'tokens.verify'),
    ('d0000000-0000-4000-8007-000000000001', 'admin.org.read'),
    ('d0000000-0000-4000-8007-000000000001', 'admin.org.write'),
    ('d0000000-0000-4000-8007-000000000001', 'admin.roles.read'),
    ('d0000000-0000-4000-8007-000000000001', 'admin.roles.write'),
    ('d0000000-0000-4000-8007-000000000001', 'admin.assignments.read'),
    ('d0000000-0000-4000-8007-000000000001', 'admin.assignments.write'),
    ('d0000000-0000-4000-8007-000000000001', 'admin.invitations.read'),
    ('d0000000-0000-4000-8007-000000000001', 'admin.invitations.write')
ON CONFLICT DO NOTHING;
