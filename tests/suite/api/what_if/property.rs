//! The preview is the difference a write makes: on random worlds, for
//! random writes, the nodes a preview says each user gains and loses each
//! capability at are exactly those where `CheckCapability`'s answer turns
//! once the write is really made.

use std::collections::{BTreeSet, HashMap};

use portcullis::proto::v1::authorization_client::AuthorizationClient;
use portcullis::proto::v1::{
    AccessDirection, AssignRoleRequest, CapabilityCheck, CheckCapabilitiesRequest,
    EndAssignmentRequest, GetOrgSubtreeRequest, MoveOrgNodeRequest, OrgNodeRef,
    SetRoleCapabilitiesRequest, Subject, UserRef, proposed_write::Write, subject,
};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use uuid::Uuid;

use super::preview;
use crate::api::administration::{Setup, setup};
use crate::support::services::bearer;

/// Worlds, and writes previewed then made in each.
const WORLDS: u64 = 3;
const WRITES_PER_WORLD: usize = 14;

/// (user, capability, node) where a check allows.
type Allowed = BTreeSet<(Uuid, String, Uuid)>;

struct World {
    users: Vec<Uuid>,
    capabilities: Vec<String>,
    roles: Vec<Uuid>,
    nodes: Vec<Uuid>,
    assignments: Vec<Uuid>,
}

/// A random world in tenant A: a tree of twelve nodes, three capabilities,
/// three roles granting random sets of them, four users, eight assignments.
async fn random_world(setup: &Setup, rng: &mut StdRng) -> World {
    let t = setup.a.tenant;
    let short = &t.simple().to_string()[..8];
    let mut sql = String::new();
    let mut capabilities: Vec<String> = (0..3).map(|i| format!("prop.c{i}_{short}")).collect();
    for key in &capabilities {
        sql += &format!("INSERT INTO auth.capabilities (cap_key) VALUES ('{key}');\n");
    }
    let roles: Vec<Uuid> = (0..3).map(|_| Uuid::new_v4()).collect();
    for (i, role) in roles.iter().enumerate() {
        sql += &format!(
            "INSERT INTO auth.roles (role_id, tenant_id, role_key, role_label) VALUES ('{role}', '{t}', 'prop_{i}', 'Prop {i}');\n"
        );
        for key in capabilities.iter().filter(|_| rng.gen_bool(0.6)) {
            sql += &format!(
                "INSERT INTO auth.role_capabilities (tenant_id, role_id, cap_id) \
                 SELECT '{t}', '{role}', cap_id FROM auth.capabilities WHERE cap_key = '{key}';\n"
            );
        }
    }
    let users: Vec<Uuid> = (0..4).map(|_| Uuid::new_v4()).collect();
    for (i, user) in users.iter().enumerate() {
        sql += &format!(
            "INSERT INTO auth.users (user_id, tenant_id, display_label) VALUES ('{user}', '{t}', 'Prop {i}');\n"
        );
    }
    let mut nodes = vec![setup.a.root, setup.a.child];
    for i in 0..10 {
        let node = Uuid::new_v4();
        let parent = *nodes.choose(rng).unwrap();
        let active = rng.gen_bool(0.9);
        sql += &format!(
            "INSERT INTO auth.org_nodes (org_node_id, tenant_id, parent_org_node_id, node_type_code, node_label, active_flag) \
             VALUES ('{node}', '{t}', '{parent}', 'site', 'N{i}', {active});\n"
        );
        nodes.push(node);
    }
    let mut assignments = Vec::new();
    for _ in 0..8 {
        let id = Uuid::new_v4();
        let (user, role, node) = (
            users.choose(rng).unwrap(),
            roles.choose(rng).unwrap(),
            nodes.choose(rng).unwrap(),
        );
        sql += &format!(
            "INSERT INTO auth.org_assignments (assignment_id, tenant_id, user_id, role_id, org_node_id) \
             VALUES ('{id}', '{t}', '{user}', '{role}', '{node}');\n"
        );
        assignments.push(id);
    }
    // The fixture's own user, role and capability are part of the world.
    capabilities.push(setup.a.capability());
    let users = [users, vec![setup.a.user]].concat();
    super::seed(setup, &sql).await;
    World {
        users,
        capabilities,
        roles,
        nodes,
        assignments,
    }
}

