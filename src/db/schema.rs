//! Diesel's view of the tables created by `migrations/`, written as
//! `diesel print-schema` would write it: every table of `auth` and `audit`,
//! every column with its type and nullability, the primary keys.
//! `tests/suite/migrations.rs` compares this file with a migrated database,
//! so it cannot drift from the migrations.

pub mod auth {
    diesel::table! {
        auth.tenants (tenant_id) {
            tenant_id -> Uuid,
            tenant_slug -> Text,
            tenant_label -> Text,
            tenant_state_code -> Text,
            created_utc -> Timestamptz,
            updated_utc -> Timestamptz,
            federated_email_link_flag -> Bool,
        }
    }

    diesel::table! {
        auth.users (user_id) {
            user_id -> Uuid,
            tenant_id -> Uuid,
            display_label -> Text,
            user_state_code -> Text,
            created_utc -> Timestamptz,
            updated_utc -> Timestamptz,
            email_addr -> Nullable<Text>,
            phone_e164 -> Nullable<Text>,
        }
    }

    diesel::table! {
        auth.user_identities (ident_id) {
            ident_id -> Uuid,
            tenant_id -> Uuid,
            user_id -> Uuid,
            password_hash_text -> Nullable<Text>,
            created_utc -> Timestamptz,
            updated_utc -> Timestamptz,
            ident_provider_code -> Text,
            provider_subject_key -> Nullable<Text>,
            email_verified_flag -> Bool,
            phone_verified_flag -> Bool,
        }
    }

    diesel::table! {
        auth.refresh_sessions (session_id) {
            session_id -> Uuid,
            tenant_id -> Uuid,
            user_id -> Uuid,
            refresh_token_hash_text -> Text,
            previous_token_hash_text -> Nullable<Text>,
            rotation_count -> Int4,
            client_user_agent_text -> Nullable<Text>,
            client_ip_text -> Nullable<Text>,
            created_utc -> Timestamptz,
            last_refreshed_utc -> Nullable<Timestamptz>,
            expiry_utc -> Timestamptz,
            revoked_utc -> Nullable<Timestamptz>,
            revoked_reason_code -> Nullable<Text>,
            retired_token_hashes_text -> Array<Text>,
        }
    }

    diesel::table! {
        auth.login_throttles (tenant_id, key) {
            tenant_id -> Uuid,
            key -> Text,
            failures -> Int4,
            window_started_at -> Timestamptz,
            locked_until -> Nullable<Timestamptz>,
        }
    }

    diesel::table! {
        auth.anonymous_throttles (scope, subject, counter) {
            scope -> Text,
            subject -> Text,
            counter -> Text,
            failures -> Int4,
            window_started_at -> Timestamptz,
            locked_until -> Nullable<Timestamptz>,
        }
    }

    diesel::table! {
        auth.otp_outbox (id) {
            id -> Uuid,
            tenant_id -> Uuid,
            otp_id -> Uuid,
            channel -> Text,
            destination -> Text,
            purpose -> Text,
            code -> Text,
            created_at -> Timestamptz,
            expires_at -> Timestamptz,
            sent_at -> Nullable<Timestamptz>,
        }
    }

    diesel::table! {
        auth.otp_codes (otp_id) {
            otp_id -> Uuid,
            tenant_id -> Uuid,
            user_id -> Nullable<Uuid>,
            destination_text -> Text,
            channel_code -> Text,
            purpose_code -> Text,
            code_hash_text -> Text,
            attempt_count -> Int4,
            attempt_max -> Int4,
            created_utc -> Timestamptz,
            expiry_utc -> Timestamptz,
            consumed_utc -> Nullable<Timestamptz>,
        }
    }

    diesel::table! {
        auth.org_nodes (org_node_id) {
            org_node_id -> Uuid,
            tenant_id -> Uuid,
            parent_org_node_id -> Nullable<Uuid>,
            node_type_code -> Text,
            node_label -> Text,
            active_flag -> Bool,
            created_utc -> Timestamptz,
            updated_utc -> Timestamptz,
        }
    }

    diesel::table! {
        auth.org_node_paths (ancestor_org_node_id, descendant_org_node_id) {
            tenant_id -> Uuid,
            ancestor_org_node_id -> Uuid,
            descendant_org_node_id -> Uuid,
            depth_val -> Int4,
        }
    }

    diesel::table! {
        auth.capabilities (cap_id) {
            cap_id -> Uuid,
            cap_key -> Text,
            cap_description -> Text,
            created_utc -> Timestamptz,
        }
    }

