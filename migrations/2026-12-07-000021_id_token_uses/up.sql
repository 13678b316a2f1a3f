-- An ID token opens at most one session: its hash is kept until it
-- expires, and a second login with it is refused. The nonce arrives with
-- the token, so it cannot tell a replay from the first use.
CREATE TABLE auth.id_token_uses (
    token_sha256  bytea PRIMARY KEY CHECK (length(token_sha256) = 32),
    tenant_id     uuid NOT NULL REFERENCES auth.tenants (tenant_id),
    expiry_utc    timestamptz NOT NULL,
    created_utc   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX id_token_uses_expiry_idx ON auth.id_token_uses (tenant_id, expiry_utc);

ALTER TABLE auth.id_token_uses ENABLE ROW LEVEL SECURITY;
ALTER TABLE auth.id_token_uses FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON auth.id_token_uses
    USING (tenant_id = (SELECT auth.ctx_uuid('app.tenant_id')))
    WITH CHECK (tenant_id = (SELECT auth.ctx_uuid('app.tenant_id')));

GRANT SELECT, INSERT, DELETE ON auth.id_token_uses TO portcullis_app;
