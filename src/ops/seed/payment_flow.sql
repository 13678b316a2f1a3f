-- payment_flow: the platform primer's example service, its table fenced by
-- Portcullis's model. Run by its migration role (which owns the schema), so
-- re-running it changes nothing. `{app_role}` is its application role.
CREATE TABLE IF NOT EXISTS payment_flow.payment_requests (
    request_id    uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id     uuid NOT NULL,
    org_node_id   uuid NOT NULL,
    memo_text     text NOT NULL CHECK (length(memo_text) BETWEEN 1 AND 200),
    amount_cents  bigint NOT NULL CHECK (amount_cents > 0),
    status_code   text NOT NULL DEFAULT 'pending'
                  CHECK (status_code IN ('pending', 'approved', 'rejected')),
    created_utc   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS payment_requests_node_idx
    ON payment_flow.payment_requests (org_node_id, created_utc);
ALTER TABLE payment_flow.payment_requests ENABLE ROW LEVEL SECURITY;
ALTER TABLE payment_flow.payment_requests FORCE ROW LEVEL SECURITY;

-- Reading a request needs payment.ledger.read at its node; submitting or
-- approving one needs payment.transfer.approve there. Each set of nodes is
-- computed once per statement, as an array, so PostgreSQL can read the
-- table through payment_requests_node_idx as it would for a literal list.
DROP POLICY IF EXISTS read_ledger ON payment_flow.payment_requests;
CREATE POLICY read_ledger ON payment_flow.payment_requests FOR SELECT
    USING (org_node_id = ANY (auth.org_node_ids_with_capability('payment.ledger.read')));
-- A row written carries the user's own tenant (auth.current_tenant()): the
-- node check alone would let a row name any tenant it likes.
DROP POLICY IF EXISTS submit ON payment_flow.payment_requests;
CREATE POLICY submit ON payment_flow.payment_requests FOR INSERT
    WITH CHECK (tenant_id = auth.current_tenant()
                AND org_node_id = ANY (auth.org_node_ids_with_capability('payment.transfer.approve')));
DROP POLICY IF EXISTS approve ON payment_flow.payment_requests;
CREATE POLICY approve ON payment_flow.payment_requests FOR UPDATE
    USING (org_node_id = ANY (auth.org_node_ids_with_capability('payment.transfer.approve')))
    WITH CHECK (tenant_id = auth.current_tenant()
                AND org_node_id = ANY (auth.org_node_ids_with_capability('payment.transfer.approve')));

-- Approving changes the status and nothing else; requests are never deleted.
REVOKE UPDATE, DELETE ON payment_flow.payment_requests FROM {app_role};
GRANT UPDATE (status_code) ON payment_flow.payment_requests TO {app_role};
