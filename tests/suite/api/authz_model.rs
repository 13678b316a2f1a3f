//! Property: on random trees, roles, assignments and grants, the service
//! answers exactly as a plain in-memory evaluator of the model's rules (docs/concepts/model.md),
//! for single checks, batches and (paged) listings.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use chrono::Utc;
use portcullis::authz::{self, Access, CapabilityKey, Check, ListingQuery, Reason, Scope, Subject};
use portcullis::db::{Db, RlsContext};
use portcullis::tokens::KeyRing;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use uuid::Uuid;

use crate::support::TestDb;
use crate::support::fixtures::{batch, execute};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Window {
    Current,
    Future,
    Past,
}

impl Window {
    fn in_force(self) -> bool {
        self == Window::Current
    }

    fn sql(self) -> &'static str {
        match self {
            Window::Current => "now() - interval '1 day', NULL",
            Window::Future => "now() + interval '1 day', NULL",
            Window::Past => "now() - interval '2 days', now() - interval '1 day'",
        }
    }
}

fn window() -> impl Strategy<Value = Window> {
    prop_oneof![4 => Just(Window::Current), 1 => Just(Window::Future), 1 => Just(Window::Past)]
}

#[derive(Clone, Debug)]
pub(crate) struct World {
    pub(crate) tenant_active: bool,
    /// parent index (always an earlier node) and active flag
    pub(crate) nodes: Vec<(Option<usize>, bool)>,
    pub(crate) users_active: Vec<bool>,
    pub(crate) capabilities: usize,
    /// capability indexes each role grants
    pub(crate) roles: Vec<BTreeSet<usize>>,
    /// (user, role, node, window)
    pub(crate) assignments: Vec<(usize, usize, usize, Window)>,
    /// (user, node, analyze?, window)
    pub(crate) grants: Vec<(usize, usize, bool, Window)>,
}

pub(crate) fn world() -> impl Strategy<Value = World> {
    (1usize..20, 1usize..4, 1usize..4, 1usize..4).prop_flat_map(
        |(nodes, users, capabilities, roles)| {
            let node = (0..nodes)
                .map(|i| {
                    let parent = if i == 0 {
                        Just(None).boxed()
                    } else {
                        proptest::option::weighted(0.9, 0..i).boxed()
                    };
                    (parent, proptest::bool::weighted(0.85))
                })
                .collect::<Vec<_>>();
            (
                proptest::bool::weighted(0.9),
                node,
                proptest::collection::vec(proptest::bool::weighted(0.85), users),
                Just(capabilities),
                proptest::collection::vec(
                    proptest::collection::btree_set(0..capabilities, 0..=capabilities),
                    roles,
                ),
                proptest::collection::vec((0..users, 0..roles, 0..nodes, window()), 0..8),
                proptest::collection::vec((0..users, 0..nodes, any::<bool>(), window()), 0..5),
            )
                .prop_map(
                    |(
                        tenant_active,
                        nodes,
                        users_active,
                        capabilities,
                        roles,
                        assignments,
                        grants,
                    )| World {
                        tenant_active,
                        nodes,
                        users_active,
                        capabilities,
                        roles,
                        assignments,
                        grants,
                    },
                )
        },
    )
}

/// The world's rows and the ids they got.
pub(crate) struct Loaded {
    pub(crate) tenant: Uuid,
    pub(crate) nodes: Vec<Uuid>,
    pub(crate) users: Vec<Uuid>,
    pub(crate) capability_keys: Vec<String>,
    pub(crate) assignments: Vec<Uuid>,
    pub(crate) grants: Vec<Uuid>,
}

async fn load(db: &Db, world: &World) -> Loaded {
    load_named(db, world, None).await
}

