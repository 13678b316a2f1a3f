-- A tenant's roots (nodes without a parent), found without visiting every
-- tenant's: a listing asks whether the tenant has exactly one root, and
-- whether the subject covers it (then every node of the tenant is visible).
CREATE INDEX org_nodes_root_idx ON auth.org_nodes (tenant_id) WHERE parent_org_node_id IS NULL;
