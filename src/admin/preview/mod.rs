//! What-if: the effect on access of writes that are never committed.
//!
//! The writes run through the ordinary domain code in a rehearsal (one
//! transaction, always rolled back; see [`Db::rehearse`]), so they meet the
//! same permission checks and validation as the real thing. Their audit
//! rows say where answers can have changed; the rows there are read before
//! and after the writes, in the same snapshot, and compared by the rule
//! `CheckCapability` answers by. Nothing persists.

mod diff;
mod scope;
mod world;

use std::collections::{BTreeMap, HashMap};

use diesel::sql_types::{Array, Text, Uuid as SqlUuid};
use diesel_async::RunQueryDsl;
use scoped_futures::ScopedFutureExt;
use uuid::Uuid;

pub use diff::{AccessChange, Direction};
use world::World;

use super::AdminError;
use crate::db::{Db, DbError, RlsContext};

/// What the writes would answer, and what they would change.
#[derive(Debug)]
pub struct Preview<T> {
    /// The writes' own answer (what a real write would have returned).
    pub outcome: T,
    /// Sorted: now first, then by capability, direction, subtree, user.
    pub changes: Vec<AccessChange>,
    /// The label of every node the changes name.
    pub labels: HashMap<Uuid, String>,
}

/// A scope can grow between the two runs of the writes when a concurrent
/// commit changes what they touch; after this many tries, give up.
const ATTEMPTS: usize = 3;

/// Runs `writes` (twice: once to learn where they reach, once to compare)
/// in rehearsals on `db` and answers what they would change in `tenant`.
/// `writes` must do the same each time it is called.
pub async fn preview<T, E, F, Fut>(db: &Db, tenant: Uuid, writes: F) -> Result<Preview<T>, E>
where
    F: Fn(Db) -> Fut,
    Fut: std::future::Future<Output = Result<T, E>>,
    E: From<AdminError> + From<DbError>,
{
    let writes = &writes;
    let (outcome, mut reach) = db
        .rehearse(|db| async move {
            let outcome = writes(db.clone()).await?;
            let reach = scope::of_rehearsal(&db, tenant).await?;
            Ok::<_, E>((outcome, reach))
        })
        .await??;
    if !reach.changes_access {
        return Ok(Preview {
            outcome,
            changes: Vec::new(),
            labels: HashMap::new(),
        });
    }
    for _ in 0..ATTEMPTS {
        let compared = db
            .rehearse(|db| {
                let reach = reach.clone();
                async move {
                    let before = World::read(&db, tenant, &reach).await?;
                    let outcome = writes(db.clone()).await?;
                    let seen = scope::of_rehearsal(&db, tenant).await?;
                    if !reach.covers(&seen) {
                        return Ok::<_, E>(Err(seen));
                    }
                    let after = World::read(&db, tenant, &reach).await?;
                    Ok(Ok((outcome, before, after, seen.times)))
                }
            })
            .await??;
        match compared {
            Ok((outcome, before, after, times)) => {
                let later = times.into_iter().filter(|t| *t > after.now).collect();
                let changes = diff::difference(&before, &after, after.now, &later);
                let labels = labels(&after, &changes);
                return Ok(Preview {
                    outcome,
                    changes,
                    labels,
                });
            }
            Err(seen) => reach.union(&seen),
        }
    }
    Err(E::from(DbError::Conflict))
}

fn labels(world: &World, changes: &[AccessChange]) -> HashMap<Uuid, String> {
    changes
        .iter()
        .flat_map(|c| std::iter::once(&c.subtree_root).chain(&c.except))
        .filter_map(|id| Some((*id, world.nodes.get(id)?.label.clone())))
        .collect()
}

/// Gained and lost counts under one key.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Tally {
    pub gained: u64,
    pub lost: u64,
}

impl Tally {
    fn add(&mut self, direction: Direction) {
        match direction {
            Direction::Gained => self.gained += 1,
            Direction::Lost => self.lost += 1,
        }
    }
}

/// The changes in force now, counted by capability and by subtree; and
/// how many more are scheduled.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    pub now: Tally,
    pub scheduled: Tally,
    pub users: u64,
    pub by_capability: BTreeMap<String, Tally>,
    pub by_subtree: BTreeMap<Uuid, Tally>,
}

impl Summary {
    pub fn of(changes: &[AccessChange]) -> Self {
        let mut summary = Summary::default();
        let mut users = std::collections::HashSet::new();
        for change in changes {
            users.insert(change.user_id);
            if change.at.is_some() {
                summary.scheduled.add(change.direction);
                continue;
            }
            summary.now.add(change.direction);
            summary
                .by_capability
                .entry(change.capability.clone())
                .or_default()
                .add(change.direction);
            summary
                .by_subtree
                .entry(change.subtree_root)
                .or_default()
                .add(change.direction);
        }
        summary.users = users.len() as u64;
        summary
    }
}

#[derive(diesel::QueryableByName)]
struct Named {
    #[diesel(sql_type = SqlUuid)]
    user_id: Uuid,
    #[diesel(sql_type = Text)]
    name: String,
}

/// How people know these users: the email, else the display name.
pub async fn user_names(
    db: &Db,
    tenant: Uuid,
    users: Vec<Uuid>,
) -> Result<HashMap<Uuid, String>, AdminError> {
    let rows: Vec<Named> = db
        .read(&RlsContext::tenant(tenant), |conn| {
            async move {
                diesel::sql_query(
                    "SELECT user_id, coalesce(email_addr, display_label) AS name \
                       FROM auth.users WHERE tenant_id = $1 AND user_id = ANY($2)",
                )
                .bind::<SqlUuid, _>(tenant)
                .bind::<Array<SqlUuid>, _>(&users)
                .load(conn)
                .await
                .map_err(AdminError::from)
            }
            .scope_boxed()
        })
        .await?;
    Ok(rows.into_iter().map(|r| (r.user_id, r.name)).collect())
}
