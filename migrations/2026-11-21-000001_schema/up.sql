-- The baseline schema. Runs as the owner role, which owns every object here.
-- The application role gets its privileges in the RLS migration.

CREATE SCHEMA auth;
CREATE SCHEMA audit;

-- Request context, read by every policy. Values are set transaction-locally
-- with set_config(..., true). NULLIF: once a connection has set a key in an
-- earlier transaction, later transactions read it back as '' rather than NULL.
CREATE FUNCTION auth.ctx_uuid(key text) RETURNS uuid
    LANGUAGE sql STABLE PARALLEL SAFE
    AS $$ SELECT NULLIF(current_setting(key, true), '')::uuid $$;

CREATE FUNCTION auth.ctx_text(key text) RETURNS text
    LANGUAGE sql STABLE PARALLEL SAFE
    AS $$ SELECT NULLIF(current_setting(key, true), '') $$;

-- Trusted operator tooling (CLI, seeding) acting across tenants on global
-- rows such as the capability catalogue and service accounts.
CREATE FUNCTION auth.ctx_global_admin() RETURNS boolean
    LANGUAGE sql STABLE PARALLEL SAFE
    AS $$ SELECT coalesce(current_setting('app.global_admin', true), '') = 'on' $$;

CREATE TABLE auth.tenants (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    slug        text NOT NULL UNIQUE CHECK (slug ~ '^[a-z0-9][a-z0-9-]{0,62}$'),
    name        text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    status      text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'suspended')),
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE auth.users (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id     uuid NOT NULL REFERENCES auth.tenants (id),
    display_name  text NOT NULL CHECK (length(display_name) BETWEEN 1 AND 200),
    status        text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'inactive')),
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, id)
);

-- A way to log in: an email (stored lower-case) or an E.164 phone number.
-- password_hash is an argon2id PHC string; NULL means no password login.
CREATE TABLE auth.user_identities (
    id             uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id      uuid NOT NULL,
    user_id        uuid NOT NULL,
    kind           text NOT NULL CHECK (kind IN ('email', 'phone')),
    login          text NOT NULL CHECK (length(login) BETWEEN 3 AND 320),
    password_hash  text,
    verified_at    timestamptz,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, kind, login),
    FOREIGN KEY (tenant_id, user_id) REFERENCES auth.users (tenant_id, id)
);
CREATE INDEX user_identities_user_idx ON auth.user_identities (tenant_id, user_id);

-- One login session; the refresh token rotates, the session id stays.
CREATE TABLE auth.refresh_sessions (
    id                   uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id            uuid NOT NULL,
    user_id              uuid NOT NULL,
    token_hash           bytea NOT NULL,
    previous_token_hash  bytea,
    generation           integer NOT NULL DEFAULT 0,
    user_agent           text,
    client_addr          text,
    created_at           timestamptz NOT NULL DEFAULT now(),
    last_refreshed_at    timestamptz,
    expires_at           timestamptz NOT NULL,
    revoked_at           timestamptz,
    revoked_reason       text,
    FOREIGN KEY (tenant_id, user_id) REFERENCES auth.users (tenant_id, id)
);
CREATE INDEX refresh_sessions_user_idx ON auth.refresh_sessions (tenant_id, user_id);

CREATE TABLE auth.otp_codes (
    id             uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id      uuid NOT NULL REFERENCES auth.tenants (id),
    user_id        uuid,
    destination    text NOT NULL,
    channel        text NOT NULL CHECK (channel IN ('email', 'sms', 'whatsapp')),
    purpose        text NOT NULL CHECK (purpose IN ('login', 'verify_email', 'verify_phone', 'reset_password')),
    code_hash      bytea NOT NULL,
    attempt_count  integer NOT NULL DEFAULT 0 CHECK (attempt_count >= 0),
    attempt_max    integer NOT NULL DEFAULT 5 CHECK (attempt_max > 0),
    created_at     timestamptz NOT NULL DEFAULT now(),
    expires_at     timestamptz NOT NULL,
    consumed_at    timestamptz,
    FOREIGN KEY (tenant_id, user_id) REFERENCES auth.users (tenant_id, id)
);
CREATE INDEX otp_codes_destination_idx ON auth.otp_codes (tenant_id, destination, created_at);

