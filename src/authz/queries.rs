//! The statements of the hot path, as diesel queries with a static query id
//! so diesel-async prepares each once per connection and reuses it (raw
//! `sql_query` would be re-parsed on every call).

use std::marker::PhantomData;

use diesel::QueryResult;
use diesel::pg::Pg;
use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};
use diesel::sql_types::{Array, Integer, Nullable, Text, Uuid as SqlUuid};
use uuid::Uuid;

/// A batch function of `auth`: `(user, capabilities[], nodes[])`.
pub trait BatchFunction: 'static {
    const CALL: &'static str;
    type Row;
}

/// `auth.check_capabilities`: `(ordinal, reason)` per check.
pub struct Checks;
impl BatchFunction for Checks {
    const CALL: &'static str = "SELECT ordinal, reason FROM auth.check_capabilities(";
    type Row = (Integer, Text);
}

/// `auth.explain_capabilities`: the assignments behind each allowed check.
pub struct Explanations;
impl BatchFunction for Explanations {
    const CALL: &'static str = "SELECT ordinal, assignment_id, role_id, role_label, org_node_id, depth FROM auth.explain_capabilities(";
    type Row = (Integer, SqlUuid, SqlUuid, Text, SqlUuid, Integer);
}

pub struct BatchQuery<'a, F> {
    pub user: Uuid,
    pub capabilities: &'a Vec<String>,
    pub nodes: &'a Vec<Uuid>,
    pub function: PhantomData<F>,
}

impl<'a, F> BatchQuery<'a, F> {
    pub fn new(user: Uuid, capabilities: &'a Vec<String>, nodes: &'a Vec<Uuid>) -> Self {
        Self {
            user,
            capabilities,
            nodes,
            function: PhantomData,
        }
    }
}

impl<F: BatchFunction> QueryId for BatchQuery<'_, F> {
    type QueryId = F;
    const HAS_STATIC_QUERY_ID: bool = true;
}

impl<F: BatchFunction> Query for BatchQuery<'_, F> {
    type SqlType = F::Row;
}

impl<F: BatchFunction> QueryFragment<Pg> for BatchQuery<'_, F> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        out.push_sql(F::CALL);
        out.push_bind_param::<SqlUuid, _>(&self.user)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<Text>, _>(self.capabilities)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<SqlUuid>, _>(self.nodes)?;
        out.push_sql(")");
        Ok(())
    }
}

/// Checks of several users of one tenant in one statement (an AuthZEN
/// batch): `auth.check_capabilities` for each `(user, capability, node)`,
/// `(ordinal, reason)` in request order.
pub struct UsersChecks<'a> {
    pub users: &'a Vec<Uuid>,
    pub capabilities: &'a Vec<String>,
    pub nodes: &'a Vec<Uuid>,
}

impl QueryId for UsersChecks<'_> {
    type QueryId = UsersChecks<'static>;
    const HAS_STATIC_QUERY_ID: bool = true;
}

impl Query for UsersChecks<'_> {
    type SqlType = (Integer, Text);
}

impl QueryFragment<Pg> for UsersChecks<'_> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        out.push_sql("SELECT b.ordinal::integer, c.reason FROM unnest(");
        out.push_bind_param::<Array<SqlUuid>, _>(self.users)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<Text>, _>(self.capabilities)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<SqlUuid>, _>(self.nodes)?;
        out.push_sql(
            ") WITH ORDINALITY AS b (user_id, capability, node, ordinal) \
             CROSS JOIN LATERAL auth.check_capabilities(b.user_id, ARRAY[b.capability], ARRAY[b.node]) AS c \
             ORDER BY b.ordinal",
        );
        Ok(())
    }
}

/// The nodes a page is drawn from: every node under one of these.
#[derive(Clone, Copy, Debug)]
pub enum Covering<'a> {
    /// Where the user holds an in-force assignment, or an in-force
    /// visibility grant (only `analyze` ones when `analyze_only`).
    Visible { user: Uuid, analyze_only: bool },
    /// Where the user holds an in-force assignment whose role grants
    /// `capability`.
    Holding { user: Uuid, capability: &'a str },
}

