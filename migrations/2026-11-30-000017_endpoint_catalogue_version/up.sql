-- A counter bumped by every change to the endpoint catalogue, so a server
-- may keep the catalogue (and its routers) in memory and confirm it is
-- current in the same round trip as the decision: it reads this one row
-- beside the check and reloads when the number moved.
CREATE TABLE auth.endpoint_catalogue_version (
    singleton_flag boolean PRIMARY KEY DEFAULT true CHECK (singleton_flag),
    version_no     bigint NOT NULL
);
INSERT INTO auth.endpoint_catalogue_version (singleton_flag, version_no) VALUES (true, 1);

ALTER TABLE auth.endpoint_catalogue_version ENABLE ROW LEVEL SECURITY;
ALTER TABLE auth.endpoint_catalogue_version FORCE ROW LEVEL SECURITY;

-- Read by whoever may read the catalogue.
CREATE POLICY catalogue_version_read ON auth.endpoint_catalogue_version FOR SELECT
    USING ((SELECT auth.ctx_uuid('app.tenant_id')) IS NOT NULL
        OR (SELECT auth.ctx_uuid('app.service_id')) IS NOT NULL
        OR (SELECT auth.ctx_global_admin()));
-- Bumped by the trigger below, as whoever changed the catalogue: the
-- catalogue's own writers, global administrators.
CREATE POLICY catalogue_version_bump ON auth.endpoint_catalogue_version FOR UPDATE
    USING ((SELECT auth.ctx_global_admin()))
    WITH CHECK ((SELECT auth.ctx_global_admin()));

CREATE FUNCTION auth.bump_endpoint_catalogue_version() RETURNS trigger
    LANGUAGE plpgsql SET search_path = pg_catalog, auth AS $$
BEGIN
    UPDATE auth.endpoint_catalogue_version SET version_no = version_no + 1;
    -- Fail the change rather than leave servers with a stale catalogue.
    IF NOT FOUND THEN
        RAISE EXCEPTION 'the endpoint catalogue version could not be bumped';
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER endpoint_policy_changed
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON auth.endpoint_policy
    FOR EACH STATEMENT EXECUTE FUNCTION auth.bump_endpoint_catalogue_version();

GRANT SELECT, UPDATE ON auth.endpoint_catalogue_version TO portcullis_app;
REVOKE EXECUTE ON FUNCTION auth.bump_endpoint_catalogue_version() FROM PUBLIC;