    diesel::table! {
        auth.roles (role_id) {
            role_id -> Uuid,
            tenant_id -> Uuid,
            role_key -> Text,
            role_label -> Text,
            created_utc -> Timestamptz,
            updated_utc -> Timestamptz,
        }
    }

    diesel::table! {
        auth.role_capabilities (role_id, cap_id) {
            tenant_id -> Uuid,
            role_id -> Uuid,
            cap_id -> Uuid,
        }
    }

    diesel::table! {
        auth.org_assignments (assignment_id) {
            assignment_id -> Uuid,
            tenant_id -> Uuid,
            user_id -> Uuid,
            role_id -> Uuid,
            org_node_id -> Uuid,
            start_utc -> Timestamptz,
            end_utc -> Nullable<Timestamptz>,
            created_utc -> Timestamptz,
        }
    }

    diesel::table! {
        auth.visibility_grants (grant_id) {
            grant_id -> Uuid,
            tenant_id -> Uuid,
            user_id -> Uuid,
            org_node_id -> Uuid,
            access_scope_code -> Text,
            start_utc -> Timestamptz,
            end_utc -> Nullable<Timestamptz>,
            created_utc -> Timestamptz,
        }
    }

    diesel::table! {
        auth.idempotency_keys (tenant_id, caller, operation, key) {
            tenant_id -> Uuid,
            caller -> Text,
            operation -> Text,
            key -> Text,
            request_hash -> Bytea,
            response -> Nullable<Jsonb>,
            created_at -> Timestamptz,
        }
    }

    diesel::table! {
        auth.global_idempotency_keys (caller, operation, key) {
            caller -> Text,
            operation -> Text,
            key -> Text,
            request_hash -> Bytea,
            response -> Nullable<Jsonb>,
            created_at -> Timestamptz,
        }
    }

    diesel::table! {
        auth.invitations (invite_id) {
            invite_id -> Uuid,
            tenant_id -> Uuid,
            target_role_id -> Uuid,
            target_org_node_id -> Uuid,
            invite_token_hash_text -> Text,
            created_utc -> Timestamptz,
            expiry_utc -> Timestamptz,
            accepted_utc -> Nullable<Timestamptz>,
            accepted_user_id -> Nullable<Uuid>,
            revoked_utc -> Nullable<Timestamptz>,
            email_addr -> Nullable<Text>,
            phone_e164 -> Nullable<Text>,
            invited_by_user_id -> Nullable<Uuid>,
        }
    }

    diesel::table! {
        auth.services (svc_id) {
            svc_id -> Uuid,
            tenant_id -> Nullable<Uuid>,
            svc_key -> Text,
            svc_label -> Text,
            svc_state_code -> Text,
            created_utc -> Timestamptz,
            updated_utc -> Timestamptz,
        }
    }

    diesel::table! {
        auth.service_secrets (secret_id) {
            secret_id -> Uuid,
            svc_id -> Uuid,
            secret_hash_text -> Text,
            created_utc -> Timestamptz,
            last_used_utc -> Nullable<Timestamptz>,
            revoked_utc -> Nullable<Timestamptz>,
        }
    }

    diesel::table! {
        auth.service_permissions (svc_id, perm_key) {
            svc_id -> Uuid,
            perm_key -> Text,
            created_utc -> Timestamptz,
        }
    }

    diesel::table! {
        auth.service_sessions (svc_session_id) {
            svc_session_id -> Uuid,
            svc_id -> Uuid,
            secret_id -> Nullable<Uuid>,
            token_hash_text -> Text,
            perm_keys -> Array<Text>,
            created_utc -> Timestamptz,
            expiry_utc -> Timestamptz,
            revoked_utc -> Nullable<Timestamptz>,
        }
    }

    diesel::table! {
        auth.token_revocations (session_id) {
            session_id -> Uuid,
            token_kind -> Text,
            revoked_at -> Timestamptz,
            expires_at -> Timestamptz,
        }
    }

