-- The endpoint catalogue (the primer's auth.endpoint_policy): which
-- capability an endpoint of a service needs, and where the request names
-- the org node it applies to. Global, like the capability catalogue: read
-- by any identified caller, written by global administrators; every change
-- is also kept in audit.policy_change_log.
CREATE TABLE auth.endpoint_policy (
    endpoint_id        uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    service_key        text NOT NULL CHECK (service_key ~ '^[a-z][a-z0-9_.-]{0,62}$'),
    method_code        text NOT NULL
                       CHECK (method_code IN ('GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS', 'ANY')),
    route_pattern      text NOT NULL CHECK (route_pattern ~ '^/' AND length(route_pattern) <= 500),
    capability         text NOT NULL REFERENCES auth.capabilities (cap_key),
    node_source_code   text NOT NULL CHECK (node_source_code IN ('path', 'header', 'field')),
    node_source_name   text NOT NULL CHECK (length(node_source_name) BETWEEN 1 AND 100),
    created_utc        timestamptz NOT NULL DEFAULT now(),
    updated_utc        timestamptz NOT NULL DEFAULT now(),
    UNIQUE (service_key, method_code, route_pattern)
);

-- The primer's validation query, `SELECT * FROM auth.policy_capability
-- WHERE capability = '…'`, as a view over the catalogue (with the caller's
-- rights, so the table's policies apply).
CREATE VIEW auth.policy_capability WITH (security_invoker = true) AS
    SELECT endpoint_id AS policy_id, service_key, method_code, route_pattern, capability,
           node_source_code, node_source_name
      FROM auth.endpoint_policy;

-- Every change to the catalogue, before and after.
CREATE TABLE audit.policy_change_log (
    change_id      uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    occurred_utc   timestamptz NOT NULL DEFAULT now(),
    actor_kind_code text NOT NULL CHECK (actor_kind_code IN ('service', 'system')),
    actor_svc_id   uuid,
    action_key     text NOT NULL CHECK (action_key IN ('endpoint_policy.created', 'endpoint_policy.updated', 'endpoint_policy.deleted')),
    endpoint_id    uuid NOT NULL,
    before_json    jsonb,
    after_json     jsonb,
    request_id     text
);
CREATE INDEX policy_change_log_endpoint_idx ON audit.policy_change_log (endpoint_id, occurred_utc);

ALTER TABLE auth.endpoint_policy ENABLE ROW LEVEL SECURITY;
ALTER TABLE auth.endpoint_policy FORCE ROW LEVEL SECURITY;
ALTER TABLE audit.policy_change_log ENABLE ROW LEVEL SECURITY;
ALTER TABLE audit.policy_change_log FORCE ROW LEVEL SECURITY;

CREATE POLICY catalogue_read ON auth.endpoint_policy FOR SELECT
    USING ((SELECT auth.ctx_uuid('app.tenant_id')) IS NOT NULL
        OR (SELECT auth.ctx_uuid('app.service_id')) IS NOT NULL
        OR (SELECT auth.ctx_global_admin()));
CREATE POLICY catalogue_insert ON auth.endpoint_policy FOR INSERT
    WITH CHECK ((SELECT auth.ctx_global_admin()));
CREATE POLICY catalogue_update ON auth.endpoint_policy FOR UPDATE
    USING ((SELECT auth.ctx_global_admin()))
    WITH CHECK ((SELECT auth.ctx_global_admin()));
CREATE POLICY catalogue_delete ON auth.endpoint_policy FOR DELETE
    USING ((SELECT auth.ctx_global_admin()));

CREATE POLICY change_log_append ON audit.policy_change_log FOR INSERT
    WITH CHECK ((SELECT auth.ctx_global_admin()));
CREATE POLICY change_log_read ON audit.policy_change_log FOR SELECT
    USING ((SELECT auth.ctx_global_admin()));

GRANT SELECT, INSERT, UPDATE, DELETE ON auth.endpoint_policy TO portcullis_app;
GRANT SELECT ON auth.policy_capability TO portcullis_app;
GRANT SELECT, INSERT ON audit.policy_change_log TO portcullis_app;
