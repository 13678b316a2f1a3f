REVOKE SELECT ON audit.audit_events FROM portcullis_app;
DROP TABLE auth.idempotency_keys;
