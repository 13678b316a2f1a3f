-- The SQL decision API's trust boundary. The functions answer for whatever
-- user the calling session names, so a member of portcullis_decision can
-- ask as anyone. This migration narrows what a role may name:
--
-- * auth.decision_roles binds a role (written by `db provision-service
--   --tenants … --signed-context`) to tenants: the functions answer nobody
--   for a user of any other tenant; and to signed mode: only a user named
--   by an assertion Portcullis signed counts, raw `app.*` settings and raw
--   `request.jwt.claims` answer nobody.
-- * request.jwt.claims count only with `typ` = `user` and an `iss` of
--   Portcullis's own (auth.token_issuers, which each server records).
-- * auth.set_user_context(assertion) takes a short-lived assertion from
--   Portcullis's IssueSqlAssertion: `pcsa1.<key>.<tenant>.<user>.<expiry>.<mac>`,
--   HMAC-SHA-256 under a key only Portcullis and these functions read.

CREATE TABLE auth.decision_roles (
    role_name    text PRIMARY KEY CHECK (length(role_name) BETWEEN 1 AND 63),
    -- NULL: any tenant.
    tenant_ids   uuid[],
    signed_flag  boolean NOT NULL DEFAULT false,
    updated_utc  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE auth.token_issuers (
    issuer_text  text PRIMARY KEY CHECK (length(issuer_text) BETWEEN 1 AND 400),
    created_utc  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE auth.sql_assertion_keys (
    key_id       text PRIMARY KEY CHECK (key_id ~ '^[a-z0-9]{1,16}$'),
    secret_key   bytea NOT NULL CHECK (length(secret_key) = 32),
    created_utc  timestamptz NOT NULL DEFAULT now(),
    retired_utc  timestamptz
);
-- 366 random bits from the server's strong random source, folded to 256.
INSERT INTO auth.sql_assertion_keys (key_id, secret_key)
VALUES ('k1', sha256(convert_to(gen_random_uuid()::text || gen_random_uuid()::text
                                || gen_random_uuid()::text, 'UTF8')));

ALTER TABLE auth.decision_roles ENABLE ROW LEVEL SECURITY;
ALTER TABLE auth.decision_roles FORCE ROW LEVEL SECURITY;
ALTER TABLE auth.token_issuers ENABLE ROW LEVEL SECURITY;
ALTER TABLE auth.token_issuers FORCE ROW LEVEL SECURITY;
ALTER TABLE auth.sql_assertion_keys ENABLE ROW LEVEL SECURITY;
ALTER TABLE auth.sql_assertion_keys FORCE ROW LEVEL SECURITY;

-- Read by the decision functions, which run as this schema's owner.
DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['auth.decision_roles', 'auth.token_issuers', 'auth.sql_assertion_keys'] LOOP
        EXECUTE format(
            'CREATE POLICY decision_functions_read ON %s FOR SELECT TO %I USING (true)',
            t, current_user);
    END LOOP;
END
$$;
-- A server records its issuer; it signs assertions with the newest key.
CREATE POLICY record_issuer ON auth.token_issuers FOR INSERT TO portcullis_app
    WITH CHECK ((SELECT auth.ctx_text('app.purpose')) = 'token_issuer');
CREATE POLICY sign_assertions ON auth.sql_assertion_keys FOR SELECT TO portcullis_app
    USING ((SELECT auth.ctx_text('app.purpose')) = 'sql_assertion');
GRANT INSERT ON auth.token_issuers TO portcullis_app;
GRANT SELECT ON auth.sql_assertion_keys TO portcullis_app;

-- RFC 2104 over the built-in sha256: no extension needed.
CREATE FUNCTION auth.hmac_sha256(key bytea, message bytea) RETURNS bytea
    LANGUAGE plpgsql IMMUTABLE STRICT
    SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    block bytea := CASE WHEN length(key) > 64 THEN sha256(key) ELSE key END;
    inner_pad bytea := decode(repeat('36', 64), 'hex');
    outer_pad bytea := decode(repeat('5c', 64), 'hex');
BEGIN
    FOR i IN 0 .. length(block) - 1 LOOP
        inner_pad := set_byte(inner_pad, i, get_byte(block, i) # 54);
        outer_pad := set_byte(outer_pad, i, get_byte(block, i) # 92);
    END LOOP;
    RETURN sha256(outer_pad || sha256(inner_pad || message));
END
$$;

-- The user a signed assertion names, if its key is current, its MAC is
-- right and it has not expired; else nothing.
CREATE FUNCTION auth.verified_assertion(assertion text, OUT tenant_id uuid, OUT user_id uuid)
    LANGUAGE plpgsql STABLE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    parts text[];
    secret bytea;
    expected bytea;
BEGIN
    IF assertion IS NULL OR length(assertion) > 256 THEN
        RETURN;
    END IF;
    parts := string_to_array(assertion, '.');
    IF cardinality(parts) <> 6 OR parts[1] <> 'pcsa1' THEN
        RETURN;
    END IF;
    SELECT k.secret_key INTO secret
      FROM auth.sql_assertion_keys k
     WHERE k.key_id = parts[2] AND (k.retired_utc IS NULL OR k.retired_utc > now());
    IF secret IS NULL THEN
        RETURN;
    END IF;
    expected := auth.hmac_sha256(secret, convert_to(array_to_string(parts[1:5], '.'), 'UTF8'));
    -- Compared as hashes, so the time the comparison takes says nothing
    -- about the expected MAC.
    IF sha256(convert_to(encode(expected, 'hex'), 'UTF8'))
       IS DISTINCT FROM sha256(convert_to(parts[6], 'UTF8')) THEN
        RETURN;
    END IF;
    BEGIN
        IF parts[5]::bigint <= extract(epoch FROM now()) THEN
            RETURN;
        END IF;
        tenant_id := parts[3]::uuid;
        user_id := parts[4]::uuid;
    EXCEPTION WHEN others THEN
        tenant_id := NULL;
        user_id := NULL;
    END;
END
$$;

-- Whom a policy asks about: a signed assertion (auth.set_user_context with
-- one argument), else Portcullis's context (`app.tenant_id`, `app.user_id`),
-- else PostgREST's claims (`request.jwt.claims`: a user token of
-- Portcullis's issuer). Both of the last two set and disagreeing,
-- unreadable claims, a service token, a bad assertion: nobody. Then the
-- calling roles' bindings (the session's login role and the role it has
-- set, so SET ROLE escapes neither): signed mode ignores all but the
-- assertion, and a tenant list answers nobody outside it.
CREATE OR REPLACE FUNCTION auth.current_subject(OUT tenant_id uuid, OUT user_id uuid)
    LANGUAGE plpgsql STABLE
    SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    ctx_tenant uuid;
    ctx_user uuid;
    jwt_tenant uuid;
    jwt_user uuid;
    raw text := NULLIF(current_setting('request.jwt.claims', true), '');
    assertion text := NULLIF(current_setting('app.user_assertion', true), '');
    claims jsonb;
    signed boolean;
    bound boolean;
BEGIN
    SELECT coalesce(bool_or(r.signed_flag), false),
           bool_or(r.tenant_ids IS NOT NULL)
      INTO signed, bound
      FROM auth.decision_roles r
     WHERE r.role_name IN (session_user::text, current_setting('role'));
    IF assertion IS NOT NULL THEN
        SELECT a.tenant_id, a.user_id INTO tenant_id, user_id
          FROM auth.verified_assertion(assertion) a;
    ELSIF signed THEN
        RETURN;
    ELSE
        BEGIN
            ctx_tenant := NULLIF(current_setting('app.tenant_id', true), '')::uuid;
            ctx_user := NULLIF(current_setting('app.user_id', true), '')::uuid;
            IF raw IS NOT NULL THEN
                claims := raw::jsonb;
                IF claims ->> 'typ' = 'user' AND EXISTS (
                       SELECT 1 FROM auth.token_issuers i WHERE i.issuer_text = claims ->> 'iss') THEN
                    jwt_tenant := (claims ->> 'tid')::uuid;
                    jwt_user := (claims ->> 'sub')::uuid;
                END IF;
            END IF;
        EXCEPTION WHEN others THEN
            RETURN;
        END;
        IF ctx_user IS NOT NULL AND raw IS NOT NULL
           AND (ctx_tenant, ctx_user) IS DISTINCT FROM (jwt_tenant, jwt_user) THEN
            RETURN;
        END IF;
        IF ctx_user IS NOT NULL THEN
            tenant_id := ctx_tenant;
            user_id := ctx_user;
        ELSE
            tenant_id := jwt_tenant;
            user_id := jwt_user;
        END IF;
    END IF;
    IF bound AND NOT EXISTS (
           SELECT 1 FROM auth.decision_roles r
            WHERE r.role_name IN (session_user::text, current_setting('role'))
              AND r.tenant_ids IS NOT NULL
           HAVING bool_and(current_subject.tenant_id = ANY (r.tenant_ids))) THEN
        tenant_id := NULL;
    END IF;
    IF tenant_id IS NULL OR user_id IS NULL THEN
        tenant_id := NULL;
        user_id := NULL;
    END IF;
END
$$;

-- For a service in signed mode (or any service that prefers it): the rest
-- of this transaction asks about the user the assertion names. A bad or
-- expired assertion is an error here, and answers nobody later.
CREATE FUNCTION auth.set_user_context(assertion text) RETURNS void
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM auth.verified_assertion(assertion) a WHERE a.user_id IS NOT NULL) THEN
        RAISE EXCEPTION 'the assertion is not one Portcullis signed, or it has expired'
            USING ERRCODE = 'invalid_authorization_specification';
    END IF;
    PERFORM set_config('app.user_assertion', assertion, true);
END
$$;

-- The current user's tenant (NULL for nobody), for a table's WITH CHECK:
-- a row written for the user carries the user's tenant.
CREATE FUNCTION auth.current_tenant() RETURNS uuid
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS $$
        SELECT s.tenant_id FROM auth.active_subject() s
    $$;

REVOKE EXECUTE ON FUNCTION auth.hmac_sha256(bytea, bytea), auth.verified_assertion(text),
    auth.set_user_context(text), auth.current_tenant() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION auth.set_user_context(text), auth.current_tenant() TO portcullis_decision;
GRANT EXECUTE ON FUNCTION auth.hmac_sha256(bytea, bytea) TO portcullis_app;
