-- The change stream behind `Watch`: every audit row of a change that can
-- alter a decision, a listing or a holder list gets a position, in commit
-- order, and what it does to access. Built on the audit row the change
-- already writes in its own transaction (an outbox), so no logical
-- decoding, replication privilege or superuser is needed, and it works the
-- same through PgBouncer in transaction mode.
--
-- Commit order: the position is taken at COMMIT (a deferred trigger) under
-- a transaction-scoped advisory lock, which PostgreSQL releases only once
-- the commit is visible. So a transaction holding position p committed,
-- and became visible, before any transaction could take a position above
-- p: a reader that sees p sees everything below it that will ever exist.
-- Positions of a transaction that fails at COMMIT are never used (gaps).

-- The audit actions the stream carries.
CREATE FUNCTION audit.changes_access(action text) RETURNS boolean
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    SET search_path = pg_catalog, pg_temp
    AS $$
    SELECT action = ANY (ARRAY[
        'assignment.created', 'assignment.ended',
        'visibility.granted', 'visibility.revoked',
        'org.node_created', 'org.node_moved', 'org.node_renamed',
        'org.node_deactivated', 'org.node_reactivated',
        'role.created', 'role.renamed', 'role.capabilities_set',
        'capability.created',
        'user.created', 'user.deactivated', 'user.reactivated',
        'tenant.created', 'tenant.suspended', 'tenant.reactivated',
        'endpoint_policy.created', 'endpoint_policy.updated', 'endpoint_policy.deleted'
    ])
$$;

CREATE SEQUENCE audit.access_change_positions AS bigint;

CREATE TABLE audit.access_changes (
    change_position  bigint PRIMARY KEY,
    audit_id         uuid NOT NULL UNIQUE REFERENCES audit.audit_events (audit_id),
    tenant_id        uuid,
    -- When the position was taken, in the COMMIT: the commit time within
    -- the time the commit record takes to write.
    committed_utc    timestamptz NOT NULL,
    -- Whose decisions may have changed: these capabilities (NULL: any),
    -- at or below this node (NULL: anywhere in the tenant, or in every
    -- tenant for a global row), for these users (empty: not named).
    capability_keys  text[],
    subtree_root_id  uuid,
    user_ids         uuid[] NOT NULL DEFAULT '{}',
    -- The window in which the changed assignment or grant is in force,
    -- when the change has one: time changes access at its ends.
    effective_from   timestamptz,
    effective_until  timestamptz
);
CREATE INDEX access_changes_committed_idx ON audit.access_changes (committed_utc);

-- Where pruning has reached: every position at or below it may be gone.
CREATE TABLE audit.access_change_horizon (
    singleton       boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    pruned_through  bigint NOT NULL DEFAULT 0,
    pruned_utc      timestamptz
);
INSERT INTO audit.access_change_horizon DEFAULT VALUES;

ALTER TABLE audit.access_changes ENABLE ROW LEVEL SECURITY;
ALTER TABLE audit.access_changes FORCE ROW LEVEL SECURITY;
ALTER TABLE audit.access_change_horizon ENABLE ROW LEVEL SECURITY;
ALTER TABLE audit.access_change_horizon FORCE ROW LEVEL SECURITY;

-- What a change does to access, from its audit row (the values before and
-- after) and, for an assignment, its role's capabilities at the commit.
CREATE FUNCTION audit.access_change_effect(
    action text, entity uuid, payload jsonb,
    OUT capability_keys text[], OUT subtree_root_id uuid, OUT user_ids uuid[],
    OUT effective_from timestamptz, OUT effective_until timestamptz)
    LANGUAGE plpgsql STABLE
    SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    row_after jsonb := coalesce(payload -> 'after', 'null'::jsonb);
    row_before jsonb := coalesce(payload -> 'before', 'null'::jsonb);
    changed jsonb := CASE WHEN jsonb_typeof(row_after) = 'object' THEN row_after ELSE row_before END;