    diesel::joinable!(users -> tenants (tenant_id));
    diesel::joinable!(org_nodes -> tenants (tenant_id));
    diesel::joinable!(roles -> tenants (tenant_id));
    diesel::joinable!(role_capabilities -> roles (role_id));
    diesel::joinable!(role_capabilities -> capabilities (cap_id));
    diesel::joinable!(org_assignments -> users (user_id));
    diesel::joinable!(org_assignments -> roles (role_id));
    diesel::joinable!(org_assignments -> org_nodes (org_node_id));
    diesel::joinable!(visibility_grants -> org_nodes (org_node_id));
    diesel::joinable!(service_secrets -> services (svc_id));
    diesel::joinable!(services -> tenants (tenant_id));
    diesel::table! {
        auth.endpoint_policy (endpoint_id) {
            endpoint_id -> Uuid,
            service_key -> Text,
            method_code -> Text,
            route_pattern -> Text,
            capability -> Text,
            node_source_code -> Text,
            node_source_name -> Text,
            created_utc -> Timestamptz,
            updated_utc -> Timestamptz,
        }
    }
    diesel::table! {
        auth.endpoint_catalogue_version (singleton_flag) {
            singleton_flag -> Bool,
            version_no -> Int8,
            change_token -> Uuid,
        }
    }
    diesel::table! {
        auth.id_token_uses (token_sha256) {
            token_sha256 -> Bytea,
            tenant_id -> Uuid,
            expiry_utc -> Timestamptz,
            created_utc -> Timestamptz,
        }
    }
    diesel::table! {
        auth.decision_roles (role_name) {
            role_name -> Text,
            tenant_ids -> Nullable<Array<Uuid>>,
            signed_flag -> Bool,
            updated_utc -> Timestamptz,
        }
    }
    diesel::table! {
        auth.token_issuers (issuer_text) {
            issuer_text -> Text,
            created_utc -> Timestamptz,
        }
    }
    diesel::table! {
        auth.sql_assertion_keys (key_id) {
            key_id -> Text,
            secret_key -> Bytea,
            created_utc -> Timestamptz,
            retired_utc -> Nullable<Timestamptz>,
        }
    }

    diesel::joinable!(service_permissions -> services (svc_id));
    diesel::joinable!(service_sessions -> services (svc_id));

    diesel::allow_tables_to_appear_in_same_query!(
        tenants,
        users,
        user_identities,
        refresh_sessions,
        otp_codes,
        org_nodes,
        org_node_paths,
        capabilities,
        roles,
        role_capabilities,
        org_assignments,
        visibility_grants,
        invitations,
        services,
        service_secrets,
        service_permissions,
        service_sessions,
        token_revocations,
        login_throttles,
        anonymous_throttles,
        otp_outbox,
        endpoint_policy,
        endpoint_catalogue_version,
        id_token_uses,
        decision_roles,
        token_issuers,
        sql_assertion_keys,
    );
}

pub mod audit {
    diesel::table! {
        audit.audit_events (audit_id) {
            audit_id -> Uuid,
            occurred_utc -> Timestamptz,
            tenant_id -> Nullable<Uuid>,
            actor_kind_code -> Text,
            action_key -> Text,
            entity_kind_code -> Text,
            entity_id -> Nullable<Uuid>,
            request_id -> Nullable<Text>,
            payload_json -> Jsonb,
            actor_user_id -> Nullable<Uuid>,
            actor_svc_id -> Nullable<Uuid>,
            entity_ref_text -> Nullable<Text>,
        }
    }

    diesel::table! {
        audit.policy_change_log (change_id) {
            change_id -> Uuid,
            occurred_utc -> Timestamptz,
            actor_kind_code -> Text,
            actor_svc_id -> Nullable<Uuid>,
            action_key -> Text,
            endpoint_id -> Uuid,
            before_json -> Nullable<Jsonb>,
            after_json -> Nullable<Jsonb>,
            request_id -> Nullable<Text>,
        }
    }

    diesel::table! {
        audit.access_changes (change_position) {
            change_position -> BigInt,
            audit_id -> Uuid,
            tenant_id -> Nullable<Uuid>,
            committed_utc -> Timestamptz,
            capability_keys -> Nullable<Array<Text>>,
            subtree_root_id -> Nullable<Uuid>,
            user_ids -> Array<Uuid>,
            effective_from -> Nullable<Timestamptz>,
            effective_until -> Nullable<Timestamptz>,
        }
    }

    diesel::table! {
        audit.access_change_horizon (singleton) {
            singleton -> Bool,
            pruned_through -> BigInt,
            pruned_utc -> Nullable<Timestamptz>,
        }
    }

    diesel::joinable!(access_changes -> audit_events (audit_id));
    diesel::allow_tables_to_appear_in_same_query!(audit_events, access_changes);
}
