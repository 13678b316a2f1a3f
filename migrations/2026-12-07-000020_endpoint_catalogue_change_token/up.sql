-- The catalogue's number can go back (a restore, a manual fix) and climb
-- to the value a server's copy carries while the entries differ. Every
-- change also writes a new random token, and a server trusts its copy only
-- when both agree.
ALTER TABLE auth.endpoint_catalogue_version
    ADD COLUMN change_token uuid NOT NULL DEFAULT gen_random_uuid();

CREATE OR REPLACE FUNCTION auth.bump_endpoint_catalogue_version() RETURNS trigger
    LANGUAGE plpgsql SET search_path = pg_catalog, auth AS $$
BEGIN
    UPDATE auth.endpoint_catalogue_version
       SET version_no = version_no + 1, change_token = gen_random_uuid();
    -- Fail the change rather than leave servers with a stale catalogue.
    IF NOT FOUND THEN
        RAISE EXCEPTION 'the endpoint catalogue version could not be bumped';
    END IF;
    RETURN NULL;
END $$;
