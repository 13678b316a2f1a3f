-- The seed's schema ("Migration 001" of the platform's schema story) is the
-- contract other teams write SQL, policies and dashboards against: its
-- column names, types and CHECK values, and its identity model (logins on
-- users, one identity per provider). Every row is kept; see the README's
-- "Schema" section for what the product adds and where it is stricter.
--
-- Policies, indexes, constraints and triggers' column lists follow renamed
-- columns by themselves; function bodies are text and are replaced below.

-- The data moves below run as the owner, which FORCE ROW LEVEL SECURITY
-- would fence like anyone else (no context: no rows). Lifted for this
-- transaction only, restored at the end.
ALTER TABLE auth.users NO FORCE ROW LEVEL SECURITY;
ALTER TABLE auth.user_identities NO FORCE ROW LEVEL SECURITY;
ALTER TABLE auth.refresh_sessions NO FORCE ROW LEVEL SECURITY;
ALTER TABLE auth.invitations NO FORCE ROW LEVEL SECURITY;
ALTER TABLE audit.audit_events NO FORCE ROW LEVEL SECURITY;

-- Tenants
ALTER TABLE auth.tenants RENAME COLUMN id TO tenant_id;
ALTER TABLE auth.tenants RENAME COLUMN slug TO tenant_slug;
ALTER TABLE auth.tenants RENAME COLUMN name TO tenant_label;
ALTER TABLE auth.tenants RENAME COLUMN status TO tenant_state_code;
ALTER TABLE auth.tenants RENAME COLUMN created_at TO created_utc;
ALTER TABLE auth.tenants RENAME COLUMN updated_at TO updated_utc;

-- Users: the logins move here from the identities (an email stored
-- lower-case, an E.164 phone), unique per tenant as in the seed.
ALTER TABLE auth.users RENAME COLUMN id TO user_id;
ALTER TABLE auth.users RENAME COLUMN display_name TO display_label;
ALTER TABLE auth.users RENAME COLUMN status TO user_state_code;
ALTER TABLE auth.users RENAME COLUMN created_at TO created_utc;
ALTER TABLE auth.users RENAME COLUMN updated_at TO updated_utc;
ALTER TABLE auth.users
    ADD COLUMN email_addr text CHECK (length(email_addr) BETWEEN 3 AND 320),
    ADD COLUMN phone_e164 text CHECK (phone_e164 ~ '^\+[1-9][0-9]{6,14}$');
UPDATE auth.users u
   SET email_addr = (SELECT i.login FROM auth.user_identities i
                      WHERE i.user_id = u.user_id AND i.kind = 'email'
                      ORDER BY i.created_at, i.id LIMIT 1),
       phone_e164 = (SELECT i.login FROM auth.user_identities i
                      WHERE i.user_id = u.user_id AND i.kind = 'phone'
                      ORDER BY i.created_at, i.id LIMIT 1);
ALTER TABLE auth.users
    ADD CONSTRAINT users_tenant_email_key UNIQUE (tenant_id, email_addr),
    ADD CONSTRAINT users_tenant_phone_key UNIQUE (tenant_id, phone_e164);

-- User identities: one per provider. Every user who could log in keeps one
-- `password` identity (its hash, NULL for code-only users) carrying the
-- verification flags of the logins it replaces; `google` identities are
-- found by the provider's subject.
ALTER TABLE auth.user_identities RENAME COLUMN id TO ident_id;
ALTER TABLE auth.user_identities RENAME COLUMN password_hash TO password_hash_text;
ALTER TABLE auth.user_identities RENAME COLUMN created_at TO created_utc;
ALTER TABLE auth.user_identities RENAME COLUMN updated_at TO updated_utc;
ALTER TABLE auth.user_identities
    ADD COLUMN ident_provider_code text NOT NULL DEFAULT 'password'
        CHECK (ident_provider_code IN ('password', 'google')),
    ADD COLUMN provider_subject_key text CHECK (length(provider_subject_key) BETWEEN 1 AND 255),
    ADD COLUMN email_verified_flag boolean NOT NULL DEFAULT false,
    ADD COLUMN phone_verified_flag boolean NOT NULL DEFAULT false;
