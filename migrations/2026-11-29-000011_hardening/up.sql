-- Hardening after an adversarial review (issue 13).

-- 1. Administration asks "does this user hold C at N?" without the node's
-- activity: a delegate who deactivated a node can still reactivate it, end
-- assignments and revoke grants there. Otherwise the same rules as
-- auth.check_capabilities (tenant, user, catalogue, assignments in force).
CREATE FUNCTION auth.administered_capabilities(p_user uuid, p_capabilities text[], p_nodes uuid[])
RETURNS TABLE (ordinal integer, reason text)
LANGUAGE sql STABLE
AS $$
    WITH subject AS (
        SELECT u.status AS user_status, t.status AS tenant_status
          FROM auth.users u
          JOIN auth.tenants t ON t.id = u.tenant_id
         WHERE u.id = p_user
    ),
    checks AS (
        SELECT c.ord::integer AS ordinal, c.capability, c.node
          FROM unnest(p_capabilities, p_nodes) WITH ORDINALITY AS c (capability, node, ord)
    )
    SELECT ch.ordinal,
           CASE
               WHEN s.tenant_status IS NULL THEN 'UNKNOWN_USER'
               WHEN s.tenant_status <> 'active' THEN 'TENANT_SUSPENDED'
               WHEN s.user_status <> 'active' THEN 'USER_INACTIVE'
               WHEN cap.id IS NULL THEN 'UNKNOWN_CAPABILITY'
               WHEN n.id IS NULL THEN 'UNKNOWN_ORG_NODE'
               WHEN EXISTS (
                   SELECT 1
                     FROM auth.org_node_paths p
                     JOIN auth.org_assignments oa
                       ON oa.org_node_id = p.ancestor_id AND oa.user_id = p_user
                     JOIN auth.role_capabilities rc
                       ON rc.role_id = oa.role_id AND rc.capability_id = cap.id
                    WHERE p.descendant_id = ch.node
                      AND oa.start_utc <= now()
                      AND (oa.end_utc IS NULL OR oa.end_utc > now())
               ) THEN 'ALLOWED'
               ELSE 'NO_MATCHING_ASSIGNMENT'
           END
      FROM checks ch
      LEFT JOIN subject s ON true
      LEFT JOIN auth.capabilities cap ON cap.key = ch.capability
      LEFT JOIN auth.org_nodes n ON n.id = ch.node
     ORDER BY ch.ordinal
$$;
REVOKE ALL ON FUNCTION auth.administered_capabilities(uuid, text[], uuid[]) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION auth.administered_capabilities(uuid, text[], uuid[]) TO portcullis_app;

-- 4. Inserts take the per-tenant tree lock shared, moves take it
-- exclusive: a node created under a subtree that is being moved waits for
-- the move and then copies its parent's new ancestors (each statement of a
-- volatile plpgsql function reads a fresh snapshot), so the closure stays
-- exact. Inserts do not wait for each other.
CREATE OR REPLACE FUNCTION auth.org_nodes_before_write() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    AS $$
BEGIN
    IF TG_OP = 'UPDATE' THEN
        IF NEW.id <> OLD.id OR NEW.tenant_id <> OLD.tenant_id THEN
            RAISE EXCEPTION 'an org node cannot change its id or tenant'
                USING ERRCODE = 'PT003';
        END IF;
        IF NEW.parent_id IS NOT DISTINCT FROM OLD.parent_id THEN
            RETURN NEW;
        END IF;
    END IF;

    IF NEW.parent_id IS NOT NULL THEN
        IF TG_OP = 'UPDATE' THEN
            -- Two concurrent moves cannot each pass the cycle check and
            -- together form a cycle; an insert cannot copy ancestors a
            -- move is replacing.
            PERFORM pg_advisory_xact_lock(hashtextextended('portcullis.org_tree:' || NEW.tenant_id::text, 0));
        ELSE
            PERFORM pg_advisory_xact_lock_shared(hashtextextended('portcullis.org_tree:' || NEW.tenant_id::text, 0));
        END IF;
        IF NOT EXISTS (SELECT 1 FROM auth.org_nodes n
                        WHERE n.id = NEW.parent_id AND n.tenant_id = NEW.tenant_id) THEN
            RAISE EXCEPTION 'parent org node % is not in the tenant of node %', NEW.parent_id, NEW.id
                USING ERRCODE = 'PT002';
        END IF;
        IF TG_OP = 'UPDATE' AND EXISTS (SELECT 1 FROM auth.org_node_paths p
                        WHERE p.ancestor_id = NEW.id AND p.descendant_id = NEW.parent_id) THEN
            RAISE EXCEPTION 'org node % cannot move under its own descendant %', NEW.id, NEW.parent_id
                USING ERRCODE = 'PT001';
        END IF;
    END IF;
    RETURN NEW;
