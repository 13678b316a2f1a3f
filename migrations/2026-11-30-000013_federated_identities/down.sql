-- Federated identities of issuers other than Google cannot be kept under
-- the earlier CHECK: they are deleted. Restoring the global subject
-- uniqueness fails (and leaves everything as it was) if one Google account
-- is linked in several tenants.
ALTER TABLE auth.tenants DROP COLUMN federated_email_link_flag;

DELETE FROM auth.user_identities WHERE ident_provider_code = 'oidc';
ALTER TABLE auth.user_identities
    DROP CONSTRAINT user_identities_ident_provider_code_check,
    ADD CONSTRAINT user_identities_ident_provider_code_check
        CHECK (ident_provider_code IN ('password', 'google'));

ALTER TABLE auth.user_identities
    DROP CONSTRAINT user_identities_tenant_provider_subject_key,
    ADD CONSTRAINT user_identities_provider_subject_key
        UNIQUE (ident_provider_code, provider_subject_key);