WITH merged AS (
    SELECT user_id,
           (array_agg(ident_id ORDER BY created_utc, ident_id))[1] AS keep,
           bool_or(kind = 'email' AND verified_at IS NOT NULL) AS email_verified,
           bool_or(kind = 'phone' AND verified_at IS NOT NULL) AS phone_verified,
           (array_agg(password_hash_text ORDER BY updated_utc DESC)
                FILTER (WHERE password_hash_text IS NOT NULL))[1] AS hash,
           max(updated_utc) AS updated
      FROM auth.user_identities
     GROUP BY user_id
)
UPDATE auth.user_identities i
   SET email_verified_flag = m.email_verified,
       phone_verified_flag = m.phone_verified,
       password_hash_text = m.hash,
       updated_utc = m.updated
  FROM merged m
 WHERE i.ident_id = m.keep;
DELETE FROM auth.user_identities i
 WHERE i.ident_id <> (SELECT (array_agg(o.ident_id ORDER BY o.created_utc, o.ident_id))[1]
                        FROM auth.user_identities o WHERE o.user_id = i.user_id);
ALTER TABLE auth.user_identities
    DROP COLUMN kind,
    DROP COLUMN login,
    DROP COLUMN verified_at,
    ALTER COLUMN ident_provider_code DROP DEFAULT,
    ADD CONSTRAINT user_identities_provider_subject_key UNIQUE (ident_provider_code, provider_subject_key),
    ADD CONSTRAINT user_identities_user_provider_key UNIQUE (user_id, ident_provider_code),
    -- A federated identity is found by its subject; a password one has none.
    ADD CONSTRAINT user_identities_subject_check
        CHECK ((ident_provider_code = 'password') = (provider_subject_key IS NULL));

-- Refresh sessions: token hashes as hex text.
ALTER TABLE auth.refresh_sessions RENAME COLUMN id TO session_id;
ALTER TABLE auth.refresh_sessions RENAME COLUMN generation TO rotation_count;
ALTER TABLE auth.refresh_sessions RENAME COLUMN user_agent TO client_user_agent_text;
ALTER TABLE auth.refresh_sessions RENAME COLUMN client_addr TO client_ip_text;
ALTER TABLE auth.refresh_sessions RENAME COLUMN created_at TO created_utc;
ALTER TABLE auth.refresh_sessions RENAME COLUMN last_refreshed_at TO last_refreshed_utc;
ALTER TABLE auth.refresh_sessions RENAME COLUMN expires_at TO expiry_utc;
ALTER TABLE auth.refresh_sessions RENAME COLUMN revoked_at TO revoked_utc;
ALTER TABLE auth.refresh_sessions RENAME COLUMN revoked_reason TO revoked_reason_code;
ALTER TABLE auth.refresh_sessions
    ALTER COLUMN token_hash TYPE text USING encode(token_hash, 'hex'),
    ALTER COLUMN previous_token_hash TYPE text USING encode(previous_token_hash, 'hex'),
    ADD COLUMN retired_token_hashes_text text[] NOT NULL DEFAULT '{}';
UPDATE auth.refresh_sessions
   SET retired_token_hashes_text = ARRAY(SELECT encode(h, 'hex') FROM unnest(retired_token_hashes) AS h)
 WHERE cardinality(retired_token_hashes) > 0;
ALTER TABLE auth.refresh_sessions DROP COLUMN retired_token_hashes;
ALTER TABLE auth.refresh_sessions RENAME COLUMN token_hash TO refresh_token_hash_text;
ALTER TABLE auth.refresh_sessions RENAME COLUMN previous_token_hash TO previous_token_hash_text;

-- One-time codes.
ALTER TABLE auth.otp_codes RENAME COLUMN id TO otp_id;
ALTER TABLE auth.otp_codes RENAME COLUMN destination TO destination_text;
ALTER TABLE auth.otp_codes RENAME COLUMN channel TO channel_code;
ALTER TABLE auth.otp_codes RENAME COLUMN purpose TO purpose_code;
ALTER TABLE auth.otp_codes RENAME COLUMN created_at TO created_utc;
ALTER TABLE auth.otp_codes RENAME COLUMN expires_at TO expiry_utc;
ALTER TABLE auth.otp_codes RENAME COLUMN consumed_at TO consumed_utc;
ALTER TABLE auth.otp_codes ALTER COLUMN code_hash TYPE text USING encode(code_hash, 'hex');
ALTER TABLE auth.otp_codes RENAME COLUMN code_hash TO code_hash_text;

