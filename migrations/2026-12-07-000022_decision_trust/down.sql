REVOKE EXECUTE ON FUNCTION auth.set_user_context(text), auth.current_tenant() FROM portcullis_decision;
DROP FUNCTION auth.current_tenant();
DROP FUNCTION auth.set_user_context(text);

-- Whom a policy asks about: Portcullis's context (`app.tenant_id`,
-- `app.user_id`, as auth.set_user_context sets them), or PostgREST's
-- verified claims (`request.jwt.claims`: `sub`, `tid`, a user token). Both
-- set and disagreeing, unreadable claims, or a service token: nobody.
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
    claims jsonb;
BEGIN
    BEGIN
        ctx_tenant := NULLIF(current_setting('app.tenant_id', true), '')::uuid;
        ctx_user := NULLIF(current_setting('app.user_id', true), '')::uuid;
        IF raw IS NOT NULL THEN
            claims := raw::jsonb;
            IF coalesce(claims ->> 'typ', 'user') = 'user' THEN
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
    IF tenant_id IS NULL OR user_id IS NULL THEN
        tenant_id := NULL;
        user_id := NULL;
    END IF;
END
$$;

DROP FUNCTION auth.verified_assertion(text);
DROP FUNCTION auth.hmac_sha256(bytea, bytea);
DROP TABLE auth.sql_assertion_keys;
DROP TABLE auth.token_issuers;
DROP TABLE auth.decision_roles;
