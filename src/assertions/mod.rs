//! Access assertions: expectations about who may do what where, checked
//! against the database by the rule `CheckCapability` answers by, and
//! optionally against proposed changes. Everything runs in a rehearsal
//! (one transaction, always rolled back), so checking is read-only even
//! when changes are proposed: they are made by the administration's own
//! code, with its validation, and undone.

pub mod spec;

use std::collections::BTreeSet;

use diesel::sql_types::{Nullable, Text, Uuid as SqlUuid};
use diesel_async::methods::LoadQuery;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use scoped_futures::ScopedFutureExt;
use uuid::Uuid;

use crate::admin::assignments::{self, NewAssignment};
use crate::admin::{AdminError, Administrator, org, roles, users};
use crate::authz::CapabilityKey;
use crate::db::{Db, DbError, RlsContext};
use spec::{Assertion, AssertionsFile, Change, ChangesFile};

#[derive(Debug, thiserror::Error)]
pub enum AssertionError {
    /// A name in a file that names nothing (or more than one thing).
    #[error("{0}")]
    Unresolved(String),
    /// A proposed change the administration refuses.
    #[error("change {index} ({what}): {source}")]
    Refused {
        index: usize,
        what: String,
        source: AdminError,
    },
    #[error(transparent)]
    Db(#[from] DbError),
}

impl From<diesel::result::Error> for AssertionError {
    fn from(error: diesel::result::Error) -> Self {
        Self::Db(DbError::from(error))
    }
}

/// One assertion's verdict, as one line a person reads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verdict {
    pub passed: bool,
    pub line: String,
}

/// Checks every assertion of `file`, after `changes` if given; nothing is
/// committed either way.
pub async fn check(
    db: &Db,
    file: &AssertionsFile,
    changes: Option<&ChangesFile>,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<Vec<Verdict>, AssertionError> {
    let tenant = file.tenant;
    db.rehearse(|db| async move {
        let names = Names { db: &db, tenant };
        if let Some(changes) = changes {
            let admin = Administrator::operator(tenant.into(), now);
            for (index, change) in changes.changes.iter().enumerate() {
                names.apply(&admin, index, change).await?;
            }
        }
        let mut verdicts = Vec::with_capacity(file.assertions.len());
        for assertion in &file.assertions {
            verdicts.push(names.verdict(assertion).await?);
        }
        Ok(verdicts)
    })
    .await?
}

/// Resolves people's names to ids in one tenant, and reads there.
struct Names<'a> {
    db: &'a Db,
    tenant: Uuid,
}

#[derive(diesel::QueryableByName)]
struct Id {
    #[diesel(sql_type = SqlUuid)]
    id: Uuid,
}

#[derive(diesel::QueryableByName)]
struct Named {
    #[diesel(sql_type = SqlUuid)]
    id: Uuid,
    #[diesel(sql_type = Text)]
    name: String,
}

#[derive(diesel::QueryableByName)]
struct TreeNode {
    #[diesel(sql_type = SqlUuid)]
    org_node_id: Uuid,
    #[diesel(sql_type = Nullable<SqlUuid>)]
    parent_org_node_id: Option<Uuid>,
    #[diesel(sql_type = Text)]
    node_label: String,
}

/// Users allowed `$2` at `$3` among those with an assignment there or above.
const HOLDERS: &str = "\
    SELECT DISTINCT oa.user_id AS id, coalesce(u.email_addr, u.display_label) AS name \
      FROM auth.org_node_paths p \
      JOIN auth.org_assignments oa ON oa.org_node_id = p.ancestor_org_node_id \
      JOIN auth.users u ON u.user_id = oa.user_id \
     WHERE p.tenant_id = $1 AND p.descendant_org_node_id = $3 \
       AND (SELECT c.reason FROM auth.check_capabilities(oa.user_id, ARRAY[$2], ARRAY[$3]) c) = 'ALLOWED'";

