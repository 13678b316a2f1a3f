-- The tenant of the service acting, read by the policies on tenants and on
-- audit appends. As a SQL function with a FROM it cannot be inlined, and
-- PostgreSQL plans a non-inlined SQL function's query again on every
-- statement that calls it (a check reads tenants, an exchange reads
-- tenants and appends an audit row). PL/pgSQL keeps the plan for the
-- session. Same query, same rules.
CREATE OR REPLACE FUNCTION auth.ctx_service_tenant_id() RETURNS uuid
    LANGUAGE plpgsql STABLE PARALLEL SAFE
    AS $$
BEGIN
    RETURN (SELECT s.tenant_id FROM auth.services s
             WHERE s.svc_id = auth.ctx_uuid('app.service_id')
                OR s.svc_key = auth.ctx_text('app.service_key')
             LIMIT 1);
END
$$;