-- Org nodes: activity as the seed's flag.
DROP INDEX auth.org_nodes_inactive_idx;
ALTER TABLE auth.org_nodes DROP CONSTRAINT org_nodes_status_check;
ALTER TABLE auth.org_nodes ALTER COLUMN status DROP DEFAULT;
ALTER TABLE auth.org_nodes ALTER COLUMN status TYPE boolean USING status = 'active';
ALTER TABLE auth.org_nodes ALTER COLUMN status SET DEFAULT true;
ALTER TABLE auth.org_nodes RENAME COLUMN status TO active_flag;
ALTER TABLE auth.org_nodes RENAME COLUMN id TO org_node_id;
ALTER TABLE auth.org_nodes RENAME COLUMN parent_id TO parent_org_node_id;
ALTER TABLE auth.org_nodes RENAME COLUMN node_type TO node_type_code;
ALTER TABLE auth.org_nodes RENAME COLUMN label TO node_label;
ALTER TABLE auth.org_nodes RENAME COLUMN created_at TO created_utc;
ALTER TABLE auth.org_nodes RENAME COLUMN updated_at TO updated_utc;
-- Listings skip subtrees under inactive nodes; finding those few nodes must
-- not scan the tenant.
CREATE INDEX org_nodes_inactive_idx ON auth.org_nodes (tenant_id) WHERE NOT active_flag;

ALTER TABLE auth.org_node_paths RENAME COLUMN ancestor_id TO ancestor_org_node_id;
ALTER TABLE auth.org_node_paths RENAME COLUMN descendant_id TO descendant_org_node_id;
ALTER TABLE auth.org_node_paths RENAME COLUMN depth TO depth_val;

-- Capabilities, roles, assignments, grants.
ALTER TABLE auth.capabilities RENAME COLUMN id TO cap_id;
ALTER TABLE auth.capabilities RENAME COLUMN key TO cap_key;
ALTER TABLE auth.capabilities RENAME COLUMN description TO cap_description;
ALTER TABLE auth.capabilities RENAME COLUMN created_at TO created_utc;

ALTER TABLE auth.roles RENAME COLUMN id TO role_id;
ALTER TABLE auth.roles RENAME COLUMN key TO role_key;
ALTER TABLE auth.roles RENAME COLUMN label TO role_label;
ALTER TABLE auth.roles RENAME COLUMN created_at TO created_utc;
ALTER TABLE auth.roles RENAME COLUMN updated_at TO updated_utc;

ALTER TABLE auth.role_capabilities RENAME COLUMN capability_id TO cap_id;

ALTER TABLE auth.org_assignments RENAME COLUMN id TO assignment_id;
ALTER TABLE auth.org_assignments RENAME COLUMN created_at TO created_utc;

ALTER TABLE auth.visibility_grants RENAME COLUMN id TO grant_id;
ALTER TABLE auth.visibility_grants RENAME COLUMN scope TO access_scope_code;
ALTER TABLE auth.visibility_grants RENAME COLUMN created_at TO created_utc;

-- Invitations: the invitee's login as on users, who invited, the target.
ALTER TABLE auth.invitations RENAME COLUMN id TO invite_id;
ALTER TABLE auth.invitations RENAME COLUMN role_id TO target_role_id;
ALTER TABLE auth.invitations RENAME COLUMN org_node_id TO target_org_node_id;
ALTER TABLE auth.invitations RENAME COLUMN created_at TO created_utc;
ALTER TABLE auth.invitations RENAME COLUMN expires_at TO expiry_utc;
ALTER TABLE auth.invitations RENAME COLUMN accepted_at TO accepted_utc;
ALTER TABLE auth.invitations RENAME COLUMN revoked_at TO revoked_utc;
ALTER TABLE auth.invitations ALTER COLUMN token_hash TYPE text USING encode(token_hash, 'hex');
ALTER TABLE auth.invitations RENAME COLUMN token_hash TO invite_token_hash_text;
ALTER TABLE auth.invitations
    ADD COLUMN email_addr text,
    ADD COLUMN phone_e164 text,
    ADD COLUMN invited_by_user_id uuid;
