-- Idempotency keys of global administration (CreateTenant,
-- CreateCapability). There is no tenant to fence them by, so only a global
-- administrator's transaction (a service bound to no tenant, or operator
-- tooling) sees them; each caller's keys are its own (the primary key).
CREATE TABLE auth.global_idempotency_keys (
    caller        text NOT NULL CHECK (caller ~ '^(service:[0-9a-f-]{36}|system)$'),
    operation     text NOT NULL CHECK (operation ~ '^[a-z][a-z_]*$'),
    key           text NOT NULL CHECK (length(key) BETWEEN 1 AND 200),
    request_hash  bytea NOT NULL CHECK (length(request_hash) = 32),
    response      jsonb,
    created_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (caller, operation, key)
);

ALTER TABLE auth.global_idempotency_keys ENABLE ROW LEVEL SECURITY;
ALTER TABLE auth.global_idempotency_keys FORCE ROW LEVEL SECURITY;
CREATE POLICY global_administration ON auth.global_idempotency_keys
    USING ((SELECT auth.ctx_global_admin()))
    WITH CHECK ((SELECT auth.ctx_global_admin()));

GRANT SELECT, INSERT, UPDATE ON auth.global_idempotency_keys TO portcullis_app;
