-- Federated (OpenID Connect) identities.
--
-- `google` is the seed's provider; `oidc` is any other issuer the service
-- is configured to trust, its subject key written `<issuer> <sub>` so two
-- issuers' subjects never meet.
ALTER TABLE auth.user_identities
    DROP CONSTRAINT user_identities_ident_provider_code_check,
    ADD CONSTRAINT user_identities_ident_provider_code_check
        CHECK (ident_provider_code IN ('password', 'google', 'oidc'));

-- A subject is unique within a tenant, not across tenants: one Google
-- account may belong to a user in each of several tenants, and a first
-- login in one tenant must not fail (and so reveal) because another tenant
-- already linked that account.
ALTER TABLE auth.user_identities
    DROP CONSTRAINT user_identities_provider_subject_key,
    ADD CONSTRAINT user_identities_tenant_provider_subject_key
        UNIQUE (tenant_id, ident_provider_code, provider_subject_key);

-- Whether a first federated login may attach itself to the user who has the
-- token's email, when the provider says the email is verified. Off until
-- the tenant's administrator turns it on.
ALTER TABLE auth.tenants
    ADD COLUMN federated_email_link_flag boolean NOT NULL DEFAULT false;
