-- Columns Portcullis added to the seed's tables, which an INSERT written
-- against the seed's columns leaves out: the tenant of `role_capabilities`
-- and `user_identities` (for their policies) takes the transaction's
-- tenant, which those policies check anyway. The other additions without
-- a default (`tenants.tenant_slug`, `roles.role_key`) are required, as the
-- README's Schema section says.
ALTER TABLE auth.role_capabilities
    ALTER COLUMN tenant_id SET DEFAULT auth.ctx_uuid('app.tenant_id');
ALTER TABLE auth.user_identities
    ALTER COLUMN tenant_id SET DEFAULT auth.ctx_uuid('app.tenant_id');
