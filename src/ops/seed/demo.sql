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

INSERT INTO auth.tenants (tenant_id, tenant_slug, tenant_label) VALUES
    ('d0000000-0000-4000-8000-000000000001', 'demo', 'Demo Corp')
ON CONFLICT DO NOTHING;

INSERT INTO auth.capabilities (cap_id, cap_key, cap_description) VALUES
    ('d0000000-0000-4000-8004-000000000001', 'payment.ledger.download', 'Download ledger exports'),
    ('d0000000-0000-4000-8004-000000000002', 'payment.ledger.read', 'Read ledger entries'),
    ('d0000000-0000-4000-8004-000000000003', 'payment.transfer.approve', 'Approve outgoing transfers'),
    ('d0000000-0000-4000-8004-000000000004', 'report.analytics.view', 'View analytics reports'),
    ('d0000000-0000-4000-8004-000000000005', 'admin.org.write', 'Change the org tree'),
    ('d0000000-0000-4000-8004-000000000006', 'admin.users.manage', 'Manage users')
ON CONFLICT DO NOTHING;

INSERT INTO auth.org_nodes (org_node_id, tenant_id, parent_org_node_id, node_type_code, node_label, active_flag) VALUES
    ('d0000000-0000-4000-8001-000000000001', 'd0000000-0000-4000-8000-000000000001', NULL, 'company', 'Demo Corp', true),
    ('d0000000-0000-4000-8001-000000000002', 'd0000000-0000-4000-8000-000000000001', 'd0000000-0000-4000-8001-000000000001', 'region', 'Europe', true),
    ('d0000000-0000-4000-8001-000000000003', 'd0000000-0000-4000-8000-000000000001', 'd0000000-0000-4000-8001-000000000001', 'region', 'Americas', true),
    ('d0000000-0000-4000-8001-000000000004', 'd0000000-0000-4000-8000-000000000001', 'd0000000-0000-4000-8001-000000000002', 'site', 'Paris', true),
    ('d0000000-0000-4000-8001-000000000005', 'd0000000-0000-4000-8000-000000000001', 'd0000000-0000-4000-8001-000000000002', 'site', 'Berlin', true),
    ('d0000000-0000-4000-8001-000000000006', 'd0000000-0000-4000-8000-000000000001', 'd0000000-0000-4000-8001-000000000003', 'site', 'New York', true),
    ('d0000000-0000-4000-8001-000000000007', 'd0000000-0000-4000-8000-000000000001', 'd0000000-0000-4000-8001-000000000004', 'team', 'Paris Treasury', true),
    ('d0000000-0000-4000-8001-000000000008', 'd0000000-0000-4000-8000-000000000001', 'd0000000-0000-4000-8001-000000000005', 'team', 'Berlin Archive', false)
ON CONFLICT DO NOTHING;

INSERT INTO auth.roles (role_id, tenant_id, role_key, role_label) VALUES
    ('d0000000-0000-4000-8002-000000000001', 'd0000000-0000-4000-8000-000000000001', 'treasurer', 'Treasurer'),
    ('d0000000-0000-4000-8002-000000000002', 'd0000000-0000-4000-8000-000000000001', 'auditor', 'Auditor'),
    ('d0000000-0000-4000-8002-000000000003', 'd0000000-0000-4000-8000-000000000001', 'org_admin', 'Organisation administrator')
ON CONFLICT DO NOTHING;

INSERT INTO auth.role_capabilities (tenant_id, role_id, cap_id) VALUES
    ('d0000000-0000-4000-8000-000000000001', 'd0000000-0000-4000-8002-000000000001', 'd0000000-0000-4000-8004-000000000001'),
    ('d0000000-0000-4000-8000-000000000001', 'd0000000-0000-4000-8002-000000000001', 'd0000000-0000-4000-8004-000000000002'),
    ('d0000000-0000-4000-8000-000000000001', 'd0000000-0000-4000-8002-000000000001', 'd0000000-0000-4000-8004-000000000003'),
    ('d0000000-0000-4000-8000-000000000001', 'd0000000-0000-4000-8002-000000000002', 'd0000000-0000-4000-8004-000000000002'),
    ('d0000000-0000-4000-8000-000000000001', 'd0000000-0000-4000-8002-000000000002', 'd0000000-0000-4000-8004-000000000004'),
    ('d0000000-0000-4000-8000-000000000001', 'd0000000-0000-4000-8002-000000000003', 'd0000000-0000-4000-8004-000000000005'),
    ('d0000000-0000-4000-8000-000000000001', 'd0000000-0000-4000-8002-000000000003', 'd0000000-0000-4000-8004-000000000006')
ON CONFLICT DO NOTHING;

INSERT INTO auth.users (user_id, tenant_id, display_label, user_state_code, email_addr) VALUES
    ('d0000000-0000-4000-8003-000000000001', 'd0000000-0000-4000-8000-000000000001', 'Alice Treasurer', 'active', 'alice@demo.example'),
    ('d0000000-0000-4000-8003-000000000002', 'd0000000-0000-4000-8000-000000000001', 'Bob Auditor', 'active', 'bob@demo.example'),
    ('d0000000-0000-4000-8003-000000000003', 'd0000000-0000-4000-8000-000000000001', 'Carol Admin', 'active', 'carol@demo.example'),
    ('d0000000-0000-4000-8003-000000000004', 'd0000000-0000-4000-8000-000000000001', 'Dave Former', 'inactive', 'dave@demo.example')
ON CONFLICT DO NOTHING;

