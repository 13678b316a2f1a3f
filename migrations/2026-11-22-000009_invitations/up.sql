-- Invitations: accepted by someone who holds nothing but the token.
--
-- Before the tenant is known, a transaction may read exactly the invitation
-- the presented token names (app.invitation_id) and learn its tenant, the
-- way a refresh token finds its session; the acceptance itself then runs
-- in that tenant's context like any other change.
CREATE POLICY invitation_token_lookup ON auth.invitations FOR SELECT
    USING (id = (SELECT auth.ctx_uuid('app.invitation_id')));

-- Accepted and revoked are final, and exclusive; an acceptance names its
-- user.
ALTER TABLE auth.invitations
    ADD CONSTRAINT invitations_one_outcome CHECK (accepted_at IS NULL OR revoked_at IS NULL),
    ADD CONSTRAINT invitations_accepted_by CHECK ((accepted_at IS NULL) = (accepted_user_id IS NULL)),
    ADD CONSTRAINT invitations_expire_after_creation CHECK (expires_at > created_at);

-- ListInvitations: a tenant's pending invitations, oldest first.
CREATE INDEX invitations_pending_idx ON auth.invitations (tenant_id, created_at, id)
    WHERE accepted_at IS NULL AND revoked_at IS NULL;
