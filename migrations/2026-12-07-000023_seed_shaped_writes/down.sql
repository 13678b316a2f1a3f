ALTER TABLE auth.user_identities ALTER COLUMN tenant_id DROP DEFAULT;
ALTER TABLE auth.role_capabilities ALTER COLUMN tenant_id DROP DEFAULT;