UPDATE auth.invitations
   SET email_addr = CASE WHEN destination_kind = 'email' THEN destination END,
       phone_e164 = CASE WHEN destination_kind = 'phone' THEN destination END;
ALTER TABLE auth.invitations
    DROP COLUMN destination_kind,
    DROP COLUMN destination,
    ADD CONSTRAINT invitations_one_login_check CHECK (num_nonnulls(email_addr, phone_e164) = 1),
    ADD CONSTRAINT invitations_invited_by_fkey
        FOREIGN KEY (tenant_id, invited_by_user_id) REFERENCES auth.users (tenant_id, user_id);

-- Service accounts.
ALTER TABLE auth.services RENAME COLUMN id TO svc_id;
ALTER TABLE auth.services RENAME COLUMN key TO svc_key;
ALTER TABLE auth.services RENAME COLUMN label TO svc_label;
ALTER TABLE auth.services RENAME COLUMN status TO svc_state_code;
ALTER TABLE auth.services RENAME COLUMN created_at TO created_utc;
ALTER TABLE auth.services RENAME COLUMN updated_at TO updated_utc;

ALTER TABLE auth.service_secrets RENAME COLUMN id TO secret_id;
ALTER TABLE auth.service_secrets RENAME COLUMN service_id TO svc_id;
ALTER TABLE auth.service_secrets RENAME COLUMN created_at TO created_utc;
ALTER TABLE auth.service_secrets RENAME COLUMN last_used_at TO last_used_utc;
ALTER TABLE auth.service_secrets RENAME COLUMN revoked_at TO revoked_utc;
ALTER TABLE auth.service_secrets ALTER COLUMN secret_hash TYPE text USING encode(secret_hash, 'hex');
ALTER TABLE auth.service_secrets RENAME COLUMN secret_hash TO secret_hash_text;

ALTER TABLE auth.service_permissions RENAME COLUMN service_id TO svc_id;
ALTER TABLE auth.service_permissions RENAME COLUMN permission TO perm_key;
ALTER TABLE auth.service_permissions RENAME COLUMN created_at TO created_utc;

ALTER TABLE auth.service_sessions RENAME COLUMN id TO svc_session_id;
ALTER TABLE auth.service_sessions RENAME COLUMN service_id TO svc_id;
ALTER TABLE auth.service_sessions RENAME COLUMN permissions TO perm_keys;
ALTER TABLE auth.service_sessions RENAME COLUMN issued_at TO created_utc;
ALTER TABLE auth.service_sessions RENAME COLUMN expires_at TO expiry_utc;
ALTER TABLE auth.service_sessions RENAME COLUMN revoked_at TO revoked_utc;
ALTER TABLE auth.service_sessions ALTER COLUMN token_hash TYPE text USING encode(token_hash, 'hex');
ALTER TABLE auth.service_sessions RENAME COLUMN token_hash TO token_hash_text;

-- Hashes are lower-case hex SHA-256: the seed's text, no looser.
ALTER TABLE auth.refresh_sessions
    ADD CONSTRAINT refresh_sessions_hash_check CHECK (refresh_token_hash_text ~ '^[0-9a-f]{64}$');
ALTER TABLE auth.otp_codes
    ADD CONSTRAINT otp_codes_hash_check CHECK (code_hash_text ~ '^[0-9a-f]{64}$');
ALTER TABLE auth.invitations
    ADD CONSTRAINT invitations_hash_check CHECK (invite_token_hash_text ~ '^[0-9a-f]{64}$');
ALTER TABLE auth.service_secrets
    ADD CONSTRAINT service_secrets_hash_check CHECK (secret_hash_text ~ '^[0-9a-f]{64}$');
ALTER TABLE auth.service_sessions
    ADD CONSTRAINT service_sessions_hash_check CHECK (token_hash_text ~ '^[0-9a-f]{64}$');