/// As [`load`], capability 0 named `first_key` when given (a catalogue
/// key shared by every world, such as one a policy names).
pub(crate) async fn load_named(db: &Db, world: &World, first_key: Option<&str>) -> Loaded {
    let tenant = Uuid::new_v4();
    let short = &tenant.simple().to_string()[..12];
    let nodes: Vec<Uuid> = world.nodes.iter().map(|_| Uuid::new_v4()).collect();
    let users: Vec<Uuid> = world.users_active.iter().map(|_| Uuid::new_v4()).collect();
    let roles: Vec<Uuid> = world.roles.iter().map(|_| Uuid::new_v4()).collect();
    let capability_keys: Vec<String> = (0..world.capabilities)
        .map(|i| match (i, first_key) {
            (0, Some(key)) => key.to_owned(),
            _ => format!("m{short}.c{i}"),
        })
        .collect();
    let assignments: Vec<Uuid> = world.assignments.iter().map(|_| Uuid::new_v4()).collect();
    let grants: Vec<Uuid> = world.grants.iter().map(|_| Uuid::new_v4()).collect();

    let keys: Vec<String> = capability_keys.iter().map(|k| format!("('{k}')")).collect();
    execute(
        db,
        &RlsContext::operator(),
        &format!(
            "INSERT INTO auth.capabilities (cap_key) VALUES {} ON CONFLICT DO NOTHING",
            keys.join(",")
        ),
    )
    .await
    .unwrap();

    let status = |active: bool| if active { "active" } else { "inactive" };
    let mut sql = format!(
        "INSERT INTO auth.tenants (tenant_id, tenant_slug, tenant_label, tenant_state_code) VALUES ('{tenant}', 'm-{short}', 'M', '{}');\n",
        if world.tenant_active {
            "active"
        } else {
            "suspended"
        }
    );
    for (i, (parent, active)) in world.nodes.iter().enumerate() {
        let parent = parent.map_or("NULL".to_owned(), |p| format!("'{}'", nodes[p]));
        sql += &format!(
            "INSERT INTO auth.org_nodes (org_node_id, tenant_id, parent_org_node_id, node_type_code, node_label, active_flag) VALUES ('{}', '{tenant}', {parent}, 'unit', 'n{i}', {active});\n",
            nodes[i],
        );
    }
    for (i, active) in world.users_active.iter().enumerate() {
        sql += &format!(
            "INSERT INTO auth.users (user_id, tenant_id, display_label, user_state_code) VALUES ('{}', '{tenant}', 'u{i}', '{}');\n",
            users[i],
            status(*active)
        );
    }
    for (i, capabilities) in world.roles.iter().enumerate() {
        sql += &format!(
            "INSERT INTO auth.roles (role_id, tenant_id, role_key, role_label) VALUES ('{}', '{tenant}', 'r{i}', 'R{i}');\n",
            roles[i]
        );
        for c in capabilities {
            sql += &format!(
                "INSERT INTO auth.role_capabilities (tenant_id, role_id, cap_id) SELECT '{tenant}', '{}', cap_id FROM auth.capabilities WHERE cap_key = '{}';\n",
                roles[i], capability_keys[*c]
            );
        }
    }
    for (i, (user, role, node, window)) in world.assignments.iter().enumerate() {
        sql += &format!(
            "INSERT INTO auth.org_assignments (assignment_id, tenant_id, user_id, role_id, org_node_id, start_utc, end_utc) VALUES ('{}', '{tenant}', '{}', '{}', '{}', {});\n",
            assignments[i],
            users[*user],
            roles[*role],
            nodes[*node],
            window.sql()
        );
    }
    for (i, (user, node, analyze, window)) in world.grants.iter().enumerate() {
        sql += &format!(
            "INSERT INTO auth.visibility_grants (grant_id, tenant_id, user_id, org_node_id, access_scope_code, start_utc, end_utc) VALUES ('{}', '{tenant}', '{}', '{}', '{}', {});\n",
            grants[i],
            users[*user],
            nodes[*node],
            if *analyze { "analyze" } else { "read" },
            window.sql()
        );
    }
    batch(db, &RlsContext::operator().with_tenant(tenant), &sql)
        .await
        .unwrap();
    Loaded {
        tenant,
        nodes,
        users,
        capability_keys,
        assignments,
        grants,
    }
}

// ---- The reference evaluator: the model's rules (docs/concepts/model.md), in memory. ----

fn ancestors(world: &World, node: usize) -> Vec<usize> {
    let mut out = vec![node];
    let mut current = world.nodes[node].0;
    while let Some(parent) = current {
        out.push(parent);
        current = world.nodes[parent].0;
    }
    out
}

