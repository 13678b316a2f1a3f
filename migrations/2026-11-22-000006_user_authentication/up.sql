-- User authentication: rotating refresh sessions with reuse detection,
-- brute-force throttles kept in the database (so they hold across
-- replicas), and an outbox for one-time codes.

-- Hashes of every refresh token a session has rotated away from: presenting
-- one of them again is reuse (a stolen token), and revokes the session.
ALTER TABLE auth.refresh_sessions
    ADD COLUMN retired_token_hashes bytea[] NOT NULL DEFAULT '{}';
CREATE INDEX refresh_sessions_token_hash_idx ON auth.refresh_sessions (token_hash);

-- Failed-login counters per key (`login:<kind>:<login>` or `addr:<ip>`).
CREATE TABLE auth.login_throttles (
    tenant_id          uuid NOT NULL REFERENCES auth.tenants (id),
    key                text NOT NULL CHECK (length(key) <= 400),
    failures           integer NOT NULL DEFAULT 0 CHECK (failures >= 0),
    window_started_at  timestamptz NOT NULL DEFAULT now(),
    locked_until       timestamptz,
    PRIMARY KEY (tenant_id, key)
);

-- Codes waiting to be sent by a delivery process. The row holds the code
-- in clear until that process sends it (and it is useless once the code
-- expires); nothing else stores it.
CREATE TABLE auth.otp_outbox (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id    uuid NOT NULL REFERENCES auth.tenants (id),
    otp_id       uuid NOT NULL REFERENCES auth.otp_codes (id),
    channel      text NOT NULL CHECK (channel IN ('email', 'sms', 'whatsapp')),
    destination  text NOT NULL,
    purpose      text NOT NULL,
    code         text NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz NOT NULL,
    sent_at      timestamptz
);
CREATE INDEX otp_outbox_unsent_idx ON auth.otp_outbox (created_at) WHERE sent_at IS NULL;

ALTER TABLE auth.login_throttles ENABLE ROW LEVEL SECURITY;
ALTER TABLE auth.login_throttles FORCE ROW LEVEL SECURITY;
ALTER TABLE auth.otp_outbox ENABLE ROW LEVEL SECURITY;
ALTER TABLE auth.otp_outbox FORCE ROW LEVEL SECURITY;

CREATE POLICY tenant_isolation ON auth.login_throttles
    USING (tenant_id = (SELECT auth.ctx_uuid('app.tenant_id')))
    WITH CHECK (tenant_id = (SELECT auth.ctx_uuid('app.tenant_id')));
CREATE POLICY tenant_isolation ON auth.otp_outbox
    USING (tenant_id = (SELECT auth.ctx_uuid('app.tenant_id')))
    WITH CHECK (tenant_id = (SELECT auth.ctx_uuid('app.tenant_id')));

GRANT SELECT, INSERT, UPDATE ON auth.login_throttles, auth.otp_outbox TO portcullis_app;

CREATE INDEX otp_codes_live_idx ON auth.otp_codes (tenant_id, destination, purpose, created_at DESC)
    WHERE consumed_at IS NULL;

-- A refresh token names its session but not its tenant: before the tenant
-- is known, a transaction may see exactly the session the presented token
-- names (and learn its tenant), nothing else.
CREATE POLICY refresh_token_lookup ON auth.refresh_sessions FOR SELECT
    USING (id = (SELECT auth.ctx_uuid('app.refresh_session_id')));
