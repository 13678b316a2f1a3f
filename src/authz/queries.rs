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

/// One page of visible nodes in id order: nodes under one of `covering`,
/// with no inactive ancestor, after the cursor, matching the filters.
pub struct VisiblePage<'a> {
    pub covering: &'a Vec<Uuid>,
    pub after: Option<Uuid>,
    pub node_type: Option<&'a str>,
    pub under: Option<Uuid>,
    pub limit: i32,
}

impl QueryId for VisiblePage<'_> {
    type QueryId = VisiblePage<'static>;
    const HAS_STATIC_QUERY_ID: bool = true;
}

impl Query for VisiblePage<'_> {
    type SqlType = (SqlUuid, Nullable<SqlUuid>, Text, Text);
}

impl QueryFragment<Pg> for VisiblePage<'_> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        out.push_sql(
            "SELECT n.id, n.parent_id, n.node_type, n.label FROM auth.org_nodes n WHERE (",
        );
        out.push_bind_param::<Nullable<SqlUuid>, _>(&self.after)?;
        out.push_sql("::uuid IS NULL OR n.id > ");
        out.push_bind_param::<Nullable<SqlUuid>, _>(&self.after)?;
        out.push_sql(") AND (");
        out.push_bind_param::<Nullable<Text>, _>(&self.node_type)?;
        out.push_sql("::text IS NULL OR n.node_type = ");
        out.push_bind_param::<Nullable<Text>, _>(&self.node_type)?;
        out.push_sql(") AND (");
        out.push_bind_param::<Nullable<SqlUuid>, _>(&self.under)?;
        out.push_sql(
            "::uuid IS NULL OR EXISTS (SELECT 1 FROM auth.org_node_paths u \
             WHERE u.descendant_id = n.id AND u.ancestor_id = ",
        );
        out.push_bind_param::<Nullable<SqlUuid>, _>(&self.under)?;
        out.push_sql(
            ")) AND EXISTS (SELECT 1 FROM auth.org_node_paths p \
             WHERE p.descendant_id = n.id AND p.ancestor_id = ANY(",
        );
        out.push_bind_param::<Array<SqlUuid>, _>(self.covering)?;
        out.push_sql(
            ")) AND NOT EXISTS (SELECT 1 FROM auth.org_node_paths p \
             JOIN auth.org_nodes a ON a.id = p.ancestor_id \
             WHERE p.descendant_id = n.id AND a.status <> 'active') \
             ORDER BY n.id LIMIT ",
        );
        out.push_bind_param::<Integer, _>(&self.limit)?;
        Ok(())
    }
}
