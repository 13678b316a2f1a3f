DROP INDEX auth.org_nodes_inactive_idx;