impl Covering<'_> {
    fn user(&self) -> &Uuid {
        match self {
            Self::Visible { user, .. } | Self::Holding { user, .. } => user,
        }
    }

    fn walk_ast<'b>(&'b self, out: &mut AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        const IN_FORCE: &str =
            " AND oa.start_utc <= now() AND (oa.end_utc IS NULL OR oa.end_utc > now())";
        match self {
            Self::Visible { user, analyze_only } => {
                // The same rows as the listing's sources (assignments with
                // their role, grants), so every listed node has a source.
                out.push_sql(
                    "SELECT oa.org_node_id FROM auth.org_assignments oa \
                       JOIN auth.roles r ON r.role_id = oa.role_id WHERE oa.user_id = ",
                );
                out.push_bind_param::<SqlUuid, _>(user)?;
                out.push_sql(IN_FORCE);
                out.push_sql(" UNION SELECT vg.org_node_id FROM auth.visibility_grants vg WHERE vg.user_id = ");
                out.push_bind_param::<SqlUuid, _>(user)?;
                out.push_sql(
                    " AND vg.start_utc <= now() AND (vg.end_utc IS NULL OR vg.end_utc > now())",
                );
                if *analyze_only {
                    out.push_sql(" AND vg.access_scope_code = 'analyze'");
                }
            }
            Self::Holding { user, capability } => {
                out.push_sql(
                    "SELECT DISTINCT oa.org_node_id FROM auth.org_assignments oa \
                       JOIN auth.role_capabilities rc ON rc.role_id = oa.role_id \
                       JOIN auth.capabilities cap ON cap.cap_id = rc.cap_id AND cap.cap_key = ",
                );
                out.push_bind_param::<Text, _>(capability)?;
                out.push_sql(" WHERE oa.user_id = ");
                out.push_bind_param::<SqlUuid, _>(user)?;
                out.push_sql(IN_FORCE);
            }
        }
        Ok(())
    }
}

/// One page of visible nodes in id order, in one statement, on one of two
/// paths (each under a one-time condition, so only one runs):
///
/// - When the covering nodes include the tenant's only root, every node of
///   the tenant is under it: the page is the tenant's nodes in id order from
///   the cursor, read from `org_nodes` alone, a node's covering nodes found
///   by one closure lookup each (none for the root: it covers all). A
///   tenant-wide listing no longer pays a closure row and an `org_nodes`
///   lookup per listed node.
/// - Otherwise: the covering nodes, and each one's descendants from the
///   closure table's `(ancestor_org_node_id, descendant_org_node_id)` index
///   in id order from the cursor, `limit` at most per covering node, so a
///   page costs the same at any depth and in a tenant of any size. A node's
///   covering nodes come from the same scan that found it: had a covering
///   node above it left it out (past that node's `limit`), that node would
///   have `limit` descendants before it and it could not be on the page.
///
/// Empty when the user or the tenant is not active; nodes under an inactive
/// node are skipped (the inactive nodes are gathered once, usually none,
/// and the test per row is skipped when there are none).
pub struct VisiblePage<'a> {
    pub covering: Covering<'a>,
    /// The last id of the previous page; the nil UUID for the first page.
    pub after: Uuid,
    pub node_type: Option<&'a str>,
    pub under: Option<Uuid>,
    pub limit: i32,
}

// The SQL varies with the filters given (a clause that cannot apply is left
// out rather than guarded by `$n IS NULL OR`, which would spoil the plan),
// so the statement cache keys it by its text.
impl QueryId for VisiblePage<'_> {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl Query for VisiblePage<'_> {
    /// Node, parent, type, label, and the covering nodes it lies under.
    type SqlType = (SqlUuid, Nullable<SqlUuid>, Text, Text, Array<SqlUuid>);
}

impl VisiblePage<'_> {
    /// The conditions on a listed node `node` (a column; its type in
    /// `node_type`) besides being under a covering node: of the type, after
    /// the cursor, under the node asked for, under no inactive node; then
    /// the first `limit` of them in id order.
    fn nodes_in_order<'b>(
        &'b self,
        out: &mut AstPass<'_, 'b, Pg>,
        node: &str,
        node_type: &str,
    ) -> QueryResult<()> {
        if let Some(wanted) = &self.node_type {
            out.push_sql(" AND ");
            out.push_sql(node_type);
            out.push_sql(" = ");
            out.push_bind_param::<Text, _>(wanted)?;
        }
        out.push_sql(" AND ");
        out.push_sql(node);
        out.push_sql(" > ");
        out.push_bind_param::<SqlUuid, _>(&self.after)?;
        if let Some(under) = &self.under {
            out.push_sql(
                " AND EXISTS (SELECT 1 FROM auth.org_node_paths u WHERE u.descendant_org_node_id = ",
            );
            out.push_sql(node);
            out.push_sql(" AND u.ancestor_org_node_id = ");
            out.push_bind_param::<SqlUuid, _>(under)?;
            out.push_sql(")");
        }
        out.push_sql(
            " AND ((SELECT ids FROM inactive) IS NULL OR NOT EXISTS (SELECT 1 FROM auth.org_node_paths q \
               WHERE q.descendant_org_node_id = ",
        );
        out.push_sql(node);
        out.push_sql(
            " AND q.ancestor_org_node_id = ANY((SELECT ids FROM inactive)::uuid[]))) ORDER BY ",
        );
        out.push_sql(node);
        out.push_sql(" LIMIT ");
        out.push_bind_param::<Integer, _>(&self.limit)
    }
}