/// Users allowed `$2` at a node outside the subtree of `$3`: every such
/// node is one where an assignment granting it is held.
const HOLDERS_OUTSIDE: &str = "\
    SELECT DISTINCT oa.user_id AS id, \
           coalesce(u.email_addr, u.display_label) || ' at ' || n.node_label AS name \
      FROM auth.org_assignments oa \
      JOIN auth.role_capabilities rc ON rc.role_id = oa.role_id \
      JOIN auth.capabilities c ON c.cap_id = rc.cap_id AND c.cap_key = $2 \
      JOIN auth.users u ON u.user_id = oa.user_id \
      JOIN auth.org_nodes n ON n.org_node_id = oa.org_node_id \
     WHERE oa.tenant_id = $1 \
       AND NOT EXISTS (SELECT 1 FROM auth.org_node_paths p \
                        WHERE p.ancestor_org_node_id = $3 AND p.descendant_org_node_id = oa.org_node_id) \
       AND (SELECT r.reason FROM auth.check_capabilities(oa.user_id, ARRAY[$2], ARRAY[oa.org_node_id]) r) = 'ALLOWED'";

impl Names<'_> {
    /// The rows of `query`, read in the tenant.
    async fn load<T, Q>(&self, query: Q) -> Result<Vec<T>, AssertionError>
    where
        T: Send + 'static,
        Q: for<'q> LoadQuery<'q, AsyncPgConnection, T> + Send + 'static,
    {
        self.db
            .read(&RlsContext::tenant(self.tenant), |conn| {
                async move { query.load(conn).await.map_err(AssertionError::from) }.scope_boxed()
            })
            .await
    }

    async fn ids(&self, sql: &'static str, name: &str) -> Result<Vec<Uuid>, AssertionError> {
        let (tenant, name) = (self.tenant, name.to_owned());
        let query = diesel::sql_query(sql)
            .bind::<SqlUuid, _>(tenant)
            .bind::<Text, _>(name);
        let rows: Vec<Id> = self.load(query).await?;
        Ok(rows.into_iter().map(|r| r.id).collect())
    }

    async fn one(&self, kind: &str, sql: &'static str, name: &str) -> Result<Uuid, AssertionError> {
        if let Ok(id) = name.parse::<Uuid>() {
            return Ok(id);
        }
        match self.ids(sql, name).await?.as_slice() {
            [id] => Ok(*id),
            [] => Err(AssertionError::Unresolved(format!("no {kind} {name:?}"))),
            _ => Err(AssertionError::Unresolved(format!(
                "more than one {kind} {name:?}"
            ))),
        }
    }

    async fn user(&self, name: &str) -> Result<Uuid, AssertionError> {
        const SQL: &str = "SELECT user_id AS id FROM auth.users \
                            WHERE tenant_id = $1 AND lower(email_addr) = lower($2)";
        self.one("user", SQL, name).await
    }

    async fn role(&self, name: &str) -> Result<Uuid, AssertionError> {
        const SQL: &str =
            "SELECT role_id AS id FROM auth.roles WHERE tenant_id = $1 AND role_key = $2";
        self.one("role", SQL, name).await
    }

    /// A node by UUID, or by its labels from the root: `Corp / Europe`.
    async fn node(&self, name: &str) -> Result<Uuid, AssertionError> {
        if let Ok(id) = name.parse::<Uuid>() {
            return Ok(id);
        }
        let labels: Vec<String> = name.split('/').map(|l| l.trim().to_owned()).collect();
        // Only the nodes bearing one of the path's labels can be on it.
        let query = diesel::sql_query(
            "SELECT org_node_id, parent_org_node_id, node_label FROM auth.org_nodes \
              WHERE tenant_id = $1 AND node_label = ANY($2)",
        )
        .bind::<SqlUuid, _>(self.tenant)
        .bind::<diesel::sql_types::Array<Text>, _>(labels.clone());
        let tree: Vec<TreeNode> = self.load(query).await?;
        let mut level: Vec<Option<Uuid>> = vec![None];
        for label in &labels {
            level = tree
                .iter()
                .filter(|n| &n.node_label == label && level.contains(&n.parent_org_node_id))
                .map(|n| Some(n.org_node_id))
                .collect();
        }
        match level.as_slice() {
            [Some(id)] => Ok(*id),
            [] => Err(AssertionError::Unresolved(format!("no node at {name:?}"))),
            _ => Err(AssertionError::Unresolved(format!(
                "more than one node at {name:?}"
            ))),
        }
    }

    fn capability(name: &str) -> Result<CapabilityKey, AssertionError> {
        CapabilityKey::parse(name)
            .map_err(|e| AssertionError::Unresolved(format!("capability {name:?}: {e}")))
    }

    /// `$2`'s holders (id, name) by `sql` for node `$3`.
    async fn holders(
        &self,
        sql: &'static str,
        capability: &str,
        node: Uuid,
    ) -> Result<Vec<Named>, AssertionError> {
        let (tenant, capability) = (self.tenant, capability.to_owned());
        let query = diesel::sql_query(sql)
            .bind::<SqlUuid, _>(tenant)
            .bind::<Text, _>(capability)
            .bind::<SqlUuid, _>(node);
        self.load(query).await
    }

    async fn reason(
        &self,
        user: Uuid,
        capability: &str,
        node: Uuid,
    ) -> Result<String, AssertionError> {
        #[derive(diesel::QueryableByName)]
        struct Reason {
            #[diesel(sql_type = Text)]
            reason: String,
        }
        let capability = capability.to_owned();
        let query = diesel::sql_query(
            "SELECT reason FROM auth.check_capabilities($1, ARRAY[$2], ARRAY[$3])",
        )
        .bind::<SqlUuid, _>(user)
        .bind::<Text, _>(capability)
        .bind::<SqlUuid, _>(node);
        let rows: Vec<Reason> = self.load(query).await?;
        rows.into_iter()
            .next()
            .map(|row| row.reason)
            .ok_or_else(|| AssertionError::Db(DbError::from(diesel::result::Error::NotFound)))
    }

    async fn verdict(&self, assertion: &Assertion) -> Result<Verdict, AssertionError> {
        Ok(match assertion {
            Assertion::May { user, may, at } => {
                let key = Self::capability(may)?;
                let reason = self
                    .reason(self.user(user).await?, key.as_str(), self.node(at).await?)
                    .await?;
                verdict(
                    reason == "ALLOWED",
                    format!("{user} may {may} at {at}"),
                    format!("denied ({reason})"),
                )
            }
            Assertion::MayNot { user, may_not, at } => {
                let key = Self::capability(may_not)?;
                let reason = self
                    .reason(self.user(user).await?, key.as_str(), self.node(at).await?)
                    .await?;
                verdict(
                    reason != "ALLOWED",
                    format!("{user} may not {may_not} at {at}"),
                    "allowed".to_owned(),
                )
            }
            Assertion::HoldersAre {
                holders_of,
                at,
                are_exactly,
            } => {
                let key = Self::capability(holders_of)?;
                let found = self
                    .holders(HOLDERS, key.as_str(), self.node(at).await?)
                    .await?;
                let mut expected = Vec::with_capacity(are_exactly.len());
                for name in are_exactly {
                    expected.push((name.as_str(), self.user(name).await?));
                }
                let wanted: BTreeSet<Uuid> = expected.iter().map(|(_, id)| *id).collect();
                let held: BTreeSet<Uuid> = found.iter().map(|h| h.id).collect();
                let extra: Vec<&str> = found
                    .iter()
                    .filter(|h| !wanted.contains(&h.id))
                    .map(|h| h.name.as_str())
                    .collect();
                let missing: Vec<&str> = expected
                    .iter()
                    .filter(|(_, id)| !held.contains(id))
                    .map(|(name, _)| *name)
                    .collect();
                let mut why = Vec::new();
                if !extra.is_empty() {
                    why.push(format!("also held by {}", extra.join(", ")));
                }
                if !missing.is_empty() {
                    why.push(format!("not held by {}", missing.join(", ")));
                }
                verdict(
                    why.is_empty(),
                    format!(
                        "the holders of {holders_of} at {at} are exactly [{}]",
                        are_exactly.join(", ")
                    ),
                    why.join("; "),
                )
            }
            Assertion::NobodyOutside {
                nobody_outside,
                holds,
            } => {
                let key = Self::capability(holds)?;
                let subtree = self.node(nobody_outside).await?;
                let found = self.holders(HOLDERS_OUTSIDE, key.as_str(), subtree).await?;
                let names: Vec<&str> = found.iter().map(|h| h.name.as_str()).collect();
                verdict(
                    found.is_empty(),
                    format!("nobody outside {nobody_outside} holds {holds}"),
                    format!("held by {}", names.join(", ")),
                )
            }
        })
    }

    /// Makes one proposed change through the administration's own code.
    async fn apply(
        &self,
        admin: &Administrator,
        index: usize,
        change: &Change,
    ) -> Result<(), AssertionError> {
        let refused = |source: AdminError| AssertionError::Refused {
            index,
            what: format!("{change:?}"),
            source,
        };
        let db = self.db;
        match change {
            Change::Assign {
                user,
                role,
                at,
                from,
                until,
            } => {
                let new = NewAssignment {
                    user_id: self.user(user).await?.into(),
                    role_id: self.role(role).await?,
                    org_node_id: self.node(at).await?.into(),
                    start_utc: *from,
                    end_utc: *until,
                };
                assignments::assign(db, admin, &new, None)
                    .await
                    .map_err(refused)?;
            }
            Change::EndAssignment { user, role, at } => {
                let (user, role, node) = (
                    self.user(user).await?,
                    self.role(role).await?,
                    self.node(at).await?,
                );
                let ended = self.assignments(user, role, node).await?;
                if ended.is_empty() {
                    return Err(AssertionError::Unresolved(format!(
                        "change {index}: no assignment in force or to come to end"
                    )));
                }
                for id in ended {
                    assignments::end(db, admin, id, None)
                        .await
                        .map_err(refused)?;
                }
            }
            Change::Move { node, under } => {
                let (node, under) = (self.node(node).await?, self.node(under).await?);
                org::move_under(db, admin, node.into(), under.into())
                    .await
                    .map_err(refused)?;
            }
            Change::Deactivate { node } | Change::Reactivate { node } => {
                let active = matches!(change, Change::Reactivate { .. });
                org::set_active(db, admin, self.node(node).await?.into(), active)
                    .await
                    .map_err(refused)?;
            }
            Change::SetRoleCapabilities { role, capabilities } => {
                let keys = capabilities
                    .iter()
                    .map(|c| Self::capability(c))
                    .collect::<Result<Vec<_>, _>>()?;
                roles::set_capabilities(db, admin, self.role(role).await?, &keys)
                    .await
                    .map_err(refused)?;
            }
            Change::DeactivateUser { user } | Change::ReactivateUser { user } => {
                let active = matches!(change, Change::ReactivateUser { .. });
                // Only for listing revoked sessions; no session outlives the rollback.
                let lifetime = std::time::Duration::from_secs(15 * 60);
                users::set_active(db, admin, self.user(user).await?.into(), active, lifetime)
                    .await
                    .map_err(refused)?;
            }
        }
        Ok(())
    }

    /// The user's assignments of the role at the node, in force or to come.
    async fn assignments(
        &self,
        user: Uuid,
        role: Uuid,
        node: Uuid,
    ) -> Result<Vec<Uuid>, AssertionError> {
        let tenant = self.tenant;
        let query = diesel::sql_query(
            "SELECT assignment_id AS id FROM auth.org_assignments \
              WHERE tenant_id = $1 AND user_id = $2 AND role_id = $3 AND org_node_id = $4 \
                AND (end_utc IS NULL OR end_utc > now())",
        )
        .bind::<SqlUuid, _>(tenant)
        .bind::<SqlUuid, _>(user)
        .bind::<SqlUuid, _>(role)
        .bind::<SqlUuid, _>(node);
        let rows: Vec<Id> = self.load(query).await?;
        Ok(rows.into_iter().map(|r| r.id).collect())
    }
}

fn verdict(passed: bool, claim: String, why_not: String) -> Verdict {
    Verdict {
        passed,
        line: if passed {
            format!("ok    {claim}")
        } else {
            format!("FAIL  {claim}: {why_not}")
        },
    }
}
