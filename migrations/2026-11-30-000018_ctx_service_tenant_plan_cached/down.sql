CREATE OR REPLACE FUNCTION auth.ctx_service_tenant_id() RETURNS uuid
    LANGUAGE sql STABLE PARALLEL SAFE
    AS $$
        SELECT s.tenant_id FROM auth.services s
         WHERE s.svc_id = auth.ctx_uuid('app.service_id')
            OR s.svc_key = auth.ctx_text('app.service_key')
         LIMIT 1
    $$;