impl QueryFragment<Pg> for VisiblePage<'_> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        out.push_sql("WITH covering (id) AS MATERIALIZED (");
        self.covering.walk_ast(&mut out)?;
        // (A literal `NOT active_flag`, not a bind parameter, so the partial
        // index `org_nodes_inactive_idx` matches; likewise
        // `org_nodes_root_idx` for `parent_org_node_id IS NULL`.)
        out.push_sql(
            "), inactive AS (SELECT array_agg(org_node_id) AS ids FROM auth.org_nodes WHERE NOT active_flag), \
             sole_root AS (SELECT (array_agg(org_node_id))[1] AS id FROM auth.org_nodes \
               WHERE parent_org_node_id IS NULL HAVING count(*) = 1), \
             whole AS (SELECT EXISTS (SELECT 1 FROM sole_root r JOIN covering c ON c.id = r.id) AS yes), \
             subject_active AS (SELECT EXISTS (SELECT 1 FROM auth.users su \
               JOIN auth.tenants st ON st.tenant_id = su.tenant_id WHERE su.user_id = ",
        );
        out.push_bind_param::<SqlUuid, _>(self.covering.user())?;
        out.push_sql(
            " AND su.user_state_code = 'active' AND st.tenant_state_code = 'active') AS yes) \
             SELECT * FROM ((SELECT n.org_node_id, n.parent_org_node_id, n.node_type_code, n.node_label, \
                 ARRAY(SELECT c.id FROM covering c WHERE c.id = (SELECT id FROM sole_root) \
                   OR EXISTS (SELECT 1 FROM auth.org_node_paths h \
                     WHERE h.ancestor_org_node_id = c.id AND h.descendant_org_node_id = n.org_node_id)) \
               FROM auth.org_nodes n \
              WHERE (SELECT yes FROM whole) AND (SELECT yes FROM subject_active)",
        );
        self.nodes_in_order(&mut out, "n.org_node_id", "n.node_type_code")?;
        out.push_sql(
            ") UNION ALL (SELECT n.org_node_id, n.parent_org_node_id, n.node_type_code, n.node_label, page.holders \
               FROM (SELECT s.id, array_agg(c.id) AS holders FROM covering c \
               CROSS JOIN LATERAL (SELECT p.descendant_org_node_id AS id FROM auth.org_node_paths p",
        );
        if self.node_type.is_some() {
            out.push_sql(" JOIN auth.org_nodes m ON m.org_node_id = p.descendant_org_node_id");
        }
        out.push_sql(" WHERE p.ancestor_org_node_id = c.id");
        self.nodes_in_order(&mut out, "p.descendant_org_node_id", "m.node_type_code")?;
        out.push_sql(
            ") s WHERE NOT (SELECT yes FROM whole) AND (SELECT yes FROM subject_active) \
             GROUP BY s.id ORDER BY s.id LIMIT ",
        );
        out.push_bind_param::<Integer, _>(&self.limit)?;
        out.push_sql(
            ") page JOIN auth.org_nodes n ON n.org_node_id = page.id)) AS listed ORDER BY org_node_id",
        );
        Ok(())
    }
}

/// Whether the capability key and the node (in the context's tenant)
/// exist: `(capabilities, nodes)` counted, each 0 or 1.
pub struct KnownCapabilityAndNode<'a> {
    pub capability: &'a str,
    pub node: Uuid,
}

impl QueryId for KnownCapabilityAndNode<'_> {
    type QueryId = KnownCapabilityAndNode<'static>;
    const HAS_STATIC_QUERY_ID: bool = true;
}

impl Query for KnownCapabilityAndNode<'_> {
    type SqlType = (Integer, Integer);
}

impl QueryFragment<Pg> for KnownCapabilityAndNode<'_> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        out.push_sql("SELECT (SELECT count(*) FROM auth.capabilities WHERE cap_key = ");
        out.push_bind_param::<Text, _>(&self.capability)?;
        out.push_sql(")::int, (SELECT count(*) FROM auth.org_nodes WHERE org_node_id = ");
        out.push_bind_param::<SqlUuid, _>(&self.node)?;
        out.push_sql(")::int");
        Ok(())
    }
}

