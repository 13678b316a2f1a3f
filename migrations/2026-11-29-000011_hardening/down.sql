DROP TABLE auth.anonymous_throttles;

DROP POLICY revocation_write ON auth.token_revocations;
CREATE POLICY revocation_write ON auth.token_revocations FOR INSERT
    WITH CHECK (
        ((SELECT auth.ctx_uuid('app.service_id')) IS NOT NULL
            OR (SELECT auth.ctx_text('app.service_key')) IS NOT NULL
            OR (SELECT auth.ctx_uuid('app.tenant_id')) IS NOT NULL
            OR (SELECT auth.ctx_global_admin()))
        AND ((token_kind = 'service' AND EXISTS (SELECT 1 FROM auth.service_sessions s WHERE s.id = session_id))
          OR (token_kind = 'user' AND EXISTS (SELECT 1 FROM auth.refresh_sessions r WHERE r.id = session_id))));

DROP POLICY service_key_lookup ON auth.services;
DROP POLICY service_self ON auth.services;
CREATE POLICY service_self ON auth.services
    USING (id = (SELECT auth.ctx_uuid('app.service_id'))
        OR key = (SELECT auth.ctx_text('app.service_key'))
        OR (SELECT auth.ctx_global_admin()))
    WITH CHECK (id = (SELECT auth.ctx_uuid('app.service_id'))
        OR (SELECT auth.ctx_global_admin()));

DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['auth.service_secrets', 'auth.service_permissions', 'auth.service_sessions'] LOOP
        EXECUTE format('DROP POLICY service_key_lookup ON %s', t);
        EXECUTE format('DROP POLICY service_self ON %s', t);
        EXECUTE format(
            'CREATE POLICY service_self ON %s
                 USING (service_id = (SELECT auth.ctx_uuid(''app.service_id''))
                     OR service_id = (SELECT s.id FROM auth.services s
                                       WHERE s.key = (SELECT auth.ctx_text(''app.service_key'')))
                     OR (SELECT auth.ctx_global_admin()))
                 WITH CHECK (service_id = (SELECT auth.ctx_uuid(''app.service_id''))
                     OR service_id = (SELECT s.id FROM auth.services s
                                       WHERE s.key = (SELECT auth.ctx_text(''app.service_key'')))
                     OR (SELECT auth.ctx_global_admin()))', t);
    END LOOP;
END
$$;

-- The insert-side shared lock goes; moves keep their exclusive lock.
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
            PERFORM pg_advisory_xact_lock(hashtextextended('portcullis.org_tree:' || NEW.tenant_id::text, 0));
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

DROP FUNCTION auth.administered_capabilities(uuid, text[], uuid[]);
