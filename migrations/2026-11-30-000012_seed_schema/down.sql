-- Back to the product's earlier names and identity model: one identity per
-- login again (the password hash on each, verified when the flag says so).

ALTER TABLE auth.users NO FORCE ROW LEVEL SECURITY;
ALTER TABLE auth.user_identities NO FORCE ROW LEVEL SECURITY;
ALTER TABLE auth.refresh_sessions NO FORCE ROW LEVEL SECURITY;
ALTER TABLE auth.invitations NO FORCE ROW LEVEL SECURITY;
ALTER TABLE audit.audit_events NO FORCE ROW LEVEL SECURITY;

-- Audit.
ALTER TABLE audit.audit_events DROP CONSTRAINT audit_events_actor_check;
ALTER TABLE audit.audit_events ADD COLUMN actor_id text;
UPDATE audit.audit_events SET actor_id = coalesce(actor_user_id, actor_svc_id)::text;
ALTER TABLE audit.audit_events ALTER COLUMN entity_id TYPE text USING entity_id::text;
UPDATE audit.audit_events SET entity_id = entity_ref_text WHERE entity_ref_text IS NOT NULL;
ALTER TABLE audit.audit_events DROP COLUMN actor_user_id, DROP COLUMN actor_svc_id, DROP COLUMN entity_ref_text;
ALTER TABLE audit.audit_events RENAME COLUMN audit_id TO id;
ALTER TABLE audit.audit_events RENAME COLUMN occurred_utc TO occurred_at;
ALTER TABLE audit.audit_events RENAME COLUMN actor_kind_code TO actor_kind;
ALTER TABLE audit.audit_events RENAME COLUMN action_key TO action;
ALTER TABLE audit.audit_events RENAME COLUMN entity_kind_code TO entity_kind;
ALTER TABLE audit.audit_events RENAME COLUMN payload_json TO payload;

-- Hash checks; hex text back to bytes.
ALTER TABLE auth.refresh_sessions DROP CONSTRAINT refresh_sessions_hash_check;
ALTER TABLE auth.otp_codes DROP CONSTRAINT otp_codes_hash_check;
ALTER TABLE auth.invitations DROP CONSTRAINT invitations_hash_check;
ALTER TABLE auth.service_secrets DROP CONSTRAINT service_secrets_hash_check;
ALTER TABLE auth.service_sessions DROP CONSTRAINT service_sessions_hash_check;

ALTER TABLE auth.service_sessions ALTER COLUMN token_hash_text TYPE bytea USING decode(token_hash_text, 'hex');
ALTER TABLE auth.service_sessions RENAME COLUMN token_hash_text TO token_hash;
ALTER TABLE auth.service_sessions RENAME COLUMN svc_session_id TO id;
ALTER TABLE auth.service_sessions RENAME COLUMN svc_id TO service_id;
ALTER TABLE auth.service_sessions RENAME COLUMN perm_keys TO permissions;
ALTER TABLE auth.service_sessions RENAME COLUMN created_utc TO issued_at;
ALTER TABLE auth.service_sessions RENAME COLUMN expiry_utc TO expires_at;
ALTER TABLE auth.service_sessions RENAME COLUMN revoked_utc TO revoked_at;

ALTER TABLE auth.service_permissions RENAME COLUMN svc_id TO service_id;
ALTER TABLE auth.service_permissions RENAME COLUMN perm_key TO permission;
ALTER TABLE auth.service_permissions RENAME COLUMN created_utc TO created_at;

ALTER TABLE auth.service_secrets ALTER COLUMN secret_hash_text TYPE bytea USING decode(secret_hash_text, 'hex');
ALTER TABLE auth.service_secrets RENAME COLUMN secret_hash_text TO secret_hash;
ALTER TABLE auth.service_secrets RENAME COLUMN secret_id TO id;
ALTER TABLE auth.service_secrets RENAME COLUMN svc_id TO service_id;
ALTER TABLE auth.service_secrets RENAME COLUMN created_utc TO created_at;
ALTER TABLE auth.service_secrets RENAME COLUMN last_used_utc TO last_used_at;
ALTER TABLE auth.service_secrets RENAME COLUMN revoked_utc TO revoked_at;

