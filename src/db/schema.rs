//! Diesel's view of the tables created by `migrations/`, written as
//! `diesel print-schema` would write it: every table of `auth` and `audit`,
//! every column with its type and nullability, the primary keys.
//! `tests/suite/migrations.rs` compares this file with a migrated database,
//! so it cannot drift from the migrations.

pub mod auth {
    diesel::table! {
        auth.tenants (id) {
            id -> Uuid,
            slug -> Text,
            name -> Text,
            status -> Text,
            created_at -> Timestamptz,
            updated_at -> Timestamptz,
        }
    }

    diesel::table! {
        auth.users (id) {
            id -> Uuid,
            tenant_id -> Uuid,
            display_name -> Text,
            status -> Text,
            created_at -> Timestamptz,
            updated_at -> Timestamptz,
        }
    }

    diesel::table! {
        auth.user_identities (id) {
            id -> Uuid,
            tenant_id -> Uuid,
            user_id -> Uuid,
            kind -> Text,
            login -> Text,
            password_hash -> Nullable<Text>,
            verified_at -> Nullable<Timestamptz>,
            created_at -> Timestamptz,
            updated_at -> Timestamptz,
        }
    }

    diesel::table! {
        auth.refresh_sessions (id) {
            id -> Uuid,
            tenant_id -> Uuid,
            user_id -> Uuid,
            token_hash -> Bytea,
            previous_token_hash -> Nullable<Bytea>,
            generation -> Int4,
            user_agent -> Nullable<Text>,
            client_addr -> Nullable<Text>,
            created_at -> Timestamptz,
            last_refreshed_at -> Nullable<Timestamptz>,
            expires_at -> Timestamptz,
            revoked_at -> Nullable<Timestamptz>,
            revoked_reason -> Nullable<Text>,
            retired_token_hashes -> Array<Bytea>,
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
        auth.otp_codes (id) {
            id -> Uuid,
            tenant_id -> Uuid,
            user_id -> Nullable<Uuid>,
            destination -> Text,
            channel -> Text,
            purpose -> Text,
            code_hash -> Bytea,
            attempt_count -> Int4,
            attempt_max -> Int4,
            created_at -> Timestamptz,
            expires_at -> Timestamptz,
            consumed_at -> Nullable<Timestamptz>,
        }
    }

    diesel::table! {
        auth.org_nodes (id) {
            id -> Uuid,
            tenant_id -> Uuid,
            parent_id -> Nullable<Uuid>,
            node_type -> Text,
            label -> Text,
            status -> Text,
            created_at -> Timestamptz,
            updated_at -> Timestamptz,
        }
    }

    diesel::table! {
        auth.org_node_paths (ancestor_id, descendant_id) {
            tenant_id -> Uuid,
            ancestor_id -> Uuid,
            descendant_id -> Uuid,
            depth -> Int4,
        }
    }

    diesel::table! {
        auth.capabilities (id) {
            id -> Uuid,
            key -> Text,
            description -> Text,
            created_at -> Timestamptz,
        }
    }

    diesel::table! {
        auth.roles (id) {
            id -> Uuid,
            tenant_id -> Uuid,
            key -> Text,
            label -> Text,
            created_at -> Timestamptz,
            updated_at -> Timestamptz,
        }
    }

    diesel::table! {
        auth.role_capabilities (role_id, capability_id) {
            tenant_id -> Uuid,
            role_id -> Uuid,
            capability_id -> Uuid,
        }
    }

    diesel::table! {
        auth.org_assignments (id) {
            id -> Uuid,
            tenant_id -> Uuid,
            user_id -> Uuid,
            role_id -> Uuid,
            org_node_id -> Uuid,
            start_utc -> Timestamptz,
            end_utc -> Nullable<Timestamptz>,
            created_at -> Timestamptz,
        }
    }

    diesel::table! {
        auth.visibility_grants (id) {
            id -> Uuid,
            tenant_id -> Uuid,
            user_id -> Uuid,
            org_node_id -> Uuid,
            scope -> Text,
            start_utc -> Timestamptz,
            end_utc -> Nullable<Timestamptz>,
            created_at -> Timestamptz,
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
        auth.invitations (id) {
            id -> Uuid,
            tenant_id -> Uuid,
            destination_kind -> Text,
            destination -> Text,
            role_id -> Uuid,
            org_node_id -> Uuid,
            token_hash -> Bytea,
            created_at -> Timestamptz,
            expires_at -> Timestamptz,
            accepted_at -> Nullable<Timestamptz>,
            accepted_user_id -> Nullable<Uuid>,
            revoked_at -> Nullable<Timestamptz>,
        }
    }

    diesel::table! {
        auth.services (id) {
            id -> Uuid,
            tenant_id -> Nullable<Uuid>,
            key -> Text,
            label -> Text,
            status -> Text,
            created_at -> Timestamptz,
            updated_at -> Timestamptz,
        }
    }

    diesel::table! {
        auth.service_secrets (id) {
            id -> Uuid,
            service_id -> Uuid,
            secret_hash -> Bytea,
            created_at -> Timestamptz,
            last_used_at -> Nullable<Timestamptz>,
            revoked_at -> Nullable<Timestamptz>,
        }
    }

    diesel::table! {
        auth.service_permissions (service_id, permission) {
            service_id -> Uuid,
            permission -> Text,
            created_at -> Timestamptz,
        }
    }

    diesel::table! {
        auth.service_sessions (id) {
            id -> Uuid,
            service_id -> Uuid,
            secret_id -> Nullable<Uuid>,
            token_hash -> Bytea,
            permissions -> Array<Text>,
            issued_at -> Timestamptz,
            expires_at -> Timestamptz,
            revoked_at -> Nullable<Timestamptz>,
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
    diesel::joinable!(role_capabilities -> capabilities (capability_id));
    diesel::joinable!(org_assignments -> users (user_id));
    diesel::joinable!(org_assignments -> roles (role_id));
    diesel::joinable!(org_assignments -> org_nodes (org_node_id));
    diesel::joinable!(visibility_grants -> org_nodes (org_node_id));
    diesel::joinable!(service_secrets -> services (service_id));
    diesel::joinable!(service_permissions -> services (service_id));
    diesel::joinable!(service_sessions -> services (service_id));

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
    );
}

pub mod audit {
    diesel::table! {
        audit.audit_events (id) {
            id -> Uuid,
            occurred_at -> Timestamptz,
            tenant_id -> Nullable<Uuid>,
            actor_kind -> Text,
            actor_id -> Nullable<Text>,
            action -> Text,
            entity_kind -> Text,
            entity_id -> Nullable<Text>,
            request_id -> Nullable<Text>,
            payload -> Jsonb,
        }
    }
}
