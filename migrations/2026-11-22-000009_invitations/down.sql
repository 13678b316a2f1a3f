DROP INDEX auth.invitations_pending_idx;
ALTER TABLE auth.invitations
    DROP CONSTRAINT invitations_expire_after_creation,
    DROP CONSTRAINT invitations_accepted_by,
    DROP CONSTRAINT invitations_one_outcome;
DROP POLICY invitation_token_lookup ON auth.invitations;