ALTER TABLE auth.services RENAME COLUMN svc_id TO id;
ALTER TABLE auth.services RENAME COLUMN svc_key TO key;
ALTER TABLE auth.services RENAME COLUMN svc_label TO label;
ALTER TABLE auth.services RENAME COLUMN svc_state_code TO status;
ALTER TABLE auth.services RENAME COLUMN created_utc TO created_at;
ALTER TABLE auth.services RENAME COLUMN updated_utc TO updated_at;

-- Invitations.
ALTER TABLE auth.invitations
    DROP CONSTRAINT invitations_one_login_check,
    DROP CONSTRAINT invitations_invited_by_fkey,
    ADD COLUMN destination_kind text,
    ADD COLUMN destination text;
UPDATE auth.invitations
   SET destination_kind = CASE WHEN email_addr IS NOT NULL THEN 'email' ELSE 'phone' END,
       destination = coalesce(email_addr, phone_e164);
ALTER TABLE auth.invitations
    ALTER COLUMN destination_kind SET NOT NULL,
    ALTER COLUMN destination SET NOT NULL,
    ADD CONSTRAINT invitations_destination_kind_check CHECK (destination_kind IN ('email', 'phone')),
    DROP COLUMN email_addr,
    DROP COLUMN phone_e164,
    DROP COLUMN invited_by_user_id;
ALTER TABLE auth.invitations ALTER COLUMN invite_token_hash_text TYPE bytea USING decode(invite_token_hash_text, 'hex');
ALTER TABLE auth.invitations RENAME COLUMN invite_token_hash_text TO token_hash;
ALTER TABLE auth.invitations RENAME COLUMN invite_id TO id;
ALTER TABLE auth.invitations RENAME COLUMN target_role_id TO role_id;
ALTER TABLE auth.invitations RENAME COLUMN target_org_node_id TO org_node_id;
ALTER TABLE auth.invitations RENAME COLUMN created_utc TO created_at;
ALTER TABLE auth.invitations RENAME COLUMN expiry_utc TO expires_at;
ALTER TABLE auth.invitations RENAME COLUMN accepted_utc TO accepted_at;
ALTER TABLE auth.invitations RENAME COLUMN revoked_utc TO revoked_at;

-- Grants, assignments, roles, capabilities.
ALTER TABLE auth.visibility_grants RENAME COLUMN grant_id TO id;
ALTER TABLE auth.visibility_grants RENAME COLUMN access_scope_code TO scope;
ALTER TABLE auth.visibility_grants RENAME COLUMN created_utc TO created_at;
ALTER TABLE auth.org_assignments RENAME COLUMN assignment_id TO id;
ALTER TABLE auth.org_assignments RENAME COLUMN created_utc TO created_at;
ALTER TABLE auth.role_capabilities RENAME COLUMN cap_id TO capability_id;
ALTER TABLE auth.roles RENAME COLUMN role_id TO id;
ALTER TABLE auth.roles RENAME COLUMN role_key TO key;
ALTER TABLE auth.roles RENAME COLUMN role_label TO label;
ALTER TABLE auth.roles RENAME COLUMN created_utc TO created_at;
ALTER TABLE auth.roles RENAME COLUMN updated_utc TO updated_at;
ALTER TABLE auth.capabilities RENAME COLUMN cap_id TO id;
ALTER TABLE auth.capabilities RENAME COLUMN cap_key TO key;
ALTER TABLE auth.capabilities RENAME COLUMN cap_description TO description;
ALTER TABLE auth.capabilities RENAME COLUMN created_utc TO created_at;

-- The org tree.
ALTER TABLE auth.org_node_paths RENAME COLUMN ancestor_org_node_id TO ancestor_id;
ALTER TABLE auth.org_node_paths RENAME COLUMN descendant_org_node_id TO descendant_id;
ALTER TABLE auth.org_node_paths RENAME COLUMN depth_val TO depth;
DROP INDEX auth.org_nodes_inactive_idx;
ALTER TABLE auth.org_nodes RENAME COLUMN org_node_id TO id;
ALTER TABLE auth.org_nodes RENAME COLUMN parent_org_node_id TO parent_id;
ALTER TABLE auth.org_nodes RENAME COLUMN node_type_code TO node_type;
ALTER TABLE auth.org_nodes RENAME COLUMN node_label TO label;
ALTER TABLE auth.org_nodes RENAME COLUMN created_utc TO created_at;
ALTER TABLE auth.org_nodes RENAME COLUMN updated_utc TO updated_at;
ALTER TABLE auth.org_nodes ALTER COLUMN active_flag DROP DEFAULT;
ALTER TABLE auth.org_nodes ALTER COLUMN active_flag TYPE text
    USING CASE WHEN active_flag THEN 'active' ELSE 'inactive' END;
