-- The capability check, as set-returning SQL functions so one statement
-- answers a whole batch. SECURITY INVOKER (the default): row-level security
-- applies inside, with the caller's context, so a node or user of another
-- tenant is simply not there. Simple enough for PostgreSQL to inline into the
-- calling query.
--
-- A user U may exercise capability C at node N when U's tenant is active, U
-- is active, N is a node of U's tenant, N and all its ancestors are active, C
-- is in the catalogue, and an assignment of U in force now, held at N or an
-- ancestor of N, has a role that grants C.

CREATE FUNCTION auth.check_capabilities(p_user uuid, p_capabilities text[], p_nodes uuid[])
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
                     JOIN auth.org_nodes a ON a.id = p.ancestor_id
                    WHERE p.descendant_id = ch.node AND a.status <> 'active'
               ) THEN 'NODE_INACTIVE'
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

-- Every in-force assignment that grants each check, nearest first: the
-- explanation of an ALLOWED answer.
CREATE FUNCTION auth.explain_capabilities(p_user uuid, p_capabilities text[], p_nodes uuid[])
RETURNS TABLE (ordinal integer, assignment_id uuid, role_id uuid, role_label text, org_node_id uuid, depth integer)
LANGUAGE sql STABLE
AS $$
    SELECT c.ord::integer, oa.id, r.id, r.label, oa.org_node_id, p.depth
      FROM unnest(p_capabilities, p_nodes) WITH ORDINALITY AS c (capability, node, ord)
      JOIN auth.capabilities cap ON cap.key = c.capability
      JOIN auth.org_node_paths p ON p.descendant_id = c.node
      JOIN auth.org_assignments oa ON oa.org_node_id = p.ancestor_id AND oa.user_id = p_user
      JOIN auth.role_capabilities rc ON rc.role_id = oa.role_id AND rc.capability_id = cap.id
      JOIN auth.roles r ON r.id = oa.role_id
     WHERE oa.start_utc <= now()
       AND (oa.end_utc IS NULL OR oa.end_utc > now())
     ORDER BY c.ord, p.depth, oa.id
$$;

REVOKE ALL ON FUNCTION auth.check_capabilities(uuid, text[], uuid[]) FROM PUBLIC;
REVOKE ALL ON FUNCTION auth.explain_capabilities(uuid, text[], uuid[]) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION auth.check_capabilities(uuid, text[], uuid[]) TO portcullis_app;
GRANT EXECUTE ON FUNCTION auth.explain_capabilities(uuid, text[], uuid[]) TO portcullis_app;

-- Listing walks nodes in id order within a tenant (keyset pagination).
CREATE INDEX org_nodes_tenant_id_idx ON auth.org_nodes (tenant_id, id);
CREATE INDEX visibility_grants_node_idx ON auth.visibility_grants (org_node_id);