END
$$;

-- 11. Pre-authentication contexts read, never write. `app.service_key` is
-- chosen by an unauthenticated caller: it may find the one service account
-- it names (and that account's secrets, permissions and sessions), but
-- every write needs the authenticated `app.service_id` (or operator
-- tooling). A service cannot move itself to another tenant.
DROP POLICY service_self ON auth.services;
CREATE POLICY service_self ON auth.services
    USING (id = (SELECT auth.ctx_uuid('app.service_id')) OR (SELECT auth.ctx_global_admin()))
    WITH CHECK ((id = (SELECT auth.ctx_uuid('app.service_id'))
                 AND tenant_id IS NOT DISTINCT FROM (SELECT auth.ctx_uuid('app.tenant_id')))
             OR (SELECT auth.ctx_global_admin()));
CREATE POLICY service_key_lookup ON auth.services FOR SELECT
    USING (key = (SELECT auth.ctx_text('app.service_key')));

DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['auth.service_secrets', 'auth.service_permissions', 'auth.service_sessions'] LOOP
        EXECUTE format('DROP POLICY service_self ON %s', t);
        EXECUTE format(
            'CREATE POLICY service_self ON %s
                 USING (service_id = (SELECT auth.ctx_uuid(''app.service_id''))
                     OR (SELECT auth.ctx_global_admin()))
                 WITH CHECK (service_id = (SELECT auth.ctx_uuid(''app.service_id''))
                     OR (SELECT auth.ctx_global_admin()))', t);
        EXECUTE format(
            'CREATE POLICY service_key_lookup ON %s FOR SELECT
                 USING (service_id = (SELECT s.id FROM auth.services s
                                       WHERE s.key = (SELECT auth.ctx_text(''app.service_key''))))', t);
    END LOOP;
END
$$;

-- Revoking needs an authenticated context too (never the presented key).
DROP POLICY revocation_write ON auth.token_revocations;
CREATE POLICY revocation_write ON auth.token_revocations FOR INSERT
    WITH CHECK (
        ((SELECT auth.ctx_uuid('app.service_id')) IS NOT NULL
            OR (SELECT auth.ctx_uuid('app.tenant_id')) IS NOT NULL
            OR (SELECT auth.ctx_global_admin()))
        AND ((token_kind = 'service' AND EXISTS (SELECT 1 FROM auth.service_sessions s WHERE s.id = session_id))
          OR (token_kind = 'user' AND EXISTS (SELECT 1 FROM auth.refresh_sessions r WHERE r.id = session_id))));

-- 2, 3, 8, 12. Counters for callers who have not authenticated and may not
-- name a real tenant: per client address (login failures in any tenant or
-- none, code requests, password resets, invitation acceptances), per
-- presented service key (refused exchanges) and per invitation (one
-- acceptance hashing at a time). A transaction sees only the rows of the
-- address it comes from (`app.client_address`), the key it presents
-- (`app.service_key`) and the invitation its token names
-- (`app.invitation_id`).
CREATE TABLE auth.anonymous_throttles (
    scope              text NOT NULL CHECK (scope IN ('address', 'service_key', 'invitation')),
    subject            text NOT NULL CHECK (length(subject) <= 400),
    counter            text NOT NULL CHECK (length(counter) <= 64),
    failures           integer NOT NULL DEFAULT 0 CHECK (failures >= 0),
    window_started_at  timestamptz NOT NULL DEFAULT now(),
    locked_until       timestamptz,
    PRIMARY KEY (scope, subject, counter)
);
ALTER TABLE auth.anonymous_throttles ENABLE ROW LEVEL SECURITY;
ALTER TABLE auth.anonymous_throttles FORCE ROW LEVEL SECURITY;
CREATE POLICY own_address_key_or_invitation ON auth.anonymous_throttles
    USING ((scope = 'address' AND subject = (SELECT auth.ctx_text('app.client_address')))
        OR (scope = 'service_key' AND subject = (SELECT auth.ctx_text('app.service_key')))
        OR (scope = 'invitation' AND subject = (SELECT auth.ctx_text('app.invitation_id'))))
    WITH CHECK ((scope = 'address' AND subject = (SELECT auth.ctx_text('app.client_address')))
        OR (scope = 'service_key' AND subject = (SELECT auth.ctx_text('app.service_key')))
        OR (scope = 'invitation' AND subject = (SELECT auth.ctx_text('app.invitation_id'))));
GRANT SELECT, INSERT, UPDATE ON auth.anonymous_throttles TO portcullis_app;