ALTER TABLE auth.org_nodes ALTER COLUMN active_flag SET DEFAULT 'active';
ALTER TABLE auth.org_nodes RENAME COLUMN active_flag TO status;
ALTER TABLE auth.org_nodes ADD CONSTRAINT org_nodes_status_check CHECK (status IN ('active', 'inactive'));
CREATE INDEX org_nodes_inactive_idx ON auth.org_nodes (tenant_id) WHERE status <> 'active';

-- One-time codes and sessions.
ALTER TABLE auth.otp_codes ALTER COLUMN code_hash_text TYPE bytea USING decode(code_hash_text, 'hex');
ALTER TABLE auth.otp_codes RENAME COLUMN code_hash_text TO code_hash;
ALTER TABLE auth.otp_codes RENAME COLUMN otp_id TO id;
ALTER TABLE auth.otp_codes RENAME COLUMN destination_text TO destination;
ALTER TABLE auth.otp_codes RENAME COLUMN channel_code TO channel;
ALTER TABLE auth.otp_codes RENAME COLUMN purpose_code TO purpose;
ALTER TABLE auth.otp_codes RENAME COLUMN created_utc TO created_at;
ALTER TABLE auth.otp_codes RENAME COLUMN expiry_utc TO expires_at;
ALTER TABLE auth.otp_codes RENAME COLUMN consumed_utc TO consumed_at;

ALTER TABLE auth.refresh_sessions ADD COLUMN retired_token_hashes bytea[] NOT NULL DEFAULT '{}';
UPDATE auth.refresh_sessions
   SET retired_token_hashes = ARRAY(SELECT decode(h, 'hex') FROM unnest(retired_token_hashes_text) AS h)
 WHERE cardinality(retired_token_hashes_text) > 0;
ALTER TABLE auth.refresh_sessions DROP COLUMN retired_token_hashes_text;
ALTER TABLE auth.refresh_sessions
    ALTER COLUMN refresh_token_hash_text TYPE bytea USING decode(refresh_token_hash_text, 'hex'),
    ALTER COLUMN previous_token_hash_text TYPE bytea USING decode(previous_token_hash_text, 'hex');
ALTER TABLE auth.refresh_sessions RENAME COLUMN refresh_token_hash_text TO token_hash;
ALTER TABLE auth.refresh_sessions RENAME COLUMN previous_token_hash_text TO previous_token_hash;
ALTER TABLE auth.refresh_sessions RENAME COLUMN session_id TO id;
ALTER TABLE auth.refresh_sessions RENAME COLUMN rotation_count TO generation;
ALTER TABLE auth.refresh_sessions RENAME COLUMN client_user_agent_text TO user_agent;
ALTER TABLE auth.refresh_sessions RENAME COLUMN client_ip_text TO client_addr;
ALTER TABLE auth.refresh_sessions RENAME COLUMN created_utc TO created_at;
ALTER TABLE auth.refresh_sessions RENAME COLUMN last_refreshed_utc TO last_refreshed_at;
ALTER TABLE auth.refresh_sessions RENAME COLUMN expiry_utc TO expires_at;
ALTER TABLE auth.refresh_sessions RENAME COLUMN revoked_utc TO revoked_at;
ALTER TABLE auth.refresh_sessions RENAME COLUMN revoked_reason_code TO revoked_reason;

-- Identities: one per login again. Federated identities have no login of
-- their own and cannot be kept in the earlier model.
ALTER TABLE auth.user_identities
    DROP CONSTRAINT user_identities_subject_check,
    DROP CONSTRAINT user_identities_provider_subject_key,
    DROP CONSTRAINT user_identities_user_provider_key,
    ADD COLUMN kind text,
    ADD COLUMN login text,
    ADD COLUMN verified_at timestamptz;
