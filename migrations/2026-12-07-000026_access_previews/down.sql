DROP POLICY preview_read ON audit.audit_events;