/// `node: None` is a node the tenant does not have; `capability: None` one
/// the catalogue does not have.
fn expected_reason(
    world: &World,
    user: usize,
    capability: Option<usize>,
    node: Option<usize>,
) -> Reason {
    if !world.tenant_active {
        return Reason::TenantSuspended;
    }
    if !world.users_active[user] {
        return Reason::UserInactive;
    }
    let Some(capability) = capability else {
        return Reason::UnknownCapability;
    };
    let Some(node) = node else {
        return Reason::UnknownOrgNode;
    };
    let above = ancestors(world, node);
    if above.iter().any(|&n| !world.nodes[n].1) {
        return Reason::NodeInactive;
    }
    let allowed = world.assignments.iter().any(|(u, role, held_at, window)| {
        *u == user
            && window.in_force()
            && above.contains(held_at)
            && world.roles[*role].contains(&capability)
    });
    if allowed {
        Reason::Allowed
    } else {
        Reason::NoMatchingAssignment
    }
}

/// Node index → the ids of the sources that make it visible.
fn expected_listing(
    world: &World,
    loaded: &Loaded,
    user: usize,
    scope: Scope,
) -> BTreeMap<Uuid, BTreeSet<Uuid>> {
    let mut out = BTreeMap::new();
    if !world.tenant_active || !world.users_active[user] {
        return out;
    }
    for node in 0..world.nodes.len() {
        let above = ancestors(world, node);
        if above.iter().any(|&n| !world.nodes[n].1) {
            continue;
        }
        let mut sources = BTreeSet::new();
        for (i, (u, _, held_at, window)) in world.assignments.iter().enumerate() {
            if *u == user && window.in_force() && above.contains(held_at) {
                sources.insert(loaded.assignments[i]);
            }
        }
        for (i, (u, held_at, analyze, window)) in world.grants.iter().enumerate() {
            if *u == user
                && window.in_force()
                && above.contains(held_at)
                && (scope != Scope::Analyze || *analyze)
            {
                sources.insert(loaded.grants[i]);
            }
        }
        if !sources.is_empty() {
            out.insert(loaded.nodes[node], sources);
        }
    }
    out
}

pub(crate) async fn listed(
    db: &Db,
    keys: &KeyRing,
    subject: Subject,
    scope: Scope,
) -> BTreeMap<Uuid, BTreeSet<Uuid>> {
    let mut out = BTreeMap::new();
    let mut page_token = None;
    loop {
        let query = ListingQuery {
            scope,
            node_type: None,
            under: None,
            page_size: 3,
            page_token: page_token.take(),
        };
        let page = authz::list_visible(db, keys, subject, &query, None, Utc::now())
            .await
            .unwrap();
        for node in page.nodes {
            let sources = node
                .access
                .iter()
                .map(|a| match a {
                    Access::Assignment { assignment_id, .. } => *assignment_id,
                    Access::Grant { grant_id, .. } => *grant_id,
                })
                .collect();
            assert!(
                out.insert(node.id, sources).is_none(),
                "node {} listed twice",
                node.id
            );
        }
        match page.next_page_token {
            Some(token) => page_token = Some(token),
            None => return out,
        }
    }
}

#[test]
fn the_service_agrees_with_a_reference_evaluator() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let test = runtime.block_on(TestDb::new());
    let db = test.db();
    let keys = KeyRing::ephemeral(
        Utc::now() - chrono::Duration::hours(1),
        Duration::from_secs(60),
    );
    let mut runner = TestRunner::new(Config {
        cases: 20,
        failure_persistence: None,
        ..Config::default()
    });
    runner
        .run(&world(), |world| {
            runtime.block_on(async {
                let loaded = load(&db, &world).await;
                let foreign_node = Uuid::new_v4();
                for (u, &user_id) in loaded.users.iter().enumerate() {
                    let subject = Subject {
                        tenant_id: loaded.tenant.into(),
                        user_id: user_id.into(),
                    };
                    // Every capability (and an unknown one) at every node (and an unknown one).
                    let mut checks = Vec::new();
                    let mut expected = Vec::new();
                    let capabilities = (0..world.capabilities).map(Some).chain([None]);
                    for capability in capabilities {
                        let key = capability.map_or(format!("m{}.unknown", u), |c| {
                            loaded.capability_keys[c].clone()
                        });
                        let nodes = (0..world.nodes.len()).map(Some).chain([None]);
                        for node in nodes {
                            checks.push(Check {
                                capability: CapabilityKey::parse(&key).unwrap(),
                                org_node_id: node.map_or(foreign_node, |n| loaded.nodes[n]).into(),
                            });
                            expected.push(expected_reason(&world, u, capability, node));
                        }
                    }
                    let batch = authz::check(&db, subject, &checks, true, None)
                        .await
                        .unwrap();
                    let got: Vec<Reason> = batch.iter().map(|d| d.reason).collect();
                    prop_assert_eq!(&got, &expected, "batch for user {}", u);
                    for decision in &batch {
                        prop_assert_eq!(decision.allowed(), !decision.grants.is_empty());
                    }
                    // Single checks answer as the batch does.
                    for (i, check) in checks.iter().enumerate().step_by(7) {
                        let single =
                            authz::check(&db, subject, std::slice::from_ref(check), false, None)
                                .await
                                .unwrap();
                        prop_assert_eq!(single[0].reason, expected[i]);
                    }
                    for scope in [Scope::Any, Scope::Read, Scope::Analyze] {
                        let got = listed(&db, &keys, subject, scope).await;
                        prop_assert_eq!(
                            got,
                            expected_listing(&world, &loaded, u, scope),
                            "listing {:?} for user {}",
                            scope,
                            u
                        );
                    }
                }
                Ok(())
            })
        })
        .unwrap();
}

