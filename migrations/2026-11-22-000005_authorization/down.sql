DROP INDEX auth.visibility_grants_node_idx;
DROP INDEX auth.org_nodes_tenant_id_idx;
DROP FUNCTION auth.explain_capabilities(uuid, text[], uuid[]);
DROP FUNCTION auth.check_capabilities(uuid, text[], uuid[]);