-- Audit: the seed's actor and entity columns. Who acted: a user
-- (actor_user_id, as in the seed) or a service (actor_svc_id); what: an
-- entity id when it is one (uuid), a reference otherwise (a login name).
ALTER TABLE audit.audit_events RENAME COLUMN id TO audit_id;
ALTER TABLE audit.audit_events RENAME COLUMN occurred_at TO occurred_utc;
ALTER TABLE audit.audit_events RENAME COLUMN actor_kind TO actor_kind_code;
ALTER TABLE audit.audit_events RENAME COLUMN action TO action_key;
ALTER TABLE audit.audit_events RENAME COLUMN entity_kind TO entity_kind_code;
ALTER TABLE audit.audit_events RENAME COLUMN payload TO payload_json;
ALTER TABLE audit.audit_events
    ADD COLUMN actor_user_id uuid REFERENCES auth.users (user_id),
    ADD COLUMN actor_svc_id uuid REFERENCES auth.services (svc_id),
    ADD COLUMN entity_ref_text text;
UPDATE audit.audit_events
   SET actor_user_id = CASE WHEN actor_kind_code = 'user' THEN actor_id::uuid END,
       actor_svc_id = CASE WHEN actor_kind_code = 'service' THEN actor_id::uuid END,
       entity_ref_text = CASE
           WHEN entity_id !~* '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$' THEN entity_id
       END;
ALTER TABLE audit.audit_events
    ALTER COLUMN entity_id TYPE uuid USING CASE
        WHEN entity_id ~* '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$' THEN entity_id::uuid
    END,
    DROP COLUMN actor_id,
    ADD CONSTRAINT audit_events_actor_check CHECK (
        (actor_kind_code = 'user') = (actor_user_id IS NOT NULL)
        AND (actor_kind_code = 'service') = (actor_svc_id IS NOT NULL));

ALTER TABLE auth.users FORCE ROW LEVEL SECURITY;
ALTER TABLE auth.user_identities FORCE ROW LEVEL SECURITY;
ALTER TABLE auth.refresh_sessions FORCE ROW LEVEL SECURITY;
ALTER TABLE auth.invitations FORCE ROW LEVEL SECURITY;
ALTER TABLE audit.audit_events FORCE ROW LEVEL SECURITY;

-- Function bodies, in the new names; same rules as before.
CREATE OR REPLACE FUNCTION auth.ctx_service_tenant_id() RETURNS uuid
    LANGUAGE sql STABLE PARALLEL SAFE
    AS $$
        SELECT s.tenant_id FROM auth.services s
         WHERE s.svc_id = auth.ctx_uuid('app.service_id')
            OR s.svc_key = auth.ctx_text('app.service_key')
         LIMIT 1
    $$;

CREATE OR REPLACE FUNCTION auth.check_capabilities(p_user uuid, p_capabilities text[], p_nodes uuid[])
RETURNS TABLE (ordinal integer, reason text)
LANGUAGE sql STABLE
AS $$
    WITH subject AS (
        SELECT u.user_state_code AS user_state, t.tenant_state_code AS tenant_state
          FROM auth.users u
          JOIN auth.tenants t ON t.tenant_id = u.tenant_id
         WHERE u.user_id = p_user
    ),
    checks AS (
        SELECT c.ord::integer AS ordinal, c.capability, c.node
          FROM unnest(p_capabilities, p_nodes) WITH ORDINALITY AS c (capability, node, ord)
    )
    SELECT ch.ordinal,
           CASE
               WHEN s.tenant_state IS NULL THEN 'UNKNOWN_USER'
               WHEN s.tenant_state <> 'active' THEN 'TENANT_SUSPENDED'
               WHEN s.user_state <> 'active' THEN 'USER_INACTIVE'
               WHEN cap.cap_id IS NULL THEN 'UNKNOWN_CAPABILITY'
               WHEN n.org_node_id IS NULL THEN 'UNKNOWN_ORG_NODE'
               WHEN EXISTS (
                   SELECT 1
                     FROM auth.org_node_paths p
                     JOIN auth.org_nodes a ON a.org_node_id = p.ancestor_org_node_id
                    WHERE p.descendant_org_node_id = ch.node AND NOT a.active_flag
               ) THEN 'NODE_INACTIVE'
               WHEN EXISTS (
                   SELECT 1
                     FROM auth.org_node_paths p
                     JOIN auth.org_assignments oa
                       ON oa.org_node_id = p.ancestor_org_node_id AND oa.user_id = p_user
                     JOIN auth.role_capabilities rc
                       ON rc.role_id = oa.role_id AND rc.cap_id = cap.cap_id
                    WHERE p.descendant_org_node_id = ch.node
                      AND oa.start_utc <= now()
                      AND (oa.end_utc IS NULL OR oa.end_utc > now())
               ) THEN 'ALLOWED'
               ELSE 'NO_MATCHING_ASSIGNMENT'
           END
      FROM checks ch
      LEFT JOIN subject s ON true
      LEFT JOIN auth.capabilities cap ON cap.cap_key = ch.capability
      LEFT JOIN auth.org_nodes n ON n.org_node_id = ch.node
     ORDER BY ch.ordinal
