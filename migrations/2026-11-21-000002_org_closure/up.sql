-- Keep auth.org_node_paths exact. The functions run as the owner
-- (SECURITY DEFINER) because the application role may only read the closure
-- table; FORCE ROW LEVEL SECURITY still applies to the owner, so they see and
-- write only the tenant of the current context.
--
-- Errors carry their own SQLSTATEs so the service can map them precisely:
--   PT001  the new parent is the node itself or one of its descendants
--   PT002  the parent is not a node of the node's tenant
--   PT003  a node may not change tenant or id

CREATE FUNCTION auth.org_nodes_before_write() RETURNS trigger
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
        -- Serialise re-parenting within a tenant so two concurrent moves
        -- cannot each pass the cycle check and together form a cycle.
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

CREATE FUNCTION auth.org_nodes_after_insert() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    AS $$
BEGIN
    INSERT INTO auth.org_node_paths (tenant_id, ancestor_id, descendant_id, depth)
    SELECT NEW.tenant_id, NEW.id, NEW.id, 0
    UNION ALL
    SELECT NEW.tenant_id, p.ancestor_id, NEW.id, p.depth + 1
      FROM auth.org_node_paths p
     WHERE p.descendant_id = NEW.parent_id;
    RETURN NULL;
END
$$;

CREATE FUNCTION auth.org_nodes_after_reparent() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    AS $$
BEGIN
    -- Detach the subtree from its old ancestors...
    DELETE FROM auth.org_node_paths p
     WHERE p.descendant_id IN (SELECT s.descendant_id FROM auth.org_node_paths s WHERE s.ancestor_id = NEW.id)
       AND p.ancestor_id NOT IN (SELECT s.descendant_id FROM auth.org_node_paths s WHERE s.ancestor_id = NEW.id);
    -- ...and attach it below the new parent's ancestors (the parent included).
    INSERT INTO auth.org_node_paths (tenant_id, ancestor_id, descendant_id, depth)
    SELECT NEW.tenant_id, sup.ancestor_id, sub.descendant_id, sup.depth + sub.depth + 1
      FROM auth.org_node_paths sup
      JOIN auth.org_node_paths sub ON sub.ancestor_id = NEW.id
     WHERE sup.descendant_id = NEW.parent_id;
    RETURN NULL;
END
$$;

CREATE TRIGGER org_nodes_before_write
    BEFORE INSERT OR UPDATE ON auth.org_nodes
    FOR EACH ROW EXECUTE FUNCTION auth.org_nodes_before_write();

CREATE TRIGGER org_nodes_after_insert
    AFTER INSERT ON auth.org_nodes
    FOR EACH ROW EXECUTE FUNCTION auth.org_nodes_after_insert();

CREATE TRIGGER org_nodes_after_reparent
    AFTER UPDATE OF parent_id ON auth.org_nodes
    FOR EACH ROW WHEN (OLD.parent_id IS DISTINCT FROM NEW.parent_id)
    EXECUTE FUNCTION auth.org_nodes_after_reparent();

REVOKE ALL ON FUNCTION auth.org_nodes_before_write() FROM PUBLIC;
REVOKE ALL ON FUNCTION auth.org_nodes_after_insert() FROM PUBLIC;
REVOKE ALL ON FUNCTION auth.org_nodes_after_reparent() FROM PUBLIC;
