REVOKE ALL ON ALL TABLES IN SCHEMA auth FROM portcullis_app;
REVOKE ALL ON ALL TABLES IN SCHEMA audit FROM portcullis_app;
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA auth FROM portcullis_app;
REVOKE ALL ON SCHEMA auth, audit FROM portcullis_app;

DROP POLICY audit_read ON audit.audit_events;
DROP POLICY audit_append ON audit.audit_events;
DROP POLICY service_self ON auth.service_sessions;
DROP POLICY service_self ON auth.service_permissions;
DROP POLICY service_self ON auth.service_secrets;
DROP POLICY service_self ON auth.services;
DROP POLICY catalogue_update ON auth.capabilities;
DROP POLICY catalogue_insert ON auth.capabilities;
DROP POLICY catalogue_read ON auth.capabilities;
DROP POLICY tenant_self ON auth.tenants;

DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY[
        'auth.users', 'auth.user_identities', 'auth.refresh_sessions', 'auth.otp_codes',
        'auth.org_nodes', 'auth.org_node_paths', 'auth.roles', 'auth.role_capabilities',
        'auth.org_assignments', 'auth.visibility_grants', 'auth.invitations'
    ] LOOP
        EXECUTE format('DROP POLICY tenant_isolation ON %s', t);
    END LOOP;
    FOREACH t IN ARRAY ARRAY[
        'auth.tenants', 'auth.users', 'auth.user_identities', 'auth.refresh_sessions',
        'auth.otp_codes', 'auth.org_nodes', 'auth.org_node_paths', 'auth.capabilities',
        'auth.roles', 'auth.role_capabilities', 'auth.org_assignments',
        'auth.visibility_grants', 'auth.invitations', 'auth.services',
        'auth.service_secrets', 'auth.service_permissions', 'auth.service_sessions',
        'audit.audit_events'
    ] LOOP
        EXECUTE format('ALTER TABLE %s NO FORCE ROW LEVEL SECURITY', t);
        EXECUTE format('ALTER TABLE %s DISABLE ROW LEVEL SECURITY', t);
    END LOOP;
END
$$;