DELETE FROM auth.user_identities WHERE ident_provider_code <> 'password';
INSERT INTO auth.user_identities (tenant_id, user_id, kind, login, password_hash_text, verified_at, created_utc, updated_utc, ident_provider_code)
SELECT i.tenant_id, i.user_id, 'phone', u.phone_e164, i.password_hash_text,
       CASE WHEN i.phone_verified_flag THEN i.updated_utc END, i.created_utc, i.updated_utc, 'password'
  FROM auth.user_identities i JOIN auth.users u ON u.user_id = i.user_id
 WHERE u.phone_e164 IS NOT NULL AND u.email_addr IS NOT NULL;
UPDATE auth.user_identities i
   SET kind = CASE WHEN u.email_addr IS NOT NULL THEN 'email' ELSE 'phone' END,
       login = coalesce(u.email_addr, u.phone_e164),
       verified_at = CASE WHEN (u.email_addr IS NOT NULL AND i.email_verified_flag)
                            OR (u.email_addr IS NULL AND i.phone_verified_flag) THEN i.updated_utc END
  FROM auth.users u
 WHERE u.user_id = i.user_id AND i.kind IS NULL;
DELETE FROM auth.user_identities WHERE login IS NULL;
ALTER TABLE auth.user_identities
    DROP COLUMN ident_provider_code,
    DROP COLUMN provider_subject_key,
    DROP COLUMN email_verified_flag,
    DROP COLUMN phone_verified_flag,
    ALTER COLUMN kind SET NOT NULL,
    ALTER COLUMN login SET NOT NULL,
    ADD CONSTRAINT user_identities_kind_check CHECK (kind IN ('email', 'phone')),
    ADD CONSTRAINT user_identities_login_check CHECK (length(login) BETWEEN 3 AND 320),
    ADD CONSTRAINT user_identities_tenant_id_kind_login_key UNIQUE (tenant_id, kind, login);
ALTER TABLE auth.user_identities RENAME COLUMN ident_id TO id;
ALTER TABLE auth.user_identities RENAME COLUMN password_hash_text TO password_hash;
ALTER TABLE auth.user_identities RENAME COLUMN created_utc TO created_at;
ALTER TABLE auth.user_identities RENAME COLUMN updated_utc TO updated_at;

ALTER TABLE auth.users
    DROP CONSTRAINT users_tenant_email_key,
    DROP CONSTRAINT users_tenant_phone_key,
    DROP COLUMN email_addr,
    DROP COLUMN phone_e164;
ALTER TABLE auth.users RENAME COLUMN user_id TO id;
ALTER TABLE auth.users RENAME COLUMN display_label TO display_name;
ALTER TABLE auth.users RENAME COLUMN user_state_code TO status;
ALTER TABLE auth.users RENAME COLUMN created_utc TO created_at;
ALTER TABLE auth.users RENAME COLUMN updated_utc TO updated_at;

ALTER TABLE auth.tenants RENAME COLUMN tenant_id TO id;
ALTER TABLE auth.tenants RENAME COLUMN tenant_slug TO slug;
ALTER TABLE auth.tenants RENAME COLUMN tenant_label TO name;
ALTER TABLE auth.tenants RENAME COLUMN tenant_state_code TO status;
ALTER TABLE auth.tenants RENAME COLUMN created_utc TO created_at;
ALTER TABLE auth.tenants RENAME COLUMN updated_utc TO updated_at;

ALTER TABLE auth.users FORCE ROW LEVEL SECURITY;
ALTER TABLE auth.user_identities FORCE ROW LEVEL SECURITY;
ALTER TABLE auth.refresh_sessions FORCE ROW LEVEL SECURITY;
ALTER TABLE auth.invitations FORCE ROW LEVEL SECURITY;
ALTER TABLE audit.audit_events FORCE ROW LEVEL SECURITY;

-- The earlier function bodies.

