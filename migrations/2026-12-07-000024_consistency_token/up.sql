-- Consistency tokens from SQL. A service that changes Portcullis's model in
-- its own transaction cannot know where that transaction's commit will end
-- in the write-ahead log, so its token names the transaction instead:
-- `cts1.<key>.<xid>.<mac>`, HMAC-SHA-256 under the SQL assertion key (which
-- only Portcullis and these functions read). Presented to Portcullis after
-- the commit, the token asks for a read at least as fresh as the primary's
-- log once that transaction is known to have ended.

-- The calling transaction's token (it is given a transaction id if it has
-- none yet). Call it after the writes, present it after COMMIT.
CREATE FUNCTION auth.consistency_token() RETURNS text
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    key record;
    payload text;
BEGIN
    SELECT k.key_id, k.secret_key INTO key
      FROM auth.sql_assertion_keys k
     WHERE k.retired_utc IS NULL OR k.retired_utc > now()
     ORDER BY k.created_utc DESC
     LIMIT 1;
    IF key IS NULL THEN
        RAISE EXCEPTION 'no consistency token key: run the migrations'
            USING ERRCODE = 'object_not_in_prerequisite_state';
    END IF;
    payload := 'cts1.' || key.key_id || '.' || pg_current_xact_id()::text;
    RETURN payload || '.'
        || encode(auth.hmac_sha256(key.secret_key, convert_to(payload, 'UTF8')), 'hex');
END
$$;

-- What a read presenting `token` must be at least as fresh as, for
-- Portcullis: `valid` false for a token it did not make (or whose key has
-- retired); else the transaction's `state` (`committed`, `aborted`,
-- `in progress`, or NULL when too old to tell) and the primary's log
-- position now, which is past the commit of a transaction that has ended.
CREATE FUNCTION auth.consistency_token_point(
    token text, OUT valid boolean, OUT state text, OUT lsn bigint)
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    parts text[];
    secret bytea;
    expected bytea;
BEGIN
    valid := false;
    IF token IS NULL OR length(token) > 200 THEN
        RETURN;
    END IF;
    parts := string_to_array(token, '.');
    IF cardinality(parts) <> 4 OR parts[1] <> 'cts1' OR parts[3] !~ '^[0-9]{1,20}$' THEN
        RETURN;
    END IF;
    SELECT k.secret_key INTO secret
      FROM auth.sql_assertion_keys k
     WHERE k.key_id = parts[2] AND (k.retired_utc IS NULL OR k.retired_utc > now());
    IF secret IS NULL THEN
        RETURN;
    END IF;
    expected := auth.hmac_sha256(secret, convert_to(array_to_string(parts[1:3], '.'), 'UTF8'));
    -- Compared as hashes, so the time the comparison takes says nothing
    -- about the expected MAC.
    IF sha256(convert_to(encode(expected, 'hex'), 'UTF8'))
       IS DISTINCT FROM sha256(convert_to(parts[4], 'UTF8')) THEN
        RETURN;
    END IF;
    BEGIN
        state := pg_xact_status(parts[3]::xid8);
    EXCEPTION WHEN invalid_parameter_value OR numeric_value_out_of_range THEN
        -- A transaction id from the future: not one of this cluster's.
        RETURN;
    END;
    valid := true;
    lsn := (pg_current_wal_insert_lsn() - '0/0'::pg_lsn)::bigint;
END
$$;

REVOKE EXECUTE ON FUNCTION auth.consistency_token(), auth.consistency_token_point(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION auth.consistency_token() TO portcullis_app, portcullis_decision;
GRANT EXECUTE ON FUNCTION auth.consistency_token_point(text) TO portcullis_app;
