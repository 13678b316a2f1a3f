-- Listings skip subtrees under inactive nodes; finding those few nodes must
-- not scan the tenant.
CREATE INDEX org_nodes_inactive_idx ON auth.org_nodes (tenant_id) WHERE status <> 'active';
