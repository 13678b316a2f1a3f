DROP TRIGGER org_nodes_after_reparent ON auth.org_nodes;
DROP TRIGGER org_nodes_after_insert ON auth.org_nodes;
DROP TRIGGER org_nodes_before_write ON auth.org_nodes;
DROP FUNCTION auth.org_nodes_after_reparent();
DROP FUNCTION auth.org_nodes_after_insert();
DROP FUNCTION auth.org_nodes_before_write();