CREATE OR REPLACE FUNCTION auth.administered_capabilities(p_user uuid, p_capabilities text[], p_nodes uuid[]) RETURNS TABLE(ordinal integer, reason text)
    LANGUAGE sql STABLE
    AS $$
    WITH subject AS (
        SELECT u.status AS user_status, t.status AS tenant_status
          FROM auth.users u
          JOIN auth.tenants t ON t.id = u.tenant_id
         WHERE u.id = p_user
    ),
    checks AS (
        SELECT c.ord::integer AS ordinal, c.capability, c.node
          FROM unnest(p_capabilities, p_nodes) WITH ORDINALITY AS c (capability, node, ord)
    )
    SELECT ch.ordinal,
           CASE
               WHEN s.tenant_status IS NULL THEN 'UNKNOWN_USER'
               WHEN s.tenant_status <> 'active' THEN 'TENANT_SUSPENDED'
               WHEN s.user_status <> 'active' THEN 'USER_INACTIVE'
               WHEN cap.id IS NULL THEN 'UNKNOWN_CAPABILITY'
               WHEN n.id IS NULL THEN 'UNKNOWN_ORG_NODE'
               WHEN EXISTS (
                   SELECT 1
                     FROM auth.org_node_paths p
                     JOIN auth.org_assignments oa
                       ON oa.org_node_id = p.ancestor_id AND oa.user_id = p_user
                     JOIN auth.role_capabilities rc
                       ON rc.role_id = oa.role_id AND rc.capability_id = cap.id
                    WHERE p.descendant_id = ch.node
                      AND oa.start_utc <= now()
                      AND (oa.end_utc IS NULL OR oa.end_utc > now())
               ) THEN 'ALLOWED'
               ELSE 'NO_MATCHING_ASSIGNMENT'
           END
      FROM checks ch
      LEFT JOIN subject s ON true
      LEFT JOIN auth.capabilities cap ON cap.key = ch.capability
      LEFT JOIN auth.org_nodes n ON n.id = ch.node
     ORDER BY ch.ordinal
$$;

CREATE OR REPLACE FUNCTION auth.check_capabilities(p_user uuid, p_capabilities text[], p_nodes uuid[]) RETURNS TABLE(ordinal integer, reason text)
    LANGUAGE sql STABLE
    AS $$
    WITH subject AS (
        SELECT u.status AS user_status, t.status AS tenant_status
          FROM auth.users u
          JOIN auth.tenants t ON t.id = u.tenant_id
         WHERE u.id = p_user
    ),
    checks AS (
        SELECT c.ord::integer AS ordinal, c.capability, c.node
          FROM unnest(p_capabilities, p_nodes) WITH ORDINALITY AS c (capability, node, ord)
    )
    SELECT ch.ordinal,
           CASE
               WHEN s.tenant_status IS NULL THEN 'UNKNOWN_USER'
               WHEN s.tenant_status <> 'active' THEN 'TENANT_SUSPENDED'
               WHEN s.user_status <> 'active' THEN 'USER_INACTIVE'
               WHEN cap.id IS NULL THEN 'UNKNOWN_CAPABILITY'
               WHEN n.id IS NULL THEN 'UNKNOWN_ORG_NODE'
               WHEN EXISTS (
                   SELECT 1
                     FROM auth.org_node_paths p
                     JOIN auth.org_nodes a ON a.id = p.ancestor_id
                    WHERE p.descendant_id = ch.node AND a.status <> 'active'
               ) THEN 'NODE_INACTIVE'
               WHEN EXISTS (
                   SELECT 1
                     FROM auth.org_node_paths p
                     JOIN auth.org_assignments oa
                       ON oa.org_node_id = p.ancestor_id AND oa.user_id = p_user
                     JOIN auth.role_capabilities rc
                       ON rc.role_id = oa.role_id AND rc.capability_id = cap.id
                    WHERE p.descendant_id = ch.node
                      AND oa.start_utc <= now()
                      AND (oa.end_utc IS NULL OR oa.end_utc > now())
               ) THEN 'ALLOWED'
               ELSE 'NO_MATCHING_ASSIGNMENT'
           END
      FROM checks ch
      LEFT JOIN subject s ON true
      LEFT JOIN auth.capabilities cap ON cap.key = ch.capability
      LEFT JOIN auth.org_nodes n ON n.id = ch.node
     ORDER BY ch.ordinal
$$;

CREATE OR REPLACE FUNCTION auth.ctx_service_tenant_id() RETURNS uuid
    LANGUAGE sql STABLE PARALLEL SAFE
    AS $$
        SELECT s.tenant_id FROM auth.services s
         WHERE s.id = auth.ctx_uuid('app.service_id')
            OR s.key = auth.ctx_text('app.service_key')
         LIMIT 1
    $$;

