-- Row-level security on every table, enabled and forced (the owner too), and
-- the application role's privileges. Policies fail closed: with no context
-- set, the context functions return NULL and no comparison is true.
--
-- The context is read through scalar subqueries so PostgreSQL evaluates it
-- once per statement (an InitPlan), not once per row.
--
-- `portcullis_app` is a NOLOGIN group role created by `portcullis db
-- provision`; each environment's login role is a member of it.

DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY[
        'auth.tenants', 'auth.users', 'auth.user_identities', 'auth.refresh_sessions',
        'auth.otp_codes', 'auth.org_nodes', 'auth.org_node_paths', 'auth.capabilities',
        'auth.roles', 'auth.role_capabilities', 'auth.org_assignments',
        'auth.visibility_grants', 'auth.invitations', 'auth.services',
        'auth.service_secrets', 'auth.service_permissions', 'auth.service_sessions',
        'audit.audit_events'
    ] LOOP
        EXECUTE format('ALTER TABLE %s ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format('ALTER TABLE %s FORCE ROW LEVEL SECURITY', t);
    END LOOP;

    -- Tables fenced by tenant alone.
    FOREACH t IN ARRAY ARRAY[
        'auth.users', 'auth.user_identities', 'auth.refresh_sessions', 'auth.otp_codes',
        'auth.org_nodes', 'auth.org_node_paths', 'auth.roles', 'auth.role_capabilities',
        'auth.org_assignments', 'auth.visibility_grants', 'auth.invitations'
    ] LOOP
        EXECUTE format(
            'CREATE POLICY tenant_isolation ON %s
                 USING (tenant_id = (SELECT auth.ctx_uuid(''app.tenant_id'')))
                 WITH CHECK (tenant_id = (SELECT auth.ctx_uuid(''app.tenant_id'')))', t);
    END LOOP;
END
$$;

-- A tenant sees its own row; operator tooling may create and change tenants.
CREATE POLICY tenant_self ON auth.tenants
    USING (id = (SELECT auth.ctx_uuid('app.tenant_id')) OR (SELECT auth.ctx_global_admin()))
    WITH CHECK (id = (SELECT auth.ctx_uuid('app.tenant_id')) OR (SELECT auth.ctx_global_admin()));

-- The global catalogue: readable by any request with an identity, written
-- only by operator tooling.
CREATE POLICY catalogue_read ON auth.capabilities FOR SELECT
    USING ((SELECT auth.ctx_uuid('app.tenant_id')) IS NOT NULL
        OR (SELECT auth.ctx_uuid('app.service_id')) IS NOT NULL
        OR (SELECT auth.ctx_global_admin()));
CREATE POLICY catalogue_insert ON auth.capabilities FOR INSERT
    WITH CHECK ((SELECT auth.ctx_global_admin()));
CREATE POLICY catalogue_update ON auth.capabilities FOR UPDATE
    USING ((SELECT auth.ctx_global_admin()))
    WITH CHECK ((SELECT auth.ctx_global_admin()));

-- Service accounts are fenced by service identity, not by tenant: a service
-- sees itself once authenticated (app.service_id), or the one account named
-- by the key it presents before authentication (app.service_key).
CREATE POLICY service_self ON auth.services
    USING (id = (SELECT auth.ctx_uuid('app.service_id'))
        OR key = (SELECT auth.ctx_text('app.service_key'))
        OR (SELECT auth.ctx_global_admin()))
    WITH CHECK (id = (SELECT auth.ctx_uuid('app.service_id'))
        OR (SELECT auth.ctx_global_admin()));

DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['auth.service_secrets', 'auth.service_permissions', 'auth.service_sessions'] LOOP
        EXECUTE format(
            'CREATE POLICY service_self ON %s
                 USING (service_id = (SELECT auth.ctx_uuid(''app.service_id''))
                     OR service_id = (SELECT s.id FROM auth.services s
                                       WHERE s.key = (SELECT auth.ctx_text(''app.service_key'')))
                     OR (SELECT auth.ctx_global_admin()))
                 WITH CHECK (service_id = (SELECT auth.ctx_uuid(''app.service_id''))
                     OR service_id = (SELECT s.id FROM auth.services s
                                       WHERE s.key = (SELECT auth.ctx_text(''app.service_key'')))
                     OR (SELECT auth.ctx_global_admin()))', t);
    END LOOP;
END
$$;

-- Audit rows: written for the context's tenant, or without a tenant by a
-- request that carries some identity; read per tenant.
CREATE POLICY audit_append ON audit.audit_events FOR INSERT
    WITH CHECK (
        tenant_id = (SELECT auth.ctx_uuid('app.tenant_id'))
        OR (tenant_id IS NULL AND (
                (SELECT auth.ctx_uuid('app.service_id')) IS NOT NULL
             OR (SELECT auth.ctx_text('app.service_key')) IS NOT NULL
             OR (SELECT auth.ctx_global_admin())))
        OR (SELECT auth.ctx_global_admin()));
CREATE POLICY audit_read ON audit.audit_events FOR SELECT
    USING (tenant_id = (SELECT auth.ctx_uuid('app.tenant_id')) OR (SELECT auth.ctx_global_admin()));

-- Privileges of the application role: data manipulation only, no DDL, no
-- TRUNCATE, no DELETE except on pure link tables that are replaced as a set.
-- The closure table is read-only (triggers maintain it); audit rows are
-- insert-only.
REVOKE ALL ON SCHEMA auth, audit FROM PUBLIC;
GRANT USAGE ON SCHEMA auth, audit TO portcullis_app;

REVOKE ALL ON FUNCTION auth.ctx_uuid(text), auth.ctx_text(text), auth.ctx_global_admin() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION auth.ctx_uuid(text), auth.ctx_text(text), auth.ctx_global_admin() TO portcullis_app;

GRANT SELECT, INSERT, UPDATE ON
    auth.tenants, auth.users, auth.user_identities, auth.refresh_sessions, auth.otp_codes,
    auth.org_nodes, auth.capabilities, auth.roles, auth.role_capabilities, auth.org_assignments,
    auth.visibility_grants, auth.invitations, auth.services, auth.service_secrets,
    auth.service_permissions, auth.service_sessions
    TO portcullis_app;
GRANT DELETE ON auth.role_capabilities, auth.service_permissions TO portcullis_app;
GRANT SELECT ON auth.org_node_paths TO portcullis_app;
GRANT INSERT ON audit.audit_events TO portcullis_app;
