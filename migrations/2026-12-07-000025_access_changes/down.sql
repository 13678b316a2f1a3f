DROP TRIGGER access_change_positioned ON audit.audit_events;
DROP POLICY watch_read ON audit.audit_events;
DROP FUNCTION audit.sequence_access_change();
DROP FUNCTION audit.access_change_effect(text, uuid, jsonb);
DROP TABLE audit.access_change_horizon;
DROP TABLE audit.access_changes;
DROP SEQUENCE audit.access_change_positions;
DROP FUNCTION audit.changes_access(text);
