DROP TABLE auth.token_revocations;
DROP POLICY audit_append_for_service_tenant ON audit.audit_events;
DROP POLICY tenant_of_service ON auth.tenants;
DROP FUNCTION auth.ctx_service_tenant_id();
