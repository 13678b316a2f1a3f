//! The difference between two states of a tenant, as `CheckCapability`
//! would answer in each: per user and capability, the subtrees where the
//! answer turns from deny to allow (gained) or back (lost).
//!
//! A check allows a user a capability at a node when the tenant and user
//! are active, no node from it up to the root is inactive, and an assignment
//! in force there or above grants it. So inside the scope, the answer can
//! only change from a node to its child at a node that differs between the
//! states (moved, created, (de)activated), is inactive, is where the pair's
//! assignments are, or is the top of the scope: the *marks*. Every other
//! node answers as its parent, in both states. The answer is decided at the
//! marks alone, and a change is reported as the subtree of the topmost
//! mark where it begins, except the marks below where it stops.

use std::collections::{BTreeSet, HashMap, HashSet};

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::world::World;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Direction {
    Gained,
    Lost,
}

/// One user gaining or losing one capability over one subtree.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct AccessChange {
    /// `None`: now; else from this future time on (a boundary a write set).
    pub at: Option<DateTime<Utc>>,
    pub capability: String,
    pub direction: Direction,
    /// The top of the subtree (in the tree as the writes leave it).
    pub subtree_root: Uuid,
    pub user_id: Uuid,
    /// Nodes under the root, each with its subtree, where the answer does
    /// not change (already held, still held, or inactive). A change below
    /// one of them is reported with its own root.
    pub except: Vec<Uuid>,
}

/// How the answer at a node moves from `before` to `after`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Shift {
    Same,
    Moves(Direction),
}

/// Every change of answer from `before` to `after`, now (`now`) and at each
/// of `times`, sorted.
pub fn difference(
    before: &World,
    after: &World,
    now: DateTime<Utc>,
    times: &BTreeSet<DateTime<Utc>>,
) -> Vec<AccessChange> {
    let tree = Tree { before, after };
    let shared = tree.shared_marks();
    let mut changes = Vec::new();
    let instants = std::iter::once((None, now)).chain(times.iter().map(|t| (Some(*t), *t)));
    for (at, t) in instants {
        let held_before = holdings(before, t);
        let held_after = holdings(after, t);
        let pairs: BTreeSet<&(Uuid, String)> =
            held_before.keys().chain(held_after.keys()).collect();
        for pair in pairs {
            let empty = Vec::new();
            let was = held_before.get(pair).unwrap_or(&empty);
            let will = held_after.get(pair).unwrap_or(&empty);
            let pair_changes = tree.changes(pair.0, &shared, was, will);
            changes.extend(pair_changes.into_iter().map(|(direction, root, except)| {
                AccessChange {
                    at,
                    capability: pair.1.clone(),
                    direction,
                    subtree_root: root,
                    user_id: pair.0,
                    except,
                }
            }));
        }
    }
    changes.sort();
    changes
}

/// The nodes where each (user, capability) is granted by an assignment in
/// force at `t`.
fn holdings(world: &World, t: DateTime<Utc>) -> HashMap<(Uuid, String), Vec<Uuid>> {
    let mut held: HashMap<(Uuid, String), Vec<Uuid>> = HashMap::new();
    for h in world.held.iter().filter(|h| h.in_force_at(t)) {
        for capability in world.grants.get(&h.role).into_iter().flatten() {
            held.entry((h.user, capability.clone()))
                .or_default()
                .push(h.node);
        }
    }
    held
}

struct Tree<'w> {
    before: &'w World,
    after: &'w World,
}

