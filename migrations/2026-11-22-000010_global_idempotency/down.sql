DROP TABLE auth.global_idempotency_keys;
