//! The org tree: create, rename, move, deactivate, reactivate, read a
//! subtree. The closure table follows by trigger (cycles refused, moves
//! serialised per tenant); every change writes its audit row with the node
//! before and after, in the same transaction.

use diesel::prelude::*;
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use diesel_async::RunQueryDsl;
use scoped_futures::ScopedFutureExt;
use uuid::Uuid;

use super::idempotency::{Attempt, IdempotencyKey, retry_conflicts};
use super::{AdminCapability, AdminError, Administrator, Item, Label, NodeType};
use crate::db::Db;
use crate::db::schema::auth::{org_node_paths, org_nodes};
use crate::names::OrgNodeId;

/// Most nodes `subtree` returns when asked for no limit.
pub const DEFAULT_SUBTREE_NODES: u32 = 1000;
pub const MAX_SUBTREE_NODES: u32 = 10_000;

#[derive(
    Clone, Debug, PartialEq, Eq, Queryable, Selectable, serde::Serialize, serde::Deserialize,
)]
#[diesel(table_name = org_nodes)]
pub struct OrgNode {
    #[diesel(column_name = org_node_id)]
    pub id: Uuid,
    pub tenant_id: Uuid,
    #[diesel(column_name = parent_org_node_id)]
    pub parent_id: Option<Uuid>,
    #[diesel(column_name = node_type_code)]
    pub node_type: String,
    #[diesel(column_name = node_label)]
    pub label: String,
    #[diesel(column_name = active_flag)]
    pub active: bool,
}

/// One change to one node, for the audit trail.
enum Change {
    Created,
    Renamed,
    Moved,
    Deactivated,
    Reactivated,
}

impl Change {
    fn action(&self) -> &'static str {
        match self {
            Self::Created => "org.node_created",
            Self::Renamed => "org.node_renamed",
            Self::Moved => "org.node_moved",
            Self::Deactivated => "org.node_deactivated",
            Self::Reactivated => "org.node_reactivated",
        }
    }
}

/// Creates a node; with an idempotency key, a repeat of the same request
/// returns the first answer.
pub async fn create(
    db: &Db,
    admin: &Administrator,
    parent: Option<OrgNodeId>,
    node_type: &NodeType,
    label: &Label,
    key: Option<&IdempotencyKey>,
) -> Result<OrgNode, AdminError> {
    retry_conflicts(key, || {
        create_once(db, admin, parent, node_type, label, key)
    })
    .await
}

/// One attempt of [`create`].
async fn create_once(
    db: &Db,
    admin: &Administrator,
    parent: Option<OrgNodeId>,
    node_type: &NodeType,
    label: &Label,
    key: Option<&IdempotencyKey>,
) -> Result<OrgNode, AdminError> {
    if parent.is_none() {
        admin.require_root_creation()?;
    }
    let tenant = admin.tenant_id;
    let attempt = Attempt {
        operation: "create_org_node",
        key,
        request: format!("{parent:?}|{}|{}", node_type.as_str(), label.as_str()),
    };
    db.write(&admin.context(), |conn| {
        async move {
            if let Some(parent) = parent {
                admin
                    .require_in(conn, AdminCapability::OrgWrite, parent, Item::Parent)
                    .await?;
            }
            attempt
                .once(conn, &admin.ledger(), |conn| {
                    async move {
                        let created: OrgNode = diesel::insert_into(org_nodes::table)
                            .values((
                                org_nodes::tenant_id.eq(tenant),
                                org_nodes::parent_org_node_id.eq(parent),
                                org_nodes::node_type_code.eq(node_type.as_str()),
                                org_nodes::node_label.eq(label.as_str()),
                            ))
                            .returning(OrgNode::as_returning())
                            .get_result(conn)
                            .await
                            .map_err(|e| tree_error(e, Item::Parent))?;
                        admin
                            .record_change(
                                conn,
                                Change::Created.action(),
                                ("org_node", created.id),
                                None,
                                &created,
                            )
                            .await?;
                        Ok(created)
                    }
                    .scope_boxed()
                })
                .await
        }
        .scope_boxed()
    })
    .await
}

pub async fn rename(
    db: &Db,
    admin: &Administrator,
    node: OrgNodeId,
    label: &Label,
) -> Result<OrgNode, AdminError> {
    change(db, admin, node, Change::Renamed, Update::Label(label)).await
}

pub async fn move_under(
    db: &Db,
    admin: &Administrator,
    node: OrgNodeId,
    new_parent: OrgNodeId,
) -> Result<OrgNode, AdminError> {
    change(db, admin, node, Change::Moved, Update::Parent(new_parent)).await
}

