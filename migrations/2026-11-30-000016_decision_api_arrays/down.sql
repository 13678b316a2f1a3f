DROP FUNCTION auth.org_node_ids_with_capability(text);

CREATE OR REPLACE FUNCTION auth.org_nodes_with_capability(capability text) RETURNS SETOF uuid
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
