DROP FUNCTION auth.visible_org_nodes(text);
DROP FUNCTION auth.has_capability(text, uuid);
DROP FUNCTION auth.org_nodes_with_capability(text);
DROP FUNCTION auth.active_subject();
DROP FUNCTION auth.set_user_context(uuid, uuid);
DROP FUNCTION auth.current_subject();
REVOKE USAGE ON SCHEMA auth FROM portcullis_decision;

DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY[
        'auth.tenants', 'auth.users', 'auth.org_nodes', 'auth.org_node_paths',
        'auth.capabilities', 'auth.role_capabilities', 'auth.org_assignments',
        'auth.visibility_grants'
    ] LOOP
        EXECUTE format('DROP POLICY decision_functions_read ON %s', t);
    END LOOP;
END
$$;

GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA auth TO PUBLIC;
REVOKE EXECUTE ON FUNCTION auth.ctx_uuid(text), auth.ctx_text(text), auth.ctx_global_admin() FROM PUBLIC;
