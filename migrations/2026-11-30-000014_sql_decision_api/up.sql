-- The SQL decision API: what other services' row-level-security policies
-- call to ask Portcullis's model, in the same transaction as their query.
--
-- Granted (EXECUTE, and USAGE on schema auth) to the NOLOGIN group role
-- portcullis_decision, which `db provision-service` grants to each
-- service's application role. Those roles still hold no privilege on any
-- auth table: the functions are SECURITY DEFINER, run as this schema's
-- owner, and answer only a boolean or node ids of the current user's own
-- tenant.

-- Nothing in auth is callable by PUBLIC; Portcullis's own role keeps what it
-- had.
REVOKE EXECUTE ON ALL FUNCTIONS IN SCHEMA auth FROM PUBLIC;
GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA auth TO portcullis_app;

-- The functions run as the schema's owner, on whom row-level security is
-- forced: it may read the model's tables (never write through these
-- policies). They exist for that role alone, so Portcullis's own queries
-- are not affected.
DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY[
        'auth.tenants', 'auth.users', 'auth.org_nodes', 'auth.org_node_paths',
        'auth.capabilities', 'auth.role_capabilities', 'auth.org_assignments',
        'auth.visibility_grants'
    ] LOOP
        EXECUTE format(
            'CREATE POLICY decision_functions_read ON %s FOR SELECT TO %I USING (true)',
            t, current_user);
    END LOOP;
END
$$;

-- Whom a policy asks about: Portcullis's context (`app.tenant_id`,
-- `app.user_id`, as auth.set_user_context sets them), or PostgREST's
-- verified claims (`request.jwt.claims`: `sub`, `tid`, a user token). Both
-- set and disagreeing, unreadable claims, or a service token: nobody.
CREATE FUNCTION auth.current_subject(OUT tenant_id uuid, OUT user_id uuid)
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

-- For a service that authenticated the user itself (the VPD playbook's
-- RLSContextFilter): the rest of this transaction asks about this user.
CREATE FUNCTION auth.set_user_context(tenant_id uuid, user_id uuid) RETURNS void
    LANGUAGE sql VOLATILE
    SET search_path = pg_catalog, pg_temp
    AS $$
        SELECT set_config('app.tenant_id', coalesce(tenant_id::text, ''), true),
               set_config('app.user_id', coalesce(user_id::text, ''), true);
    $$;

-- The current user, if they and their tenant are active.
CREATE FUNCTION auth.active_subject(OUT tenant_id uuid, OUT user_id uuid)
    LANGUAGE sql STABLE
    SET search_path = pg_catalog, pg_temp
    AS $$
        SELECT s.tenant_id, s.user_id
          FROM auth.current_subject() s
          JOIN auth.users u ON u.user_id = s.user_id AND u.tenant_id = s.tenant_id
          JOIN auth.tenants t ON t.tenant_id = s.tenant_id
         WHERE u.user_state_code = 'active' AND t.tenant_state_code = 'active'
    $$;

-- Every node where the current user holds `capability` (assignments in
-- force, the subtree below each, nothing under an inactive node): what
-- CheckCapability allows. For policies written
-- `org_node_id IN (SELECT auth.org_nodes_with_capability('…'))`, evaluated
-- once per statement.
CREATE FUNCTION auth.org_nodes_with_capability(capability text) RETURNS SETOF uuid
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    ROWS 100
    AS $$
        SELECT DISTINCT p.descendant_org_node_id
          FROM auth.active_subject() s
          JOIN auth.capabilities cap ON cap.cap_key = capability
          JOIN auth.org_assignments oa
            ON oa.user_id = s.user_id AND oa.tenant_id = s.tenant_id
           AND oa.start_utc <= now() AND (oa.end_utc IS NULL OR oa.end_utc > now())
          JOIN auth.role_capabilities rc ON rc.role_id = oa.role_id AND rc.cap_id = cap.cap_id
          JOIN auth.org_node_paths p ON p.ancestor_org_node_id = oa.org_node_id
         WHERE NOT EXISTS (
                   SELECT 1
                     FROM auth.org_node_paths q
                     JOIN auth.org_nodes a ON a.org_node_id = q.ancestor_org_node_id
                    WHERE q.descendant_org_node_id = p.descendant_org_node_id
                      AND NOT a.active_flag)
    $$;

-- Whether the current user holds `capability` at `org_node`.
CREATE FUNCTION auth.has_capability(capability text, org_node uuid) RETURNS boolean
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS $$
        SELECT EXISTS (
            SELECT 1
              FROM auth.active_subject() s
              JOIN auth.org_nodes n ON n.org_node_id = org_node AND n.tenant_id = s.tenant_id
              JOIN auth.check_capabilities(s.user_id, ARRAY[capability], ARRAY[org_node]) c
                ON c.reason = 'ALLOWED')
    $$;

-- What ListVisibleOrgNodes lists for the current user: the subtrees of
-- their assignments in force and of their grants in force (`analyze`: only
-- analyze grants; `read` or `any`: all), nothing under an inactive node.
CREATE FUNCTION auth.visible_org_nodes(scope text) RETURNS SETOF uuid
    LANGUAGE plpgsql STABLE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    ROWS 100
    AS $$
BEGIN
    IF scope IS NULL OR scope NOT IN ('any', 'read', 'analyze') THEN
        RAISE EXCEPTION 'scope must be any, read or analyze, not %', coalesce(scope, 'NULL')
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    RETURN QUERY
        WITH covering AS (
            SELECT oa.org_node_id
              FROM auth.active_subject() s
              JOIN auth.org_assignments oa
                ON oa.user_id = s.user_id AND oa.tenant_id = s.tenant_id
             WHERE oa.start_utc <= now() AND (oa.end_utc IS NULL OR oa.end_utc > now())
            UNION
            SELECT vg.org_node_id
              FROM auth.active_subject() s
              JOIN auth.visibility_grants vg
                ON vg.user_id = s.user_id AND vg.tenant_id = s.tenant_id
             WHERE vg.start_utc <= now() AND (vg.end_utc IS NULL OR vg.end_utc > now())
               AND (scope <> 'analyze' OR vg.access_scope_code = 'analyze')
        )
        SELECT DISTINCT p.descendant_org_node_id
          FROM covering c
          JOIN auth.org_node_paths p ON p.ancestor_org_node_id = c.org_node_id
         WHERE NOT EXISTS (
                   SELECT 1
                     FROM auth.org_node_paths q
                     JOIN auth.org_nodes a ON a.org_node_id = q.ancestor_org_node_id
                    WHERE q.descendant_org_node_id = p.descendant_org_node_id
                      AND NOT a.active_flag);
END
$$;

REVOKE EXECUTE ON FUNCTION auth.current_subject(), auth.active_subject(),
    auth.set_user_context(uuid, uuid), auth.org_nodes_with_capability(text),
    auth.has_capability(text, uuid), auth.visible_org_nodes(text) FROM PUBLIC;
GRANT USAGE ON SCHEMA auth TO portcullis_decision;
GRANT EXECUTE ON FUNCTION auth.set_user_context(uuid, uuid),
    auth.org_nodes_with_capability(text), auth.has_capability(text, uuid),
    auth.visible_org_nodes(text) TO portcullis_decision;