CREATE TABLE auth.org_nodes (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id   uuid NOT NULL REFERENCES auth.tenants (id),
    -- The composite key keeps a parent in the same tenant as its child.
    parent_id   uuid,
    node_type   text NOT NULL CHECK (node_type ~ '^[a-z][a-z0-9_]{0,62}$'),
    label       text NOT NULL CHECK (length(label) BETWEEN 1 AND 200),
    status      text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'inactive')),
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, id),
    FOREIGN KEY (tenant_id, parent_id) REFERENCES auth.org_nodes (tenant_id, id),
    CHECK (parent_id IS DISTINCT FROM id)
);
CREATE INDEX org_nodes_parent_idx ON auth.org_nodes (parent_id);

-- Closure table: one row per (ancestor, descendant) pair, depth 0 for the
-- node itself. Maintained only by the triggers of the next migration.
CREATE TABLE auth.org_node_paths (
    tenant_id      uuid NOT NULL,
    ancestor_id    uuid NOT NULL,
    descendant_id  uuid NOT NULL,
    depth          integer NOT NULL CHECK (depth >= 0),
    PRIMARY KEY (ancestor_id, descendant_id),
    FOREIGN KEY (tenant_id, ancestor_id) REFERENCES auth.org_nodes (tenant_id, id),
    FOREIGN KEY (tenant_id, descendant_id) REFERENCES auth.org_nodes (tenant_id, id)
);
-- Checks walk upwards from the node asked about.
CREATE INDEX org_node_paths_descendant_idx ON auth.org_node_paths (descendant_id, ancestor_id) INCLUDE (depth);

-- The capability catalogue is global; roles are per tenant.
CREATE TABLE auth.capabilities (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    key          text NOT NULL UNIQUE CHECK (key ~ '^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*$' AND length(key) <= 200),
    description  text NOT NULL DEFAULT '',
    created_at   timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE auth.roles (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id    uuid NOT NULL REFERENCES auth.tenants (id),
    key          text NOT NULL CHECK (key ~ '^[a-z][a-z0-9_.-]{0,62}$'),
    label        text NOT NULL CHECK (length(label) BETWEEN 1 AND 200),
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, id),
    UNIQUE (tenant_id, key)
);

CREATE TABLE auth.role_capabilities (
    tenant_id      uuid NOT NULL,
    role_id        uuid NOT NULL,
    capability_id  uuid NOT NULL REFERENCES auth.capabilities (id),
    PRIMARY KEY (role_id, capability_id),
    FOREIGN KEY (tenant_id, role_id) REFERENCES auth.roles (tenant_id, id)
);

-- In force when start_utc <= now() AND (end_utc IS NULL OR end_utc > now()).
CREATE TABLE auth.org_assignments (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id    uuid NOT NULL,
    user_id      uuid NOT NULL,
    role_id      uuid NOT NULL,
    org_node_id  uuid NOT NULL,
    start_utc    timestamptz NOT NULL DEFAULT now(),
    end_utc      timestamptz,
    created_at   timestamptz NOT NULL DEFAULT now(),
    CHECK (end_utc IS NULL OR end_utc > start_utc),
    FOREIGN KEY (tenant_id, user_id) REFERENCES auth.users (tenant_id, id),
    FOREIGN KEY (tenant_id, role_id) REFERENCES auth.roles (tenant_id, id),
    FOREIGN KEY (tenant_id, org_node_id) REFERENCES auth.org_nodes (tenant_id, id)
);
CREATE INDEX org_assignments_user_idx ON auth.org_assignments (user_id, org_node_id);
CREATE INDEX org_assignments_node_idx ON auth.org_assignments (org_node_id);

