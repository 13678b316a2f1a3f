//! The rows a scope's answers depend on, read in one state of the tenant
//! (before the writes, or after them): the nodes in the scope's subtrees
//! and above them, the assignments there, what each role grants, and which
//! users and tenant are active. `CheckCapability`'s rule is then decided
//! on these rows alone.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use diesel::sql_types::{Array, Bool, Nullable, Text, Timestamptz, Uuid as SqlUuid};
use diesel_async::RunQueryDsl;
use scoped_futures::ScopedFutureExt;
use uuid::Uuid;

use super::scope::Scope;
use crate::admin::AdminError;
use crate::db::{Db, RlsContext};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Node {
    pub parent: Option<Uuid>,
    pub active: bool,
    /// Whether the node is in one of the scope's subtrees (else it was
    /// read only as an ancestor of one).
    pub in_scope: bool,
    pub label: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Held {
    pub user: Uuid,
    pub role: Uuid,
    pub node: Uuid,
    pub start: DateTime<Utc>,
    pub end: Option<DateTime<Utc>>,
}

impl Held {
    pub fn in_force_at(&self, t: DateTime<Utc>) -> bool {
        self.start <= t && self.end.is_none_or(|end| end > t)
    }
}

/// One state of the tenant, as far as a scope needs it.
#[derive(Clone, Debug, Default)]
pub struct World {
    pub nodes: HashMap<Uuid, Node>,
    pub held: Vec<Held>,
    /// The capabilities each role grants (those in the scope).
    pub grants: HashMap<Uuid, Vec<String>>,
    pub user_active: HashMap<Uuid, bool>,
    pub tenant_active: bool,
    /// When it was read: a check made right after the writes answers as
    /// of then (not of the transaction's start, which is before the
    /// writes read their clock).
    pub now: DateTime<Utc>,
}

#[derive(diesel::QueryableByName)]
struct NodeRow {
    #[diesel(sql_type = SqlUuid)]
    org_node_id: Uuid,
    #[diesel(sql_type = Nullable<SqlUuid>)]
    parent_org_node_id: Option<Uuid>,
    #[diesel(sql_type = Bool)]
    active_flag: bool,
    #[diesel(sql_type = Bool)]
    in_scope: bool,
    #[diesel(sql_type = Text)]
    node_label: String,
}

#[derive(diesel::QueryableByName)]
struct HeldRow {
    #[diesel(sql_type = SqlUuid)]
    user_id: Uuid,
    #[diesel(sql_type = SqlUuid)]
    role_id: Uuid,
    #[diesel(sql_type = SqlUuid)]
    org_node_id: Uuid,
    #[diesel(sql_type = Timestamptz)]
    start_utc: DateTime<Utc>,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    end_utc: Option<DateTime<Utc>>,
    #[diesel(sql_type = Bool)]
    user_active: bool,
}

#[derive(diesel::QueryableByName)]
struct GrantRow {
    #[diesel(sql_type = SqlUuid)]
    role_id: Uuid,
    #[diesel(sql_type = Text)]
    cap_key: String,
}

#[derive(diesel::QueryableByName)]
struct TenantRow {
    #[diesel(sql_type = Bool)]
    active: bool,
    #[diesel(sql_type = Timestamptz)]
    now: DateTime<Utc>,
}

/// Every node of the tenant, all in scope.
const ALL_NODES: &str = "\
    SELECT org_node_id, parent_org_node_id, active_flag, true AS in_scope, node_label \
      FROM auth.org_nodes WHERE tenant_id = $1";

/// The nodes of the scope's subtrees (`in_scope`) and their ancestors.
const NODES: &str = "\
    SELECT n.org_node_id, n.parent_org_node_id, n.active_flag, bool_or(s.in_scope) AS in_scope, n.node_label \
      FROM auth.org_nodes n \
      JOIN (SELECT p.descendant_org_node_id AS id, true AS in_scope FROM auth.org_node_paths p \
             WHERE p.ancestor_org_node_id = ANY($2) \
            UNION ALL \
            SELECT p.ancestor_org_node_id, false FROM auth.org_node_paths p \
             WHERE p.descendant_org_node_id = ANY($2)) s ON s.id = n.org_node_id \
     WHERE n.tenant_id = $1 \
     GROUP BY n.org_node_id";

/// Assignments not yet ended, with whether the user is active; narrowed
/// by [`HELD_AT`] and [`HELD_BY`]. (Each narrowing is its own text, not
/// `$n IS NULL OR …`: every plan here is generic, and a generic plan of
/// that form cannot use the indexes.)
const HELD: &str = "\
    SELECT oa.user_id, oa.role_id, oa.org_node_id, oa.start_utc, oa.end_utc, \
           u.user_state_code = 'active' AS user_active \
      FROM auth.org_assignments oa JOIN auth.users u ON u.user_id = oa.user_id \
     WHERE oa.tenant_id = $1 AND (oa.end_utc IS NULL OR oa.end_utc > now())";
const HELD_AT: &str = " AND oa.org_node_id = ANY(";
const HELD_BY: &str = " AND oa.user_id = ANY(";

/// What each of the tenant's roles grants, narrowed by [`GRANTS_OF`].
const GRANTS: &str = "\
    SELECT rc.role_id, c.cap_key FROM auth.role_capabilities rc \
      JOIN auth.capabilities c ON c.cap_id = rc.cap_id \
     WHERE rc.tenant_id = $1";
const GRANTS_OF: &str = " AND c.cap_key = ANY($2)";

/// `base` with the tenant as `$1`, narrowed by each `(text, values)` that
/// has values, each bound as the next parameter.
fn narrowed<'a>(
    base: &str,
    tenant: Uuid,
    narrowing: [(&str, Option<&'a Vec<Uuid>>); 2],
) -> diesel::query_builder::BoxedSqlQuery<'a, diesel::pg::Pg, diesel::query_builder::SqlQuery> {
    let mut sql = base.to_owned();
    let mut values = Vec::new();
    for (text, value) in narrowing {
        if let Some(value) = value {
            values.push(value);
            sql += &format!("{text}${})", values.len() + 1);
        }
    }
    let mut query = diesel::sql_query(sql)
        .into_boxed()
        .bind::<SqlUuid, _>(tenant);
    for value in values {
        query = query.bind::<Array<SqlUuid>, _>(value);
    }
    query
}

impl World {
    /// Reads the state of `tenant` that `scope` needs, in one transaction
    /// (the rehearsal's, so before and after are read alike).
    pub async fn read(db: &Db, tenant: Uuid, scope: &Scope) -> Result<World, AdminError> {
        let subtrees: Option<Vec<Uuid>> =
            scope.subtrees.only().map(|s| s.iter().copied().collect());
        let users: Option<Vec<Uuid>> = scope.users.only().map(|s| s.iter().copied().collect());
        let capabilities: Option<Vec<String>> = scope
            .capabilities
            .only()
            .map(|s| s.iter().cloned().collect());
        db.read(&RlsContext::tenant(tenant), |conn| {
            async move {
                let nodes: Vec<NodeRow> = match &subtrees {
                    None => {
                        diesel::sql_query(ALL_NODES)
                            .bind::<SqlUuid, _>(tenant)
                            .load(conn)
                            .await?
                    }
                    Some(subtrees) => {
                        diesel::sql_query(NODES)
                            .bind::<SqlUuid, _>(tenant)
                            .bind::<Array<SqlUuid>, _>(subtrees)
                            .load(conn)
                            .await?
                    }
                };
                // Only the nodes read matter: holdings elsewhere cover none of them.
                let at: Option<Vec<Uuid>> = subtrees
                    .as_ref()
                    .map(|_| nodes.iter().map(|n| n.org_node_id).collect());
                let held: Vec<HeldRow> = narrowed(
                    HELD,
                    tenant,
                    [(HELD_AT, at.as_ref()), (HELD_BY, users.as_ref())],
                )
                .load(conn)
                .await?;
                let grants: Vec<GrantRow> = match &capabilities {
                    None => {
                        diesel::sql_query(GRANTS)
                            .bind::<SqlUuid, _>(tenant)
                            .load(conn)
                            .await?
                    }
                    Some(keys) => {
                        diesel::sql_query([GRANTS, GRANTS_OF].concat())
                            .bind::<SqlUuid, _>(tenant)
                            .bind::<Array<Text>, _>(keys)
                            .load(conn)
                            .await?
                    }
                };
                let tenant_row: Vec<TenantRow> = diesel::sql_query(
                    "SELECT tenant_state_code = 'active' AS active, clock_timestamp() AS now \
                       FROM auth.tenants WHERE tenant_id = $1",
                )
                .bind::<SqlUuid, _>(tenant)
                .load(conn)
                .await?;
                Ok::<_, AdminError>(World::from_rows(nodes, held, grants, tenant_row))
            }
            .scope_boxed()
        })
        .await
    }

    fn from_rows(
        nodes: Vec<NodeRow>,
        held: Vec<HeldRow>,
        grants: Vec<GrantRow>,
        tenant: Vec<TenantRow>,
    ) -> World {
        let tenant = tenant.into_iter().next();
        let mut world = World {
            tenant_active: tenant.as_ref().is_some_and(|t| t.active),
            now: tenant.map_or(DateTime::<Utc>::MIN_UTC, |t| t.now),
            ..World::default()
        };
        for n in nodes {
            let node = Node {
                parent: n.parent_org_node_id,
                active: n.active_flag,
                in_scope: n.in_scope,
                label: n.node_label,
            };
            world.nodes.insert(n.org_node_id, node);
        }
        for h in held {
            world.user_active.insert(h.user_id, h.user_active);
            world.held.push(Held {
                user: h.user_id,
                role: h.role_id,
                node: h.org_node_id,
                start: h.start_utc,
                end: h.end_utc,
            });
        }
        for g in grants {
            world.grants.entry(g.role_id).or_default().push(g.cap_key);
        }
        world
    }
}