CREATE OR REPLACE FUNCTION auth.explain_capabilities(p_user uuid, p_capabilities text[], p_nodes uuid[]) RETURNS TABLE(ordinal integer, assignment_id uuid, role_id uuid, role_label text, org_node_id uuid, depth integer)
    LANGUAGE sql STABLE
    AS $$
    SELECT c.ord::integer, oa.id, r.id, r.label, oa.org_node_id, p.depth
      FROM unnest(p_capabilities, p_nodes) WITH ORDINALITY AS c (capability, node, ord)
      JOIN auth.capabilities cap ON cap.key = c.capability
      JOIN auth.org_node_paths p ON p.descendant_id = c.node
      JOIN auth.org_assignments oa ON oa.org_node_id = p.ancestor_id AND oa.user_id = p_user
      JOIN auth.role_capabilities rc ON rc.role_id = oa.role_id AND rc.capability_id = cap.id
      JOIN auth.roles r ON r.id = oa.role_id
     WHERE oa.start_utc <= now()
       AND (oa.end_utc IS NULL OR oa.end_utc > now())
     ORDER BY c.ord, p.depth, oa.id
$$;

CREATE OR REPLACE FUNCTION auth.org_nodes_after_insert() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
BEGIN
    INSERT INTO auth.org_node_paths (tenant_id, ancestor_id, descendant_id, depth)
    SELECT NEW.tenant_id, NEW.id, NEW.id, 0
    UNION ALL
    SELECT NEW.tenant_id, p.ancestor_id, NEW.id, p.depth + 1
      FROM auth.org_node_paths p
     WHERE p.descendant_id = NEW.parent_id;
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
     WHERE p.descendant_id IN (SELECT s.descendant_id FROM auth.org_node_paths s WHERE s.ancestor_id = NEW.id)
       AND p.ancestor_id NOT IN (SELECT s.descendant_id FROM auth.org_node_paths s WHERE s.ancestor_id = NEW.id);
    -- ...and attach it below the new parent's ancestors (the parent included).
    INSERT INTO auth.org_node_paths (tenant_id, ancestor_id, descendant_id, depth)
    SELECT NEW.tenant_id, sup.ancestor_id, sub.descendant_id, sup.depth + sub.depth + 1
      FROM auth.org_node_paths sup
      JOIN auth.org_node_paths sub ON sub.ancestor_id = NEW.id
     WHERE sup.descendant_id = NEW.parent_id;
    RETURN NULL;
END
$$;

CREATE OR REPLACE FUNCTION auth.org_nodes_before_write() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
BEGIN
    IF TG_OP = 'UPDATE' THEN
        IF NEW.id <> OLD.id OR NEW.tenant_id <> OLD.tenant_id THEN
            RAISE EXCEPTION 'an org node cannot change its id or tenant'
                USING ERRCODE = 'PT003';
        END IF;
        IF NEW.parent_id IS NOT DISTINCT FROM OLD.parent_id THEN
            RETURN NEW;
        END IF;
    END IF;

    IF NEW.parent_id IS NOT NULL THEN
        IF TG_OP = 'UPDATE' THEN
            -- Two concurrent moves cannot each pass the cycle check and
            -- together form a cycle; an insert cannot copy ancestors a
            -- move is replacing.
            PERFORM pg_advisory_xact_lock(hashtextextended('portcullis.org_tree:' || NEW.tenant_id::text, 0));
        ELSE
            PERFORM pg_advisory_xact_lock_shared(hashtextextended('portcullis.org_tree:' || NEW.tenant_id::text, 0));
        END IF;
        IF NOT EXISTS (SELECT 1 FROM auth.org_nodes n
                        WHERE n.id = NEW.parent_id AND n.tenant_id = NEW.tenant_id) THEN
            RAISE EXCEPTION 'parent org node % is not in the tenant of node %', NEW.parent_id, NEW.id
                USING ERRCODE = 'PT002';
        END IF;
        IF TG_OP = 'UPDATE' AND EXISTS (SELECT 1 FROM auth.org_node_paths p
                        WHERE p.ancestor_id = NEW.id AND p.descendant_id = NEW.parent_id) THEN
            RAISE EXCEPTION 'org node % cannot move under its own descendant %', NEW.id, NEW.parent_id
                USING ERRCODE = 'PT001';
        END IF;
    END IF;
    RETURN NEW;
END
$$;
