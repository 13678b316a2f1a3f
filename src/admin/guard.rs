//! Whether an administrator may make a change here: the capability at the
//! node, and delegation that never hands out more than the delegate holds.

use diesel::sql_types::{Array, Integer, Text, Uuid as SqlUuid};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use scoped_futures::ScopedFutureExt;
use uuid::Uuid;

use crate::names::{OrgNodeId, UserId};

use super::{AdminError, Administrator, Item};
use crate::db::Db;
use crate::db::schema::auth::{invitations, org_assignments, visibility_grants};

/// The capabilities administration asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AdminCapability {
    OrgRead,
    OrgWrite,
    AssignmentsRead,
    AssignmentsWrite,
    GrantsRead,
    GrantsWrite,
    InvitationsRead,
    InvitationsWrite,
}

impl AdminCapability {
    pub fn key(self) -> &'static str {
        match self {
            Self::OrgRead => "admin.org.read",
            Self::OrgWrite => "admin.org.write",
            Self::AssignmentsRead => "admin.assignments.read",
            Self::AssignmentsWrite => "admin.assignments.write",
            Self::GrantsRead => "admin.grants.read",
            Self::GrantsWrite => "admin.grants.write",
            Self::InvitationsRead => "admin.invitations.read",
            Self::InvitationsWrite => "admin.invitations.write",
        }
    }
}

/// Something that sits at one org node, by id: a user changes it where
/// they hold the capability.
#[derive(Clone, Copy, Debug)]
pub enum Placed {
    Assignment(Uuid),
    Grant(Uuid),
    Invitation(Uuid),
}

impl Placed {
    fn item(self) -> Item {
        match self {
            Self::Assignment(_) => Item::Assignment,
            Self::Grant(_) => Item::Grant,
            Self::Invitation(_) => Item::Invitation,
        }
    }
}

