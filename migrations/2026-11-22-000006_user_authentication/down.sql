DROP POLICY refresh_token_lookup ON auth.refresh_sessions;
DROP INDEX auth.otp_codes_live_idx;
DROP TABLE auth.otp_outbox;
DROP TABLE auth.login_throttles;
DROP INDEX auth.refresh_sessions_token_hash_idx;
ALTER TABLE auth.refresh_sessions DROP COLUMN retired_token_hashes;