CREATE TABLE auth.visibility_grants (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id    uuid NOT NULL,
    user_id      uuid NOT NULL,
    org_node_id  uuid NOT NULL,
    scope        text NOT NULL CHECK (scope IN ('read', 'analyze')),
    start_utc    timestamptz NOT NULL DEFAULT now(),
    end_utc      timestamptz,
    created_at   timestamptz NOT NULL DEFAULT now(),
    CHECK (end_utc IS NULL OR end_utc > start_utc),
    FOREIGN KEY (tenant_id, user_id) REFERENCES auth.users (tenant_id, id),
    FOREIGN KEY (tenant_id, org_node_id) REFERENCES auth.org_nodes (tenant_id, id)
);
CREATE INDEX visibility_grants_user_idx ON auth.visibility_grants (user_id, org_node_id);

CREATE TABLE auth.invitations (
    id                uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id         uuid NOT NULL,
    destination_kind  text NOT NULL CHECK (destination_kind IN ('email', 'phone')),
    destination       text NOT NULL,
    role_id           uuid NOT NULL,
    org_node_id       uuid NOT NULL,
    token_hash        bytea NOT NULL,
    created_at        timestamptz NOT NULL DEFAULT now(),
    expires_at        timestamptz NOT NULL,
    accepted_at       timestamptz,
    accepted_user_id  uuid,
    revoked_at        timestamptz,
    FOREIGN KEY (tenant_id, role_id) REFERENCES auth.roles (tenant_id, id),
    FOREIGN KEY (tenant_id, org_node_id) REFERENCES auth.org_nodes (tenant_id, id),
    FOREIGN KEY (tenant_id, accepted_user_id) REFERENCES auth.users (tenant_id, id)
);

-- Service accounts. tenant_id NULL: the service may act in any tenant.
CREATE TABLE auth.services (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id   uuid REFERENCES auth.tenants (id),
    key         text NOT NULL UNIQUE CHECK (key ~ '^[a-z][a-z0-9_.-]{0,62}$'),
    label       text NOT NULL CHECK (length(label) BETWEEN 1 AND 200),
    status      text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'disabled')),
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

-- Only a hash of each secret is kept; several may be active for rotation.
CREATE TABLE auth.service_secrets (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    service_id    uuid NOT NULL REFERENCES auth.services (id),
    secret_hash   bytea NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    last_used_at  timestamptz,
    revoked_at    timestamptz
);
CREATE INDEX service_secrets_service_idx ON auth.service_secrets (service_id);

CREATE TABLE auth.service_permissions (
    service_id  uuid NOT NULL REFERENCES auth.services (id),
    permission  text NOT NULL CHECK (permission ~ '^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*$'),
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (service_id, permission)
);

-- One row per issued service token; revocation is read from here.
CREATE TABLE auth.service_sessions (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    service_id   uuid NOT NULL REFERENCES auth.services (id),
    secret_id    uuid REFERENCES auth.service_secrets (id),
    token_hash   bytea NOT NULL,
    permissions  text[] NOT NULL DEFAULT '{}',
    issued_at    timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz NOT NULL,
    revoked_at   timestamptz
);
CREATE INDEX service_sessions_service_idx ON auth.service_sessions (service_id);
CREATE INDEX service_sessions_revoked_idx ON auth.service_sessions (revoked_at) WHERE revoked_at IS NOT NULL;

-- Append-only trail. tenant_id NULL for events outside any tenant (e.g. an
-- exchange attempt with an unknown service key).
CREATE TABLE audit.audit_events (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    occurred_at  timestamptz NOT NULL DEFAULT now(),
    tenant_id    uuid,
    actor_kind   text NOT NULL CHECK (actor_kind IN ('user', 'service', 'system', 'anonymous')),
    actor_id     text,
    action       text NOT NULL CHECK (action ~ '^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*$'),
    entity_kind  text NOT NULL,
    entity_id    text,
    request_id   text,
    payload      jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX audit_events_tenant_time_idx ON audit.audit_events (tenant_id, occurred_at DESC, id DESC);