/// The tree as it is now: each node's parent.
async fn parents(setup: &Setup) -> HashMap<Uuid, Option<Uuid>> {
    let subtree = setup
        .admin()
        .get_org_subtree(bearer(
            GetOrgSubtreeRequest {
                tenant_id: setup.a.tenant.to_string(),
                org_node_id: setup.a.root.to_string(),
                max_nodes: 0,
            },
            &setup.token,
        ))
        .await
        .unwrap()
        .into_inner();
    subtree
        .nodes
        .iter()
        .map(|n| {
            let parent =
                (!n.parent_org_node_id.is_empty()).then(|| n.parent_org_node_id.parse().unwrap());
            (n.org_node_id.parse().unwrap(), parent)
        })
        .collect()
}

async fn allowed(setup: &Setup, world: &World) -> Allowed {
    let mut allowed = Allowed::new();
    for user in &world.users {
        let checks: Vec<(String, Uuid)> = world
            .capabilities
            .iter()
            .flat_map(|c| world.nodes.iter().map(move |n| (c.clone(), *n)))
            .collect();
        let answers = AuthorizationClient::new(setup.channel.clone())
            .check_capabilities(bearer(
                CheckCapabilitiesRequest {
                    subject: Some(Subject {
                        kind: Some(subject::Kind::User(UserRef {
                            tenant_id: setup.a.tenant.to_string(),
                            user_id: user.to_string(),
                        })),
                    }),
                    checks: checks
                        .iter()
                        .map(|(capability, node)| CapabilityCheck {
                            capability: capability.clone(),
                            org_node_id: node.to_string(),
                        })
                        .collect(),
                    explain: false,
                },
                &setup.token,
            ))
            .await
            .unwrap()
            .into_inner();
        for ((capability, node), answer) in checks.into_iter().zip(answers.results) {
            if answer.allowed {
                allowed.insert((*user, capability, node));
            }
        }
    }
    allowed
}

fn is_under(parents: &HashMap<Uuid, Option<Uuid>>, node: Uuid, top: Uuid) -> bool {
    let mut at = Some(node);
    while let Some(id) = at {
        if id == top {
            return true;
        }
        at = parents.get(&id).copied().flatten();
    }
    false
}

/// A random write of the kinds that change access.
fn random_write(setup: &Setup, world: &World, rng: &mut StdRng) -> Write {
    let tenant_id = setup.a.tenant.to_string();
    let node = |rng: &mut StdRng| world.nodes.choose(rng).unwrap().to_string();
    match rng.gen_range(0..7) {
        0 | 1 => {
            let soon = chrono::Utc::now() + chrono::Duration::days(1);
            let (start, end) = match rng.gen_range(0..4) {
                0 => (Some(soon), None),
                1 => (None, Some(soon)),
                _ => (None, None),
            };
            let ts = |t: chrono::DateTime<chrono::Utc>| prost_types::Timestamp {
                seconds: t.timestamp(),
                nanos: 0,
            };
            Write::AssignRole(AssignRoleRequest {
                tenant_id,
                user_id: world.users.choose(rng).unwrap().to_string(),
                role_id: world.roles.choose(rng).unwrap().to_string(),
                org_node_id: node(rng),
                start_utc: start.map(ts),
                end_utc: end.map(ts),
                idempotency_key: String::new(),
                dry_run: false,
            })
        }
        2 => Write::EndAssignment(EndAssignmentRequest {
            tenant_id,
            assignment_id: world.assignments.choose(rng).unwrap().to_string(),
            end_utc: None,
            dry_run: false,
        }),
        3 => Write::MoveOrgNode(MoveOrgNodeRequest {
            tenant_id,
            org_node_id: world.nodes[rng.gen_range(2..world.nodes.len())].to_string(),
            new_parent_org_node_id: node(rng),
            dry_run: false,
        }),
        4 => {
            let node = OrgNodeRef {
                tenant_id,
                org_node_id: node(rng),
                dry_run: false,
            };
            if rng.gen_bool(0.5) {
                Write::DeactivateOrgNode(node)
            } else {
                Write::ReactivateOrgNode(node)
            }
        }
        5 => Write::SetRoleCapabilities(SetRoleCapabilitiesRequest {
            tenant_id,
            role_id: world.roles.choose(rng).unwrap().to_string(),
            capabilities: world
                .capabilities
                .iter()
                .filter(|_| rng.gen_bool(0.5))
                .cloned()
                .collect(),
            dry_run: false,
        }),
        _ => {
            let user = UserRef {
                tenant_id,
                user_id: world.users.choose(rng).unwrap().to_string(),
            };
            if rng.gen_bool(0.5) {
                Write::DeactivateUser(user)
            } else {
                Write::ReactivateUser(user)
            }
        }
    }
}