impl Tree<'_> {
    fn in_scope(&self, node: Uuid) -> bool {
        let scoped = |w: &World| w.nodes.get(&node).is_some_and(|n| n.in_scope);
        scoped(self.before) || scoped(self.after)
    }

    /// The marks every pair shares: the scope's tops, the nodes that differ
    /// between the states, and the inactive nodes.
    fn shared_marks(&self) -> HashSet<Uuid> {
        let ids: HashSet<Uuid> = self
            .before
            .nodes
            .keys()
            .chain(self.after.nodes.keys())
            .copied()
            .collect();
        ids.into_iter()
            .filter(|id| self.in_scope(*id))
            .filter(|id| {
                let states = [self.before.nodes.get(id), self.after.nodes.get(id)];
                let differs = match states {
                    [Some(b), Some(a)] => b.parent != a.parent || b.active != a.active,
                    _ => true,
                };
                let mut known = states.into_iter().flatten();
                differs || known.any(|n| !n.active || n.parent.is_none_or(|p| !self.in_scope(p)))
            })
            .collect()
    }

    /// Whether `user` may do the capability held at `held` at `node`, in
    /// `world`.
    fn allows(world: &World, user: Uuid, held: &[Uuid], node: Uuid) -> bool {
        if !world.tenant_active || !world.user_active.get(&user).copied().unwrap_or(false) {
            return false;
        }
        let mut covered = false;
        let mut at = Some(node);
        while let Some(id) = at {
            let Some(n) = world.nodes.get(&id) else {
                // Absent in this state (created by the writes): unknown.
                return false;
            };
            if !n.active {
                return false;
            }
            covered |= held.contains(&id);
            at = n.parent;
        }
        covered
    }

    /// The pair's changes as `(direction, root, except)`.
    fn changes(
        &self,
        user: Uuid,
        shared: &HashSet<Uuid>,
        was: &[Uuid],
        will: &[Uuid],
    ) -> Vec<(Direction, Uuid, Vec<Uuid>)> {
        let marks = shared.iter().copied().chain(
            was.iter()
                .chain(will)
                .copied()
                .filter(|n| self.in_scope(*n)),
        );
        let mut shift: HashMap<Uuid, Shift> = HashMap::new();
        for mark in marks {
            let b = Self::allows(self.before, user, was, mark);
            let a = Self::allows(self.after, user, will, mark);
            let s = match (b, a) {
                (false, true) => Shift::Moves(Direction::Gained),
                (true, false) => Shift::Moves(Direction::Lost),
                _ => Shift::Same,
            };
            shift.insert(mark, s);
        }
        if shift.values().all(|s| *s == Shift::Same) {
            return Vec::new();
        }
        let mut roots: HashMap<Uuid, (Direction, Vec<Uuid>)> = HashMap::new();
        let mut bounds = Vec::new();
        for (&mark, &s) in &shift {
            let above = self.zone(&shift, self.parent(mark));
            match (s, above) {
                (Shift::Moves(d), above) if above != Shift::Moves(d) => {
                    roots.entry(mark).or_insert((d, Vec::new()));
                    if let Shift::Moves(other) = above {
                        bounds.push((mark, other));
                    }
                }
                (Shift::Same, Shift::Moves(d)) => bounds.push((mark, d)),
                _ => {}
            }
        }
        for (mark, direction) in bounds {
            let root = self.owner(&shift, mark, direction);
            if let Some((_, except)) = roots.get_mut(&root) {
                except.push(mark);
            }
        }
        let mut out: Vec<_> = roots
            .into_iter()
            .map(|(root, (d, mut except))| {
                except.sort();
                (d, root, except)
            })
            .collect();
        out.sort();
        out
    }

    /// The parent after the writes, if it is in the scope.
    fn parent(&self, node: Uuid) -> Option<Uuid> {
        let parent = self.after.nodes.get(&node).and_then(|n| n.parent)?;
        self.in_scope(parent).then_some(parent)
    }

    /// The nearest mark at or above `node` (after the writes, in scope).
    fn nearest(&self, shift: &HashMap<Uuid, Shift>, mut node: Option<Uuid>) -> Option<Uuid> {
        while let Some(id) = node {
            if shift.contains_key(&id) {
                return Some(id);
            }
            node = self.parent(id);
        }
        None
    }

    /// How the answer moves at `node`: as at its nearest mark.
    fn zone(&self, shift: &HashMap<Uuid, Shift>, node: Option<Uuid>) -> Shift {
        self.nearest(shift, node)
            .map_or(Shift::Same, |mark| shift[&mark])
    }

    /// The root of the `direction` change just above `mark`.
    fn owner(&self, shift: &HashMap<Uuid, Shift>, mark: Uuid, direction: Direction) -> Uuid {
        let mut owner = self.nearest(shift, self.parent(mark)).unwrap_or(mark);
        while self.zone(shift, self.parent(owner)) == Shift::Moves(direction) {
            match self.nearest(shift, self.parent(owner)) {
                Some(up) => owner = up,
                None => break,
            }
        }
        owner
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admin::preview::world::{Held, Node};

    /// A tree r → {a → {a1, a2}, b}, all in scope, everyone active.
    struct Fixture {
        world: World,
        ids: HashMap<&'static str, Uuid>,
    }

    fn fixture() -> Fixture {
        let mut ids = HashMap::new();
        for name in ["r", "a", "a1", "a2", "b"] {
            ids.insert(name, Uuid::new_v4());
        }
        let mut world = World {
            tenant_active: true,
            ..World::default()
        };
        for (name, parent) in [
            ("r", None),
            ("a", Some("r")),
            ("a1", Some("a")),
            ("a2", Some("a")),
            ("b", Some("r")),
        ] {
            world.nodes.insert(
                ids[name],
                Node {
                    parent: parent.map(|p| ids[p]),
                    active: true,
                    in_scope: true,
                    label: name.to_owned(),
                },
            );
        }
        Fixture { world, ids }
    }

    const ROLE: Uuid = Uuid::from_u128(1);
    const USER: Uuid = Uuid::from_u128(2);

    fn hold(world: &mut World, node: Uuid) {
        world.user_active.insert(USER, true);
        world.grants.insert(ROLE, vec!["pay".to_owned()]);
        world.held.push(Held {
            user: USER,
            role: ROLE,
            node,
            start: DateTime::<Utc>::MIN_UTC,
            end: None,
        });
    }

    fn now() -> DateTime<Utc> {
        "2026-12-07T12:00:00Z".parse().unwrap()
    }

    #[test]
    fn an_assignment_gains_its_subtree_except_where_already_held() {
        let Fixture { world, ids } = fixture();
        let mut before = world.clone();
        hold(&mut before, ids["a1"]);
        let mut after = before.clone();
        hold(&mut after, ids["a"]);
        let changes = difference(&before, &after, now(), &BTreeSet::new());
        assert_eq!(changes.len(), 1);
        assert_eq!(changes[0].direction, Direction::Gained);
        assert_eq!(changes[0].subtree_root, ids["a"]);
        assert_eq!(changes[0].except, vec![ids["a1"]]);
    }

    #[test]
    fn a_move_loses_the_subtree_under_the_old_parent_and_gains_it_under_the_new() {
        let Fixture { world, ids } = fixture();
        let mut before = world.clone();
        hold(&mut before, ids["a"]);
        let mut after = before.clone();
        after.nodes.get_mut(&ids["a2"]).unwrap().parent = Some(ids["b"]);
        let lost = difference(&before, &after, now(), &BTreeSet::new());
        assert_eq!(lost.len(), 1);
        assert_eq!(
            (lost[0].direction, lost[0].subtree_root),
            (Direction::Lost, ids["a2"])
        );
    }

    #[test]
    fn an_inactive_node_is_excepted_from_a_gain() {
        let Fixture { mut world, ids } = fixture();
        world.nodes.get_mut(&ids["a2"]).unwrap().active = false;
        let before = world.clone();
        let mut after = world;
        hold(&mut after, ids["r"]);
        let changes = difference(&before, &after, now(), &BTreeSet::new());
        assert_eq!(changes.len(), 1);
        assert_eq!(changes[0].subtree_root, ids["r"]);
        assert_eq!(changes[0].except, vec![ids["a2"]]);
    }

    #[test]
    fn a_future_start_changes_nothing_now_and_gains_at_the_start() {
        let Fixture { world, ids } = fixture();
        let before = world.clone();
        let mut after = world;
        hold(&mut after, ids["b"]);
        let start: DateTime<Utc> = "2027-01-01T00:00:00Z".parse().unwrap();
        after.held[0].start = start;
        let changes = difference(&before, &after, now(), &BTreeSet::from([start]));
        assert_eq!(changes.len(), 1);
        assert_eq!(changes[0].at, Some(start));
    }
}
