CREATE OR REPLACE FUNCTION auth.bump_endpoint_catalogue_version() RETURNS trigger
    LANGUAGE plpgsql SET search_path = pg_catalog, auth AS $$
BEGIN
    UPDATE auth.endpoint_catalogue_version SET version_no = version_no + 1;
    -- Fail the change rather than leave servers with a stale catalogue.
    IF NOT FOUND THEN
        RAISE EXCEPTION 'the endpoint catalogue version could not be bumped';
    END IF;
    RETURN NULL;
END $$;

ALTER TABLE auth.endpoint_catalogue_version DROP COLUMN change_token;
