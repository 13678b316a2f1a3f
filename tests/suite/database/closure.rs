//! The closure table `auth.org_node_paths` is kept exact by triggers.

use std::collections::HashMap;

use portcullis::db::{Db, DbError, RlsContext};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use uuid::Uuid;

use crate::support::TestDb;
use crate::support::fixtures::{count, execute, populate};

/// Paths that the closure table and a recursive walk of `parent_org_node_id`
/// disagree on, within the context's tenant.
async fn closure_mismatches(db: &Db, ctx: &RlsContext) -> i64 {
    count(
        db,
        ctx,
        "(WITH RECURSIVE walk (ancestor, descendant, depth) AS (
              SELECT org_node_id, org_node_id, 0 FROM auth.org_nodes
              UNION ALL
              SELECT w.ancestor, n.org_node_id, w.depth + 1
                FROM walk w JOIN auth.org_nodes n ON n.parent_org_node_id = w.descendant)
          (SELECT ancestor_org_node_id, descendant_org_node_id, depth_val FROM auth.org_node_paths
           EXCEPT SELECT * FROM walk)
          UNION ALL
          (SELECT * FROM walk
           EXCEPT SELECT ancestor_org_node_id, descendant_org_node_id, depth_val FROM auth.org_node_paths)) diff",
    )
    .await
    .unwrap()
}

async fn add_node(
    db: &Db,
    ctx: &RlsContext,
    tenant: Uuid,
    parent: Option<Uuid>,
) -> Result<Uuid, DbError> {
    let id = Uuid::new_v4();
    let parent = parent.map_or("NULL".to_owned(), |p| format!("'{p}'"));
    execute(
        db,
        ctx,
        &format!("INSERT INTO auth.org_nodes (org_node_id, tenant_id, parent_org_node_id, node_type_code, node_label) VALUES ('{id}', '{tenant}', {parent}, 'unit', 'n')"),
    )
    .await?;
    Ok(id)
}

async fn move_node(
    db: &Db,
    ctx: &RlsContext,
    node: Uuid,
    parent: Option<Uuid>,
) -> Result<usize, DbError> {
    let parent = parent.map_or("NULL".to_owned(), |p| format!("'{p}'"));
    execute(
        db,
        ctx,
        &format!(
            "UPDATE auth.org_nodes SET parent_org_node_id = {parent} WHERE org_node_id = '{node}'"
        ),
    )
    .await
}

#[derive(Clone, Debug)]
enum Op {
    Add { parent: Option<usize> },
    Move { node: usize, parent: Option<usize> },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        2 => proptest::option::weighted(0.9, any::<usize>()).prop_map(|parent| Op::Add { parent }),
        1 => (any::<usize>(), proptest::option::weighted(0.8, any::<usize>()))
            .prop_map(|(node, parent)| Op::Move { node, parent }),
    ]
}

/// The model: parent of every node.
fn is_descendant(parents: &HashMap<Uuid, Option<Uuid>>, node: Uuid, of: Uuid) -> bool {
    let mut current = Some(node);
    while let Some(n) = current {
        if n == of {
            return true;
        }
        current = parents[&n];
    }
    false
}

fn depth(parents: &HashMap<Uuid, Option<Uuid>>, node: Uuid) -> i64 {
    let mut depth = 0;
    let mut current = parents[&node];
    while let Some(n) = current {
        depth += 1;
        current = parents[&n];
    }
    depth
}

#[test]
fn closure_table_equals_a_recursive_walk_after_random_inserts_and_moves() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let test = runtime.block_on(TestDb::new());
    let db = test.db();
    let mut runner = TestRunner::new(Config {
        cases: 24,
        failure_persistence: None,
        ..Config::default()
    });
    runner
        .run(&proptest::collection::vec(op(), 1..40), |ops| {
            runtime.block_on(async {
                let world = populate(&db).await;
                let ctx = RlsContext::tenant(world.tenant);
                let mut nodes = vec![world.root, world.child];
                let mut parents =
                    HashMap::from([(world.root, None), (world.child, Some(world.root))]);
                for op in ops {
                    match op {
                        Op::Add { parent } => {
                            let parent = parent.map(|i| nodes[i % nodes.len()]);
                            let id = add_node(&db, &ctx, world.tenant, parent).await.unwrap();
                            nodes.push(id);
                            parents.insert(id, parent);
                        }
                        Op::Move { node, parent } => {
                            let node = nodes[node % nodes.len()];
                            let parent = parent.map(|i| nodes[i % nodes.len()]);
                            let cycle = parent.is_some_and(|p| is_descendant(&parents, p, node));
                            let result = move_node(&db, &ctx, node, parent).await;
                            if cycle {
                                let error = result.expect_err("a cycle was accepted").to_string();
                                prop_assert!(
                                    error.contains("cannot move under its own descendant"),
                                    "{error}"
                                );
                            } else {
                                prop_assert_eq!(result.unwrap(), 1);
                                parents.insert(node, parent);
                            }
                        }
                    }
                }
                prop_assert_eq!(closure_mismatches(&db, &ctx).await, 0);
                let expected_rows: i64 = nodes.iter().map(|&n| depth(&parents, n) + 1).sum();
                prop_assert_eq!(
                    count(&db, &ctx, "auth.org_node_paths").await.unwrap(),
                    expected_rows
                );
                Ok(())
            })
        })
        .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn every_node_has_its_depth_zero_self_row() {
    let test = TestDb::new().await;
    let db = test.db();
    let world = populate(&db).await;
    let ctx = RlsContext::tenant(world.tenant);
    let self_rows = count(
        &db,
        &ctx,
        "auth.org_node_paths WHERE ancestor_org_node_id = descendant_org_node_id AND depth_val = 0",
    )
    .await
    .unwrap();
    assert_eq!(self_rows, count(&db, &ctx, "auth.org_nodes").await.unwrap());
}

