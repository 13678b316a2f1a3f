-- What-if previews. A preview runs the real writes in a transaction that
-- is always rolled back, then reads back the audit rows that transaction
-- wrote to learn what changed, and only those: the rows whose xmin is its
-- own transaction id (the id taken modulo 2^32, as xmin holds it). Rows of
-- any other transaction, committed or not, stay invisible to it.
CREATE POLICY preview_read ON audit.audit_events FOR SELECT TO portcullis_app
    USING ((SELECT auth.ctx_text('app.purpose')) = 'preview'
           AND xmin::text = (SELECT (pg_current_xact_id()::text::bigint % 4294967296)::text));
