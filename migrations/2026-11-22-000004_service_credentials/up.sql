-- Service credentials: what a service account may see of its own tenant
-- before and after authentication, and the revocation list every replica
-- polls.

-- The tenant of the service in context (authenticated, or named by the key
-- presented in a credential exchange); NULL for a global service.
CREATE FUNCTION auth.ctx_service_tenant_id() RETURNS uuid
    LANGUAGE sql STABLE PARALLEL SAFE
    AS $$
        SELECT s.tenant_id FROM auth.services s
         WHERE s.id = auth.ctx_uuid('app.service_id')
            OR s.key = auth.ctx_text('app.service_key')
         LIMIT 1
    $$;
REVOKE ALL ON FUNCTION auth.ctx_service_tenant_id() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION auth.ctx_service_tenant_id() TO portcullis_app;

-- A service may read (not change) its own tenant, to see whether it is suspended.
CREATE POLICY tenant_of_service ON auth.tenants FOR SELECT
    USING (id = (SELECT auth.ctx_service_tenant_id()));

-- ...and write audit rows for it.
CREATE POLICY audit_append_for_service_tenant ON audit.audit_events FOR INSERT
    WITH CHECK (tenant_id = (SELECT auth.ctx_service_tenant_id()));

-- Revoked sessions (service tokens now, user sessions later) by session id.
-- No tenant data: ids and times only, so every replica can poll it under the
-- narrow `app.purpose = revocation_sync` context and refuse a revoked token
-- within seconds, whoever revoked it.
CREATE TABLE auth.token_revocations (
    session_id   uuid PRIMARY KEY,
    token_kind   text NOT NULL CHECK (token_kind IN ('service', 'user')),
    revoked_at   timestamptz NOT NULL DEFAULT clock_timestamp(),
    -- After this the token is dead anyway and the entry can be forgotten.
    expires_at   timestamptz NOT NULL
);
CREATE INDEX token_revocations_revoked_at_idx ON auth.token_revocations (revoked_at);
ALTER TABLE auth.token_revocations ENABLE ROW LEVEL SECURITY;
ALTER TABLE auth.token_revocations FORCE ROW LEVEL SECURITY;

CREATE POLICY revocation_sync ON auth.token_revocations FOR SELECT
    USING ((SELECT auth.ctx_text('app.purpose')) = 'revocation_sync');
-- A request may revoke only a session it can see (the EXISTS subqueries run
-- under the same row-level security), so knowing a session id is not enough.
-- Revoking twice is a no-op: INSERT … ON CONFLICT DO NOTHING needs only this.
CREATE POLICY revocation_write ON auth.token_revocations FOR INSERT
    WITH CHECK (
        ((SELECT auth.ctx_uuid('app.service_id')) IS NOT NULL
            OR (SELECT auth.ctx_text('app.service_key')) IS NOT NULL
            OR (SELECT auth.ctx_uuid('app.tenant_id')) IS NOT NULL
            OR (SELECT auth.ctx_global_admin()))
        AND ((token_kind = 'service' AND EXISTS (SELECT 1 FROM auth.service_sessions s WHERE s.id = session_id))
          OR (token_kind = 'user' AND EXISTS (SELECT 1 FROM auth.refresh_sessions r WHERE r.id = session_id))));

GRANT SELECT, INSERT ON auth.token_revocations TO portcullis_app;