-- One password identity each (the password is set by `seed-demo`), the email verified.
INSERT INTO auth.user_identities (ident_id, tenant_id, user_id, ident_provider_code, email_verified_flag) VALUES
    ('d0000000-0000-4000-8008-000000000001', 'd0000000-0000-4000-8000-000000000001', 'd0000000-0000-4000-8003-000000000001', 'password', true),
    ('d0000000-0000-4000-8008-000000000002', 'd0000000-0000-4000-8000-000000000001', 'd0000000-0000-4000-8003-000000000002', 'password', true),
    ('d0000000-0000-4000-8008-000000000003', 'd0000000-0000-4000-8000-000000000001', 'd0000000-0000-4000-8003-000000000003', 'password', true),
    ('d0000000-0000-4000-8008-000000000004', 'd0000000-0000-4000-8000-000000000001', 'd0000000-0000-4000-8003-000000000004', 'password', true)
ON CONFLICT DO NOTHING;

-- Alice: treasurer for Europe (so Paris, Berlin and below).
-- Bob: auditor at Paris; his treasurer assignment at Paris has expired.
-- Carol: organisation administrator at the root.
-- Dave: inactive user whose assignment would otherwise be in force.
INSERT INTO auth.org_assignments (assignment_id, tenant_id, user_id, role_id, org_node_id, start_utc, end_utc) VALUES
    ('d0000000-0000-4000-8005-000000000001', 'd0000000-0000-4000-8000-000000000001', 'd0000000-0000-4000-8003-000000000001', 'd0000000-0000-4000-8002-000000000001', 'd0000000-0000-4000-8001-000000000002', now() - interval '90 days', NULL),
    ('d0000000-0000-4000-8005-000000000002', 'd0000000-0000-4000-8000-000000000001', 'd0000000-0000-4000-8003-000000000002', 'd0000000-0000-4000-8002-000000000002', 'd0000000-0000-4000-8001-000000000004', now() - interval '90 days', NULL),
    ('d0000000-0000-4000-8005-000000000003', 'd0000000-0000-4000-8000-000000000001', 'd0000000-0000-4000-8003-000000000002', 'd0000000-0000-4000-8002-000000000001', 'd0000000-0000-4000-8001-000000000004', now() - interval '60 days', now() - interval '30 days'),
    ('d0000000-0000-4000-8005-000000000004', 'd0000000-0000-4000-8000-000000000001', 'd0000000-0000-4000-8003-000000000003', 'd0000000-0000-4000-8002-000000000003', 'd0000000-0000-4000-8001-000000000001', now() - interval '90 days', NULL),
    ('d0000000-0000-4000-8005-000000000005', 'd0000000-0000-4000-8000-000000000001', 'd0000000-0000-4000-8003-000000000004', 'd0000000-0000-4000-8002-000000000001', 'd0000000-0000-4000-8001-000000000001', now() - interval '90 days', NULL)
ON CONFLICT DO NOTHING;

-- Visibility without capabilities: Bob may analyse the Americas, Alice may read them.
INSERT INTO auth.visibility_grants (grant_id, tenant_id, user_id, org_node_id, access_scope_code, start_utc, end_utc) VALUES
    ('d0000000-0000-4000-8006-000000000001', 'd0000000-0000-4000-8000-000000000001', 'd0000000-0000-4000-8003-000000000002', 'd0000000-0000-4000-8001-000000000003', 'analyze', now() - interval '90 days', NULL),
    ('d0000000-0000-4000-8006-000000000002', 'd0000000-0000-4000-8000-000000000001', 'd0000000-0000-4000-8003-000000000001', 'd0000000-0000-4000-8001-000000000003', 'read', now() - interval '90 days', NULL)
ON CONFLICT DO NOTHING;

-- A service account for the demo tenant's API gateway.
INSERT INTO auth.services (svc_id, tenant_id, svc_key, svc_label) VALUES
    ('d0000000-0000-4000-8007-000000000001', 'd0000000-0000-4000-8000-000000000001', 'demo-gateway', 'Demo API gateway')
ON CONFLICT DO NOTHING;

INSERT INTO auth.service_permissions (svc_id, perm_key) VALUES
    ('d0000000-0000-4000-8007-000000000001', 'authz.check'),
    ('d0000000-0000-4000-8007-000000000001', 'authz.list_visible'),
    ('d0000000-0000-4000-8007-000000000001', 'authz.list_users'),
    ('d0000000-0000-4000-8007-000000000001', 'tokens.verify'),
    ('d0000000-0000-4000-8007-000000000001', 'admin.org.read'),
    ('d0000000-0000-4000-8007-000000000001', 'admin.org.write'),
    ('d0000000-0000-4000-8007-000000000001', 'admin.roles.read'),
    ('d0000000-0000-4000-8007-000000000001', 'admin.roles.write'),
    ('d0000000-0000-4000-8007-000000000001', 'admin.assignments.read'),
    ('d0000000-0000-4000-8007-000000000001', 'admin.assignments.write'),
    ('d0000000-0000-4000-8007-000000000001', 'admin.invitations.read'),
    ('d0000000-0000-4000-8007-000000000001', 'admin.invitations.write'),
    ('d0000000-0000-4000-8007-000000000001', 'authz.watch')
ON CONFLICT DO NOTHING;

-- The endpoint catalogue: payment_flow's ledger entries need
-- payment.ledger.read at the node the path names (CheckEndpoint and
-- /forward-auth decide by it).
INSERT INTO auth.endpoint_policy (endpoint_id, service_key, method_code, route_pattern, capability, node_source_code, node_source_name) VALUES
    ('d0000000-0000-4000-800a-000000000001', 'payment_flow', 'GET', '/ledgers/{node_id}/entries', 'payment.ledger.read', 'path', 'node_id')
ON CONFLICT DO NOTHING;
