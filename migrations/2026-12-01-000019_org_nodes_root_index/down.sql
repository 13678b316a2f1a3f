DROP INDEX auth.org_nodes_root_idx;