/// One page of the users who hold `capability` at `node` (ids after
/// `after`, at most `limit` users) with every assignment that gives it: an
/// active tenant, no inactive node from `node` up, an assignment in force
/// at `node` or above whose role holds the capability, an active user.
pub struct HoldersPage<'a> {
    pub capability: &'a str,
    pub node: Uuid,
    pub after: Uuid,
    pub limit: i32,
}

impl QueryId for HoldersPage<'_> {
    type QueryId = HoldersPage<'static>;
    const HAS_STATIC_QUERY_ID: bool = true;
}

impl Query for HoldersPage<'_> {
    /// User, assignment, role, role label, the node holding it, depth.
    type SqlType = (SqlUuid, SqlUuid, SqlUuid, Text, SqlUuid, Integer);
}

impl QueryFragment<Pg> for HoldersPage<'_> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        out.push_sql(
            "WITH target AS (SELECT n.org_node_id FROM auth.org_nodes n \
               JOIN auth.tenants t ON t.tenant_id = n.tenant_id AND t.tenant_state_code = 'active' \
              WHERE n.org_node_id = ",
        );
        out.push_bind_param::<SqlUuid, _>(&self.node)?;
        out.push_sql(
            " AND NOT EXISTS (SELECT 1 FROM auth.org_node_paths p \
                 JOIN auth.org_nodes a ON a.org_node_id = p.ancestor_org_node_id \
                WHERE p.descendant_org_node_id = n.org_node_id AND NOT a.active_flag)), \
             grants AS (SELECT oa.user_id, oa.assignment_id, r.role_id, r.role_label, \
                    oa.org_node_id, p.depth_val AS depth \
               FROM target \
               JOIN auth.org_node_paths p ON p.descendant_org_node_id = target.org_node_id \
               JOIN auth.org_assignments oa ON oa.org_node_id = p.ancestor_org_node_id \
               JOIN auth.role_capabilities rc ON rc.role_id = oa.role_id \
               JOIN auth.capabilities cap ON cap.cap_id = rc.cap_id AND cap.cap_key = ",
        );
        out.push_bind_param::<Text, _>(&self.capability)?;
        out.push_sql(
            " JOIN auth.roles r ON r.role_id = oa.role_id \
               JOIN auth.users u ON u.user_id = oa.user_id AND u.user_state_code = 'active' \
              WHERE oa.start_utc <= now() AND (oa.end_utc IS NULL OR oa.end_utc > now()) \
                AND oa.user_id > ",
        );
        out.push_bind_param::<SqlUuid, _>(&self.after)?;
        out.push_sql("), page AS (SELECT DISTINCT user_id FROM grants ORDER BY user_id LIMIT ");
        out.push_bind_param::<Integer, _>(&self.limit)?;
        out.push_sql(
            ") SELECT g.user_id, g.assignment_id, g.role_id, g.role_label, g.org_node_id, g.depth \
               FROM grants g JOIN page USING (user_id) \
              ORDER BY g.user_id, g.depth, g.assignment_id",
        );
        Ok(())
    }
}

/// For this transaction only: walk the closure table's index in order
/// rather than collect a bitmap of every descendant and sort it. PostgreSQL
/// estimates a node's descendants at the table's average (about five) and
/// picks the bitmap; for a node high in the tree that reads the whole
/// subtree to keep a page of it. And no JIT compilation: a page's generic
/// plan, its limit unknown, is estimated over a whole tenant, and on a
/// tenant of a million nodes the estimate passed `jit_above_cost`, so each
/// connection's first page compiled for about 300 ms and every page after
/// paid for the compiled plan's start-up (a page took 3 s under load).
pub struct PreferOrderedIndexScans;

impl QueryId for PreferOrderedIndexScans {
    type QueryId = PreferOrderedIndexScans;
    const HAS_STATIC_QUERY_ID: bool = true;
}

impl PreferOrderedIndexScans {
    /// Sets it on `conn`; pipelined before the statements it should plan.
    pub async fn apply(conn: &diesel_async::AsyncPgConnection) -> QueryResult<()> {
        use diesel_async::RunQueryDsl;
        Self.execute(&mut { conn }).await.map(drop)
    }
}

impl QueryFragment<Pg> for PreferOrderedIndexScans {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        out.push_sql(
            "SELECT pg_catalog.set_config('enable_bitmapscan', 'off', true), pg_catalog.set_config('jit', 'off', true)",
        );
        Ok(())
    }
}