/// Makes `write` for real, through its own RPC.
async fn make(setup: &Setup, write: Write) -> Result<(), tonic::Status> {
    let mut admin = setup.admin();
    let token = &setup.token;
    match write {
        Write::AssignRole(m) => admin.assign_role(bearer(m, token)).await.map(drop),
        Write::EndAssignment(m) => admin.end_assignment(bearer(m, token)).await.map(drop),
        Write::MoveOrgNode(m) => admin.move_org_node(bearer(m, token)).await.map(drop),
        Write::DeactivateOrgNode(m) => admin.deactivate_org_node(bearer(m, token)).await.map(drop),
        Write::ReactivateOrgNode(m) => admin.reactivate_org_node(bearer(m, token)).await.map(drop),
        Write::SetRoleCapabilities(m) => admin
            .set_role_capabilities(bearer(m, token))
            .await
            .map(drop),
        Write::DeactivateUser(m) => admin.deactivate_user(bearer(m, token)).await.map(drop),
        Write::ReactivateUser(m) => admin.reactivate_user(bearer(m, token)).await.map(drop),
        other => panic!("not a write this test makes: {other:?}"),
    }
}

/// What a preview says changes now, node by node, in the tree `parents`.
async fn previewed(
    setup: &Setup,
    world: &World,
    write: Write,
    parents: &HashMap<Uuid, Option<Uuid>>,
) -> Result<(Allowed, Allowed), tonic::Status> {
    let (mut gained, mut lost) = (Allowed::new(), Allowed::new());
    let mut page_token = String::new();
    loop {
        let page = preview(setup, &setup.token, vec![write.clone()], &page_token).await?;
        for change in page.changes.iter().filter(|c| c.effective_at.is_none()) {
            let root: Uuid = change.subtree_root_id.parse().unwrap();
            let except: Vec<Uuid> = change
                .except_org_node_ids
                .iter()
                .map(|e| e.parse().unwrap())
                .collect();
            let user: Uuid = change.user_id.parse().unwrap();
            for node in &world.nodes {
                let inside = is_under(parents, *node, root)
                    && !except.iter().any(|e| is_under(parents, *node, *e));
                if !inside {
                    continue;
                }
                let entry = (user, change.capability.clone(), *node);
                if change.direction == AccessDirection::Gained as i32 {
                    gained.insert(entry);
                } else {
                    lost.insert(entry);
                }
            }
        }
        if page.next_page_token.is_empty() {
            return Ok((gained, lost));
        }
        page_token = page.next_page_token;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_preview_equals_the_change_in_check_answers_on_random_worlds() {
    for seed in 0..WORLDS {
        let mut rng = StdRng::seed_from_u64(seed);
        let setup = setup().await;
        let world = random_world(&setup, &mut rng).await;
        let mut compared = 0;
        for step in 0..WRITES_PER_WORLD {
            let write = random_write(&setup, &world, &mut rng);
            let before = allowed(&setup, &world).await;
            // The tree the preview's subtrees are read in: as the write
            // leaves it (only a move changes it).
            let mut tree = parents(&setup).await;
            if let Write::MoveOrgNode(m) = &write {
                let (node, parent) = (
                    m.org_node_id.parse().unwrap(),
                    m.new_parent_org_node_id.parse().unwrap(),
                );
                if !is_under(&tree, parent, node) {
                    tree.insert(node, Some(parent));
                }
            }
            let preview = previewed(&setup, &world, write.clone(), &tree).await;
            let made = make(&setup, write.clone()).await;
            let (gained, lost) = match (preview, made) {
                (Ok(difference), Ok(())) => difference,
                (Err(p), Err(m)) => {
                    assert_eq!(p.code(), m.code(), "seed {seed} step {step}: {write:?}");
                    continue;
                }
                (p, m) => panic!("seed {seed} step {step}: preview {p:?}, write {m:?}: {write:?}"),
            };
            let after = allowed(&setup, &world).await;
            let really_gained: Allowed = after.difference(&before).cloned().collect();
            let really_lost: Allowed = before.difference(&after).cloned().collect();
            assert_eq!(
                gained, really_gained,
                "gains, seed {seed} step {step}: {write:?}"
            );
            assert_eq!(
                lost, really_lost,
                "losses, seed {seed} step {step}: {write:?}"
            );
            compared += 1;
        }
        assert!(
            compared >= WRITES_PER_WORLD / 2,
            "seed {seed}: too few writes succeeded"
        );
    }
}
