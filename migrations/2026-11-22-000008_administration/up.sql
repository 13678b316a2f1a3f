-- Administration: idempotency keys for create calls, and reading the audit
-- trail (ListAuditEvents; the audit_read policy already fences it per
-- tenant; rows stay insert-only: no UPDATE, no DELETE).
--
-- A create call that carries a key claims (tenant, caller, operation, key)
-- in its own transaction and stores its answer there; a repeat finds the
-- row and returns that answer. A concurrent repeat waits on the claim's
-- unique index entry until the first commits (or rolls back, freeing the
-- key). The request's hash tells a true repeat from a reused key.
CREATE TABLE auth.idempotency_keys (
    tenant_id     uuid NOT NULL REFERENCES auth.tenants (id),
    caller        text NOT NULL CHECK (caller ~ '^((service|user):[0-9a-f-]{36}|system)$'),
    operation     text NOT NULL CHECK (operation ~ '^[a-z][a-z_]*$'),
    key           text NOT NULL CHECK (length(key) BETWEEN 1 AND 200),
    request_hash  bytea NOT NULL CHECK (length(request_hash) = 32),
    response      jsonb,
    created_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, caller, operation, key)
);

ALTER TABLE auth.idempotency_keys ENABLE ROW LEVEL SECURITY;
ALTER TABLE auth.idempotency_keys FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON auth.idempotency_keys
    USING (tenant_id = (SELECT auth.ctx_uuid('app.tenant_id')))
    WITH CHECK (tenant_id = (SELECT auth.ctx_uuid('app.tenant_id')));

GRANT SELECT, INSERT, UPDATE ON auth.idempotency_keys TO portcullis_app;
GRANT SELECT ON audit.audit_events TO portcullis_app;