$$;

CREATE OR REPLACE FUNCTION auth.administered_capabilities(p_user uuid, p_capabilities text[], p_nodes uuid[])
RETURNS TABLE (ordinal integer, reason text)
LANGUAGE sql STABLE
AS $$
    WITH subject AS (
        SELECT u.user_state_code AS user_state, t.tenant_state_code AS tenant_state
          FROM auth.users u
          JOIN auth.tenants t ON t.tenant_id = u.tenant_id
         WHERE u.user_id = p_user
    ),
    checks AS (
        SELECT c.ord::integer AS ordinal, c.capability, c.node
          FROM unnest(p_capabilities, p_nodes) WITH ORDINALITY AS c (capability, node, ord)
    )
    SELECT ch.ordinal,
           CASE
               WHEN s.tenant_state IS NULL THEN 'UNKNOWN_USER'
               WHEN s.tenant_state <> 'active' THEN 'TENANT_SUSPENDED'
               WHEN s.user_state <> 'active' THEN 'USER_INACTIVE'
               WHEN cap.cap_id IS NULL THEN 'UNKNOWN_CAPABILITY'
               WHEN n.org_node_id IS NULL THEN 'UNKNOWN_ORG_NODE'
               WHEN EXISTS (
                   SELECT 1
                     FROM auth.org_node_paths p
                     JOIN auth.org_assignments oa
                       ON oa.org_node_id = p.ancestor_org_node_id AND oa.user_id = p_user
                     JOIN auth.role_capabilities rc
                       ON rc.role_id = oa.role_id AND rc.cap_id = cap.cap_id
                    WHERE p.descendant_org_node_id = ch.node
                      AND oa.start_utc <= now()
                      AND (oa.end_utc IS NULL OR oa.end_utc > now())
               ) THEN 'ALLOWED'
               ELSE 'NO_MATCHING_ASSIGNMENT'
           END
      FROM checks ch
      LEFT JOIN subject s ON true
      LEFT JOIN auth.capabilities cap ON cap.cap_key = ch.capability
      LEFT JOIN auth.org_nodes n ON n.org_node_id = ch.node
     ORDER BY ch.ordinal
$$;

CREATE OR REPLACE FUNCTION auth.explain_capabilities(p_user uuid, p_capabilities text[], p_nodes uuid[])
RETURNS TABLE (ordinal integer, assignment_id uuid, role_id uuid, role_label text, org_node_id uuid, depth integer)
LANGUAGE sql STABLE
AS $$
    SELECT c.ord::integer, oa.assignment_id, r.role_id, r.role_label, oa.org_node_id, p.depth_val
      FROM unnest(p_capabilities, p_nodes) WITH ORDINALITY AS c (capability, node, ord)
      JOIN auth.capabilities cap ON cap.cap_key = c.capability
      JOIN auth.org_node_paths p ON p.descendant_org_node_id = c.node
      JOIN auth.org_assignments oa ON oa.org_node_id = p.ancestor_org_node_id AND oa.user_id = p_user
      JOIN auth.role_capabilities rc ON rc.role_id = oa.role_id AND rc.cap_id = cap.cap_id
      JOIN auth.roles r ON r.role_id = oa.role_id
     WHERE oa.start_utc <= now()
       AND (oa.end_utc IS NULL OR oa.end_utc > now())
     ORDER BY c.ord, p.depth_val, oa.assignment_id