impl Administrator {
    /// Whether the caller may use `capability` at `node` (the `item` of
    /// errors), in a read transaction of its own. Prefer [`Self::require_in`]
    /// inside the write it guards.
    pub async fn require(
        &self,
        db: &Db,
        capability: AdminCapability,
        node: OrgNodeId,
        item: Item,
    ) -> Result<(), AdminError> {
        if self.user().is_none() {
            return Ok(());
        }
        db.read(&self.context(), |conn| {
            async move { self.require_in(conn, capability, node, item).await }.scope_boxed()
        })
        .await
    }
    /// Whether the caller may use `capability` at `node`, asked in the
    /// caller's transaction so the answer cannot go stale before the write
    /// it guards. Services: granted by their permission (the rule table).
    /// Users: held at the node by the check engine's rules, whatever the
    /// node's own activity (a delegate may reactivate what they
    /// deactivated); a node it does not know is not found.
    pub async fn require_in(
        &self,
        conn: &mut AsyncPgConnection,
        capability: AdminCapability,
        node: OrgNodeId,
        item: Item,
    ) -> Result<(), AdminError> {
        let Some(user) = self.user() else {
            return Ok(());
        };
        let rows = administered(conn, user.user_id, &[capability.key().to_owned()], node).await?;
        match rows.into_iter().next().map(|(_, reason)| reason).as_deref() {
            Some("ALLOWED") => Ok(()),
            Some("UNKNOWN_ORG_NODE") => Err(AdminError::NotFound(item)),
            _ => Err(AdminError::Forbidden(
                Some(item),
                format!("{} is not granted to this user there", capability.key()),
            )),
        }
    }
    /// A user may hand out a role at `node` (assign it, invite into it)
    /// only if they hold `capability` there and every capability the role
    /// grants: delegation never gives more than the delegate has. Services:
    /// their permission.
    pub(super) async fn require_to_hand_out(
        &self,
        conn: &mut AsyncPgConnection,
        capability: AdminCapability,
        role: Uuid,
        node: OrgNodeId,
    ) -> Result<(), AdminError> {
        self.require_in(conn, capability, node, Item::OrgNode)
            .await?;
        let Some(user) = self.user() else {
            return Ok(());
        };
        let granted: Vec<String> = diesel::sql_query(
            "SELECT c.cap_key AS key FROM auth.role_capabilities rc \
               JOIN auth.capabilities c ON c.cap_id = rc.cap_id \
              WHERE rc.role_id = $1 ORDER BY c.cap_key",
        )
        .bind::<SqlUuid, _>(role)
        .load::<Key>(conn)
        .await?
        .into_iter()
        .map(|k| k.key)
        .collect();
        match first_not_held(conn, user.user_id, granted, node).await? {
            None => Ok(()),
            Some(key) => Err(AdminError::Forbidden(
                Some(Item::Role),
                format!("the role grants {key}, which this user does not hold at the org node"),
            )),
        }
    }
    /// A user may move `node` under `new_parent` only if they hold, at the
    /// new parent, every capability that assignments above it (in force or
    /// scheduled) would newly extend over the moved subtree: a move must not
    /// hand a subtree to capabilities the mover could not grant there.
    pub(super) async fn require_move_within_own(
        &self,
        conn: &mut AsyncPgConnection,
        node: OrgNodeId,
        new_parent: OrgNodeId,
    ) -> Result<(), AdminError> {
        let Some(user) = self.user() else {
            return Ok(());
        };
        let extended: Vec<String> = diesel::sql_query(
            "SELECT DISTINCT c.cap_key AS key FROM auth.org_node_paths p \
               JOIN auth.org_assignments oa ON oa.org_node_id = p.ancestor_org_node_id \
               JOIN auth.role_capabilities rc ON rc.role_id = oa.role_id \
               JOIN auth.capabilities c ON c.cap_id = rc.cap_id \
              WHERE p.descendant_org_node_id = $1 \
                AND (oa.end_utc IS NULL OR oa.end_utc > now()) \
                AND NOT EXISTS (SELECT 1 FROM auth.org_node_paths q \
                                 WHERE q.descendant_org_node_id = $2 \
                                   AND q.ancestor_org_node_id = p.ancestor_org_node_id) \
              ORDER BY c.cap_key",
        )
        .bind::<SqlUuid, _>(new_parent)
        .bind::<SqlUuid, _>(node)
        .load::<Key>(conn)
        .await?
        .into_iter()
        .map(|k| k.key)
        .collect();
        match first_not_held(conn, user.user_id, extended, new_parent).await? {
            None => Ok(()),
            Some(key) => Err(AdminError::Forbidden(
                Some(Item::NewParent),
                format!(
                    "assignments there grant {key} over the moved subtree, \
                     which this user does not hold there"
                ),
            )),
        }
    }
    /// Whether the caller may use `capability` where `placed` sits (the
    /// item of errors), asked in the write's own transaction. Only a
    /// user's answer depends on the node, so only then is it read; absent or
    /// another tenant's, it is not found.
    pub(super) async fn require_where(
        &self,
        conn: &mut AsyncPgConnection,
        capability: AdminCapability,
        placed: Placed,
    ) -> Result<(), AdminError> {
        // Scoped here: diesel's `first` would shadow the slice's elsewhere.
        use diesel::{OptionalExtension, QueryDsl};

        if self.user().is_none() {
            return Ok(());
        }
        let node = match placed {
            Placed::Assignment(id) => {
                org_assignments::table
                    .find(id)
                    .select(org_assignments::org_node_id)
                    .first::<Uuid>(conn)
                    .await
            }
            Placed::Grant(id) => {
                visibility_grants::table
                    .find(id)
                    .select(visibility_grants::org_node_id)
                    .first(conn)
                    .await
            }
            Placed::Invitation(id) => {
                invitations::table
                    .find(id)
                    .select(invitations::target_org_node_id)
                    .first(conn)
                    .await
            }
        }
        .optional()?
        .ok_or(AdminError::NotFound(placed.item()))?;
        self.require_in(conn, capability, node.into(), placed.item())
            .await
    }
    /// Whether the caller may list what `filter` selects: at a node, the
    /// capability there; for a user, that user themselves (or a service).
    pub(super) async fn require_listing(
        &self,
        db: &Db,
        capability: AdminCapability,
        filter: &super::assignments::ListFilter,
    ) -> Result<(), AdminError> {
        use super::assignments::ListFilter;
        match filter {
            ListFilter::Node(node) => self.require(db, capability, *node, Item::OrgNode).await,
            ListFilter::User(user) => self.require_self_or_service(*user),
        }
    }
    /// A user may ask about themselves only; a service about anyone in its
    /// tenant.
    fn require_self_or_service(&self, user: UserId) -> Result<(), AdminError> {
        match self.user() {
            Some(me) if user != me.user_id => Err(AdminError::Forbidden(
                Some(Item::User),
                "a user may list only their own assignments".into(),
            )),
            _ => Ok(()),
        }
    }
    /// A listing of the whole tenant is for services: a user's capability
    /// is held at a node, so a user names the node to list at.
    pub(super) fn require_node_for_users(
        &self,
        node: Option<OrgNodeId>,
        item: Item,
    ) -> Result<(), AdminError> {
        match (self.user(), node) {
            (Some(_), None) => Err(AdminError::Invalid(
                item,
                "required when a user asks (capabilities are held at nodes)".into(),
            )),
            _ => Ok(()),
        }
    }
    /// Users may not create roots: a capability is always held at a node.
    pub fn require_root_creation(&self) -> Result<(), AdminError> {
        match self.user() {
            None => Ok(()),
            Some(_) => Err(AdminError::Forbidden(
                Some(Item::Parent),
                "only a service may create a root node".into(),
            )),
        }
    }
}

#[derive(diesel::QueryableByName)]
struct Key {
    #[diesel(sql_type = Text)]
    key: String,
}

#[derive(diesel::QueryableByName)]
struct Answer {
    #[diesel(sql_type = Integer)]
    ordinal: i32,
    #[diesel(sql_type = Text)]
    reason: String,
}

/// `auth.administered_capabilities` for `capabilities` at one node:
/// `(ordinal, reason)` in order.
async fn administered(
    conn: &mut AsyncPgConnection,
    user: Uuid,
    capabilities: &[String],
    node: OrgNodeId,
) -> Result<Vec<(i32, String)>, AdminError> {
    let nodes = vec![node; capabilities.len()];
    let rows: Vec<Answer> =
        diesel::sql_query("SELECT ordinal, reason FROM auth.administered_capabilities($1, $2, $3)")
            .bind::<SqlUuid, _>(user)
            .bind::<Array<Text>, _>(capabilities)
            .bind::<Array<SqlUuid>, _>(&nodes)
            .load(conn)
            .await?;
    Ok(rows.into_iter().map(|a| (a.ordinal, a.reason)).collect())
}

/// The first of `capabilities` the user does not hold at `node`, if any.
async fn first_not_held(
    conn: &mut AsyncPgConnection,
    user: Uuid,
    capabilities: Vec<String>,
    node: OrgNodeId,
) -> Result<Option<String>, AdminError> {
    if capabilities.is_empty() {
        return Ok(None);
    }
    let answers = administered(conn, user, &capabilities, node).await?;
    Ok(answers
        .into_iter()
        .find(|(_, reason)| reason != "ALLOWED")
        .and_then(|(ordinal, _)| {
            usize::try_from(ordinal - 1)
                .ok()
                .and_then(|i| capabilities.get(i).cloned())
        }))
}