#[tokio::test(flavor = "multi_thread")]
async fn moving_a_node_under_its_own_descendant_is_rejected() {
    let test = TestDb::new().await;
    let db = test.db();
    let world = populate(&db).await;
    let ctx = RlsContext::tenant(world.tenant);
    let grandchild = add_node(&db, &ctx, world.tenant, Some(world.child))
        .await
        .unwrap();

    for new_parent in [world.root, world.child, grandchild] {
        let error = move_node(&db, &ctx, world.root, Some(new_parent))
            .await
            .unwrap_err();
        assert!(
            error
                .to_string()
                .contains("cannot move under its own descendant"),
            "{error}"
        );
    }
    assert_eq!(closure_mismatches(&db, &ctx).await, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_parent_in_another_tenant_is_rejected() {
    let test = TestDb::new().await;
    let db = test.db();
    let a = populate(&db).await;
    let b = populate(&db).await;
    let ctx = RlsContext::tenant(a.tenant);

    let insert = add_node(&db, &ctx, a.tenant, Some(b.root))
        .await
        .unwrap_err();
    assert!(
        insert.to_string().contains("is not in the tenant"),
        "{insert}"
    );
    let moved = move_node(&db, &ctx, a.child, Some(b.root))
        .await
        .unwrap_err();
    assert!(
        moved.to_string().contains("is not in the tenant"),
        "{moved}"
    );
    assert_eq!(closure_mismatches(&db, &ctx).await, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_crossing_moves_never_form_a_cycle() {
    let test = TestDb::new().await;
    let db = test.db();
    let world = populate(&db).await;
    let ctx = RlsContext::tenant(world.tenant);
    for _ in 0..10 {
        // Two siblings; each transaction tries to move one under the other.
        let left = add_node(&db, &ctx, world.tenant, Some(world.root))
            .await
            .unwrap();
        let right = add_node(&db, &ctx, world.tenant, Some(world.root))
            .await
            .unwrap();
        let (first, second) = tokio::join!(
            move_node(&db, &ctx, left, Some(right)),
            move_node(&db, &ctx, right, Some(left)),
        );
        assert!(
            first.is_ok() != second.is_ok(),
            "exactly one move may win: {first:?} {second:?}"
        );
    }
    assert_eq!(closure_mismatches(&db, &ctx).await, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_node_created_under_a_subtree_being_moved_gets_its_new_ancestors() {
    use diesel_async::RunQueryDsl;
    use scoped_futures::ScopedFutureExt;

    let test = TestDb::new().await;
    let db = test.db();
    let world = populate(&db).await;
    let ctx = RlsContext::tenant(world.tenant);
    let old_parent = add_node(&db, &ctx, world.tenant, Some(world.root))
        .await
        .unwrap();
    let new_parent = add_node(&db, &ctx, world.tenant, Some(world.root))
        .await
        .unwrap();
    let moved = add_node(&db, &ctx, world.tenant, Some(old_parent))
        .await
        .unwrap();
    let (moving, moved_but_open) = tokio::sync::oneshot::channel();
    let mover = {
        let (db, ctx) = (db.clone(), ctx.clone());
        tokio::spawn(async move {
            db.write(&ctx, |conn| {
                async move {
                    diesel::sql_query(format!(
                        "UPDATE auth.org_nodes SET parent_org_node_id = '{new_parent}' WHERE org_node_id = '{moved}'"
                    ))
                    .execute(conn)
                    .await?;
                    let _ = moving.send(());
                    // The move stays uncommitted while the insert is made.
                    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
                    Ok::<_, DbError>(())
                }
                .scope_boxed()
            })
            .await
        })
    };
    moved_but_open.await.unwrap();
    add_node(&db, &ctx, world.tenant, Some(moved))
        .await
        .unwrap();
    mover.await.unwrap().unwrap();
    assert_eq!(closure_mismatches(&db, &ctx).await, 0);
}