$$;

CREATE OR REPLACE FUNCTION auth.org_nodes_after_insert() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
BEGIN
    INSERT INTO auth.org_node_paths (tenant_id, ancestor_org_node_id, descendant_org_node_id, depth_val)
    SELECT NEW.tenant_id, NEW.org_node_id, NEW.org_node_id, 0
    UNION ALL
    SELECT NEW.tenant_id, p.ancestor_org_node_id, NEW.org_node_id, p.depth_val + 1
      FROM auth.org_node_paths p
     WHERE p.descendant_org_node_id = NEW.parent_org_node_id;
    RETURN NULL;
END
$$;

CREATE OR REPLACE FUNCTION auth.org_nodes_after_reparent() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
BEGIN
    -- Detach the subtree from its old ancestors...
    DELETE FROM auth.org_node_paths p
     WHERE p.descendant_org_node_id IN (SELECT s.descendant_org_node_id FROM auth.org_node_paths s
                                         WHERE s.ancestor_org_node_id = NEW.org_node_id)
       AND p.ancestor_org_node_id NOT IN (SELECT s.descendant_org_node_id FROM auth.org_node_paths s
                                           WHERE s.ancestor_org_node_id = NEW.org_node_id);
    -- ...and attach it below the new parent's ancestors (the parent included).
    INSERT INTO auth.org_node_paths (tenant_id, ancestor_org_node_id, descendant_org_node_id, depth_val)
    SELECT NEW.tenant_id, sup.ancestor_org_node_id, sub.descendant_org_node_id, sup.depth_val + sub.depth_val + 1
      FROM auth.org_node_paths sup
      JOIN auth.org_node_paths sub ON sub.ancestor_org_node_id = NEW.org_node_id
     WHERE sup.descendant_org_node_id = NEW.parent_org_node_id;
    RETURN NULL;
END
$$;

CREATE OR REPLACE FUNCTION auth.org_nodes_before_write() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
BEGIN
    IF TG_OP = 'UPDATE' THEN
        IF NEW.org_node_id <> OLD.org_node_id OR NEW.tenant_id <> OLD.tenant_id THEN
            RAISE EXCEPTION 'an org node cannot change its id or tenant'
                USING ERRCODE = 'PT003';
        END IF;
        IF NEW.parent_org_node_id IS NOT DISTINCT FROM OLD.parent_org_node_id THEN
            RETURN NEW;
        END IF;
    END IF;

    IF NEW.parent_org_node_id IS NOT NULL THEN
        IF TG_OP = 'UPDATE' THEN
            -- Two concurrent moves cannot each pass the cycle check and
            -- together form a cycle; an insert cannot copy ancestors a
            -- move is replacing.
            PERFORM pg_advisory_xact_lock(hashtextextended('portcullis.org_tree:' || NEW.tenant_id::text, 0));
        ELSE
            PERFORM pg_advisory_xact_lock_shared(hashtextextended('portcullis.org_tree:' || NEW.tenant_id::text, 0));
        END IF;
        IF NOT EXISTS (SELECT 1 FROM auth.org_nodes n
                        WHERE n.org_node_id = NEW.parent_org_node_id AND n.tenant_id = NEW.tenant_id) THEN
            RAISE EXCEPTION 'parent org node % is not in the tenant of node %', NEW.parent_org_node_id, NEW.org_node_id
                USING ERRCODE = 'PT002';
        END IF;
        IF TG_OP = 'UPDATE' AND EXISTS (SELECT 1 FROM auth.org_node_paths p
                        WHERE p.ancestor_org_node_id = NEW.org_node_id
                          AND p.descendant_org_node_id = NEW.parent_org_node_id) THEN
            RAISE EXCEPTION 'org node % cannot move under its own descendant %', NEW.org_node_id, NEW.parent_org_node_id
                USING ERRCODE = 'PT001';
        END IF;
    END IF;
    RETURN NEW;
END
$$;