/// Every page of the holders of `capability` at `node`, `page_size` at a
/// time: user → the ids of the assignments that give it.
async fn holders(
    db: &Db,
    keys: &KeyRing,
    loaded: &Loaded,
    capability: &str,
    node: Uuid,
) -> Result<BTreeMap<Uuid, BTreeSet<Uuid>>, authz::AuthzError> {
    let mut out = BTreeMap::new();
    let mut page_token = None;
    loop {
        let page = authz::list_holders(
            db,
            keys,
            RlsContext::anonymous(),
            &authz::HoldersQuery {
                tenant_id: loaded.tenant.into(),
                capability: CapabilityKey::parse(capability).unwrap(),
                org_node_id: node.into(),
                page_size: 2,
                page_token: page_token.take(),
            },
            Utc::now(),
        )
        .await?;
        for holder in page.users {
            let grants = holder.grants.iter().map(|g| g.assignment_id).collect();
            assert!(out.insert(holder.user_id, grants).is_none(), "listed twice");
        }
        match page.next_page_token {
            Some(token) => page_token = Some(token),
            None => return Ok(out),
        }
    }
}

#[test]
fn the_holders_of_a_capability_are_exactly_the_users_a_check_allows() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let test = runtime.block_on(TestDb::new());
    let db = test.db();
    let keys = KeyRing::ephemeral(
        Utc::now() - chrono::Duration::hours(1),
        Duration::from_secs(60),
    );
    let mut runner = TestRunner::new(Config {
        cases: 20,
        failure_persistence: None,
        ..Config::default()
    });
    runner
        .run(&world(), |world| {
            runtime.block_on(async {
                let loaded = load(&db, &world).await;
                for capability in 0..world.capabilities {
                    let key = &loaded.capability_keys[capability];
                    for node in 0..world.nodes.len() {
                        let got = holders(&db, &keys, &loaded, key, loaded.nodes[node])
                            .await
                            .unwrap();
                        let above = ancestors(&world, node);
                        let expected: BTreeMap<Uuid, BTreeSet<Uuid>> = (0..loaded.users.len())
                            .filter(|&u| {
                                expected_reason(&world, u, Some(capability), Some(node))
                                    == Reason::Allowed
                            })
                            .map(|u| {
                                let giving = world
                                    .assignments
                                    .iter()
                                    .enumerate()
                                    .filter(|(_, (user, role, held_at, window))| {
                                        *user == u
                                            && window.in_force()
                                            && above.contains(held_at)
                                            && world.roles[*role].contains(&capability)
                                    })
                                    .map(|(i, _)| loaded.assignments[i])
                                    .collect();
                                (loaded.users[u], giving)
                            })
                            .collect();
                        prop_assert_eq!(got, expected, "capability {} node {}", capability, node);
                    }
                }
                let unknown_capability =
                    holders(&db, &keys, &loaded, "m.unknown_capability", loaded.nodes[0]).await;
                prop_assert!(matches!(
                    unknown_capability,
                    Err(authz::AuthzError::UnknownCapability)
                ));
                let unknown_node = holders(
                    &db,
                    &keys,
                    &loaded,
                    &loaded.capability_keys[0],
                    Uuid::new_v4(),
                )
                .await;
                prop_assert!(matches!(
                    unknown_node,
                    Err(authz::AuthzError::UnknownOrgNode)
                ));
                Ok(())
            })
        })
        .unwrap();
}