BEGIN
    capability_keys := NULL;
    subtree_root_id := NULL;
    user_ids := '{}';
    CASE split_part(action, '.', 1)
    WHEN 'assignment' THEN
        SELECT coalesce(array_agg(c.cap_key ORDER BY c.cap_key), '{}') INTO capability_keys
          FROM auth.role_capabilities rc
          JOIN auth.capabilities c ON c.cap_id = rc.cap_id
         WHERE rc.role_id = (changed ->> 'role_id')::uuid;
        subtree_root_id := (changed ->> 'org_node_id')::uuid;
        user_ids := ARRAY[(changed ->> 'user_id')::uuid];
        effective_from := (changed ->> 'start_utc')::timestamptz;
        effective_until := (changed ->> 'end_utc')::timestamptz;
    WHEN 'visibility' THEN
        -- Visibility changes listings, not capability holders.
        capability_keys := '{}';
        subtree_root_id := (changed ->> 'org_node_id')::uuid;
        user_ids := ARRAY[(changed ->> 'user_id')::uuid];
        effective_from := (changed ->> 'start_utc')::timestamptz;
        effective_until := (changed ->> 'end_utc')::timestamptz;
    WHEN 'org' THEN
        -- A rename changes listings' labels only; anything else changes
        -- what is held at and below the node.
        capability_keys := CASE WHEN action = 'org.node_renamed' THEN '{}' END;
        subtree_root_id := entity;
    WHEN 'role' THEN
        -- A role's holders gain or lose exactly the capabilities that
        -- entered or left it; a new or renamed role changes nobody's.
        IF action = 'role.capabilities_set' THEN
            SELECT coalesce(array_agg(k ORDER BY k), '{}') INTO capability_keys
              FROM (
                (SELECT jsonb_array_elements_text(coalesce(row_before -> 'capabilities', '[]'))
                 EXCEPT SELECT jsonb_array_elements_text(coalesce(row_after -> 'capabilities', '[]')))
                UNION
                (SELECT jsonb_array_elements_text(coalesce(row_after -> 'capabilities', '[]'))
                 EXCEPT SELECT jsonb_array_elements_text(coalesce(row_before -> 'capabilities', '[]')))
              ) AS moved(k);
        ELSE
            capability_keys := '{}';
        END IF;
    WHEN 'capability' THEN
        capability_keys := ARRAY[changed ->> 'key'];
    WHEN 'endpoint_policy' THEN
        SELECT coalesce(array_agg(DISTINCT k ORDER BY k), '{}') INTO capability_keys
          FROM (VALUES (row_before ->> 'capability'), (row_after ->> 'capability')) AS v(k)
         WHERE k IS NOT NULL;
    WHEN 'user' THEN
        capability_keys := CASE WHEN action = 'user.created' THEN '{}' END;
        user_ids := ARRAY[entity];
    ELSE
        -- Tenants: everything in the tenant.
        NULL;
    END CASE;
END
$$;

-- Fires at COMMIT: one committing writer at a time from here until its
-- commit is visible, so positions follow commit order.
CREATE FUNCTION audit.sequence_access_change() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS $$
BEGIN
    PERFORM pg_advisory_xact_lock(8102134921633660931);
    INSERT INTO audit.access_changes (
        change_position, audit_id, tenant_id, committed_utc,
        capability_keys, subtree_root_id, user_ids, effective_from, effective_until)
    SELECT nextval('audit.access_change_positions'), NEW.audit_id, NEW.tenant_id, clock_timestamp(),
           e.capability_keys, e.subtree_root_id, e.user_ids, e.effective_from, e.effective_until
      FROM audit.access_change_effect(NEW.action_key, NEW.entity_id, NEW.payload_json) e;
    RETURN NULL;
END
$$;
REVOKE ALL ON FUNCTION audit.sequence_access_change() FROM PUBLIC;

CREATE CONSTRAINT TRIGGER access_change_positioned
    AFTER INSERT ON audit.audit_events
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW
    WHEN (audit.changes_access(NEW.action_key))
    EXECUTE FUNCTION audit.sequence_access_change();

-- The trigger writes as this schema's owner; nobody else writes positions.
DO $$
BEGIN
    EXECUTE format(
        'CREATE POLICY positioned_at_commit ON audit.access_changes FOR INSERT TO %I WITH CHECK (true)',
        current_user);
END
$$;

-- The stream's readers: a server's `watch` context, fenced to its tenant
-- when it has one (a tenant's own changes and the global ones, such as the
-- catalogues, which every tenant's decisions read), or all of them.
CREATE POLICY watch_read ON audit.access_changes FOR SELECT TO portcullis_app
    USING ((SELECT auth.ctx_text('app.purpose')) = 'watch'
           AND (tenant_id IS NULL
                OR (SELECT auth.ctx_uuid('app.tenant_id')) IS NULL
                OR tenant_id = (SELECT auth.ctx_uuid('app.tenant_id'))));
CREATE POLICY watch_read ON audit.audit_events FOR SELECT TO portcullis_app
    USING ((SELECT auth.ctx_text('app.purpose')) = 'watch'
           AND audit.changes_access(action_key)
           AND (tenant_id IS NULL
                OR (SELECT auth.ctx_uuid('app.tenant_id')) IS NULL
                OR tenant_id = (SELECT auth.ctx_uuid('app.tenant_id'))));
CREATE POLICY watch_read ON audit.access_change_horizon FOR SELECT TO portcullis_app
    USING ((SELECT auth.ctx_text('app.purpose')) IN ('watch', 'watch_retention'));

-- Pruning past the retention: the positions and the horizon move together.
CREATE POLICY watch_retention ON audit.access_changes FOR SELECT TO portcullis_app
    USING ((SELECT auth.ctx_text('app.purpose')) = 'watch_retention');
CREATE POLICY watch_retention_prune ON audit.access_changes FOR DELETE TO portcullis_app
    USING ((SELECT auth.ctx_text('app.purpose')) = 'watch_retention');
CREATE POLICY watch_retention ON audit.access_change_horizon FOR UPDATE TO portcullis_app
    USING ((SELECT auth.ctx_text('app.purpose')) = 'watch_retention')
    WITH CHECK ((SELECT auth.ctx_text('app.purpose')) = 'watch_retention');

GRANT SELECT, DELETE ON audit.access_changes TO portcullis_app;
GRANT SELECT, UPDATE ON audit.access_change_horizon TO portcullis_app;
-- The last position handed out (a token beyond it is not this database's).
GRANT SELECT ON SEQUENCE audit.access_change_positions TO portcullis_app;