/// Sets the node's status; setting the status it already has changes
/// nothing and writes no audit row.
pub async fn set_active(
    db: &Db,
    admin: &Administrator,
    node: OrgNodeId,
    active: bool,
) -> Result<OrgNode, AdminError> {
    let kind = if active {
        Change::Reactivated
    } else {
        Change::Deactivated
    };
    change(db, admin, node, kind, Update::Active(active)).await
}

/// The node and the nodes under it, by depth then id, at most `max_nodes`;
/// the flag says whether more exist.
pub async fn subtree(
    db: &Db,
    admin: &Administrator,
    node: OrgNodeId,
    max_nodes: u32,
) -> Result<(Vec<OrgNode>, bool), AdminError> {
    admin
        .require(db, AdminCapability::OrgRead, node, Item::OrgNode)
        .await?;
    let limit = i64::from(max_nodes.clamp(1, MAX_SUBTREE_NODES));
    db.read(&admin.context(), |conn| {
        async move {
            let mut nodes: Vec<OrgNode> = org_node_paths::table
                .inner_join(
                    org_nodes::table
                        .on(org_nodes::org_node_id.eq(org_node_paths::descendant_org_node_id)),
                )
                .filter(org_node_paths::ancestor_org_node_id.eq(node))
                .order((org_node_paths::depth_val, org_nodes::org_node_id))
                .limit(limit + 1)
                .select(OrgNode::as_select())
                .load(conn)
                .await?;
            if nodes.is_empty() {
                return Err(AdminError::NotFound(Item::OrgNode));
            }
            let truncated = nodes.len() as i64 > limit;
            nodes.truncate(limit as usize);
            Ok((nodes, truncated))
        }
        .scope_boxed()
    })
    .await
}

/// What a change sets.
enum Update<'a> {
    Label(&'a Label),
    Parent(OrgNodeId),
    Active(bool),
}

/// Checks the caller may change the node (and, for a move, place it under
/// the new parent), locks it, applies `update`, records before and after,
/// all in one transaction. No row (absent, or another tenant's, hidden by
/// RLS): not found. A change to the value the node already has does
/// nothing and records nothing.
async fn change(
    db: &Db,
    admin: &Administrator,
    node: OrgNodeId,
    kind: Change,
    update: Update<'_>,
) -> Result<OrgNode, AdminError> {
    db.write(&admin.context(), |conn| {
        async move {
            admin
                .require_in(conn, AdminCapability::OrgWrite, node, Item::OrgNode)
                .await?;
            if let Update::Parent(parent) = &update {
                let parent = *parent;
                admin
                    .require_in(conn, AdminCapability::OrgWrite, parent, Item::NewParent)
                    .await?;
                admin.require_move_within_own(conn, node, parent).await?;
            }
            let before: OrgNode = org_nodes::table
                .find(node)
                .select(OrgNode::as_select())
                .for_update()
                .first(conn)
                .await
                .optional()?
                .ok_or(AdminError::NotFound(Item::OrgNode))?;
            let unchanged = match &update {
                Update::Label(label) => before.label == label.as_str(),
                Update::Parent(parent) => before.parent_id == Some(parent.get()),
                Update::Active(active) => before.active == *active,
            };
            if unchanged {
                return Ok(before);
            }
            let target = diesel::update(org_nodes::table.find(node));
            let now = org_nodes::updated_utc.eq(diesel::dsl::now);
            let after: OrgNode = match update {
                Update::Label(label) => {
                    target
                        .set((org_nodes::node_label.eq(label.as_str()), now))
                        .returning(OrgNode::as_returning())
                        .get_result(conn)
                        .await?
                }
                Update::Parent(parent) => target
                    .set((org_nodes::parent_org_node_id.eq(Some(parent)), now))
                    .returning(OrgNode::as_returning())
                    .get_result(conn)
                    .await
                    .map_err(|e| tree_error(e, Item::NewParent))?,
                Update::Active(active) => {
                    target
                        .set((org_nodes::active_flag.eq(active), now))
                        .returning(OrgNode::as_returning())
                        .get_result(conn)
                        .await?
                }
            };
            admin
                .record_change(
                    conn,
                    kind.action(),
                    ("org_node", node.get()),
                    Some(&before),
                    &after,
                )
                .await?;
            Ok(after)
        }
        .scope_boxed()
    })
    .await
}

/// The trigger's and the foreign key's refusals, as the caller should see
/// them: a parent elsewhere is a parent that does not exist.
fn tree_error(error: DieselError, parent: Item) -> AdminError {
    if let DieselError::DatabaseError(kind, info) = &error {
        let message = info.message();
        if matches!(kind, DatabaseErrorKind::ForeignKeyViolation)
            || message.contains("is not in the tenant of node")
        {
            return AdminError::NotFound(parent);
        }
        if message.contains("cannot move under its own descendant") {
            return AdminError::Conflict(
                parent,
                "is the node itself or one of its descendants".into(),
            );
        }
    }
    AdminError::from(error)
}
