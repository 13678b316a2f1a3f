//! What-if: `dry_run` on the administration writes and `PreviewChanges`.
//! A preview runs the real write with its real checks, answers who would
//! gain and lose what where, and leaves nothing behind.

mod assertions;
mod property;

use portcullis::db::RlsContext;
use portcullis::proto::v1::{
    AccessChange, AccessDirection, AssignRoleRequest, PreviewChangesRequest,
    PreviewChangesResponse, ProposedWrite, proposed_write,
};
use tonic::{Code, Status};
use uuid::Uuid;

use super::administration::{Setup, setup};
use crate::support::fixtures::{batch, count};
use crate::support::services::{bearer, create_service, token_of};

fn assign(setup: &Setup, user: Uuid, node: Uuid) -> AssignRoleRequest {
    AssignRoleRequest {
        tenant_id: setup.a.tenant.to_string(),
        user_id: user.to_string(),
        role_id: setup.a.role.to_string(),
        org_node_id: node.to_string(),
        start_utc: None,
        end_utc: None,
        idempotency_key: "what-if".into(),
        dry_run: false,
    }
}

/// A second user of tenant A, holding nothing.
async fn newcomer(setup: &Setup) -> Uuid {
    let user = Uuid::new_v4();
    let sql = format!(
        "INSERT INTO auth.users (user_id, tenant_id, display_label, email_addr) \
         VALUES ('{user}', '{t}', 'Newcomer', 'newcomer@example.test')",
        t = setup.a.tenant
    );
    seed(setup, &sql).await;
    user
}

/// Runs `sql` in tenant A as operator tooling would.
pub(crate) async fn seed(setup: &Setup, sql: &str) {
    let ctx = RlsContext::operator().with_tenant(setup.a.tenant);
    batch(&setup.test.db(), &ctx, sql).await.unwrap();
}

/// Rows that a write leaves behind: assignments, audit rows, idempotency
/// records.
async fn traces(setup: &Setup) -> [i64; 3] {
    let db = setup.test.db();
    let ctx = RlsContext::operator().with_tenant(setup.a.tenant);
    let mut out = [0; 3];
    for (slot, table) in out.iter_mut().zip([
        "auth.org_assignments",
        "audit.audit_events",
        "auth.idempotency_keys",
    ]) {
        *slot = count(&db, &ctx, table).await.unwrap();
    }
    out
}

pub(crate) async fn preview(
    setup: &Setup,
    token: &str,
    writes: Vec<proposed_write::Write>,
    page_token: &str,
) -> Result<PreviewChangesResponse, Status> {
    setup
        .admin()
        .preview_changes(bearer(
            PreviewChangesRequest {
                tenant_id: setup.a.tenant.to_string(),
                writes: writes
                    .into_iter()
                    .map(|write| ProposedWrite { write: Some(write) })
                    .collect(),
                page_size: 0,
                page_token: page_token.into(),
            },
            token,
        ))
        .await
        .map(|r| r.into_inner())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dry_run_answers_like_the_write_and_leaves_nothing_behind() {
    let setup = setup().await;
    let user = newcomer(&setup).await;
    let before = traces(&setup).await;
    let mut ask = assign(&setup, user, setup.a.root);
    ask.dry_run = true;
    let answer = setup
        .admin()
        .assign_role(bearer(ask, &setup.token))
        .await
        .unwrap();
    let headers = answer.metadata().clone();
    assert_eq!(answer.get_ref().user_id, user.to_string());
    assert_eq!(headers.get("x-dry-run").unwrap(), "true");
    // The root and its subtree: one (user, capability, subtree) change.
    assert_eq!(headers.get("x-access-gained").unwrap(), "1");
    assert_eq!(headers.get("x-access-lost").unwrap(), "0");
    assert_eq!(traces(&setup).await, before, "no row, audit event or key");
    assert!(
        headers.get("x-consistency-token").is_none(),
        "nothing committed"
    );
    // The same idempotency key then makes the real write, not a replay.
    let real = setup
        .admin()
        .assign_role(bearer(assign(&setup, user, setup.a.root), &setup.token))
        .await
        .unwrap();
    assert_ne!(real.get_ref().assignment_id, answer.get_ref().assignment_id);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_preview_names_who_gains_which_capability_over_which_subtree() {
    let setup = setup().await;
    let user = newcomer(&setup).await;
    let write = proposed_write::Write::AssignRole(assign(&setup, user, setup.a.child));
    let answer = preview(&setup, &setup.token, vec![write], "")
        .await
        .unwrap();
    let summary = answer.summary.unwrap();
    assert_eq!((summary.gained, summary.lost, summary.users), (1, 0, 1));
    let AccessChange {
        capability,
        direction,
        user_id,
        user_name,
        subtree_root_id,
        subtree_root_label,
        except_org_node_ids,
        effective_at,
    } = answer.changes[0].clone();
    assert_eq!(capability, setup.a.capability());
    assert_eq!(direction, AccessDirection::Gained as i32);
    assert_eq!(user_id, user.to_string());
    assert_eq!(user_name, "newcomer@example.test");
    assert_eq!(subtree_root_id, setup.a.child.to_string());
    assert_eq!(subtree_root_label, "Child");
    assert!(except_org_node_ids.is_empty());
    assert_eq!(effective_at, None);
}

#[tokio::test(flavor = "multi_thread")]
async fn writes_are_previewed_in_order_each_seeing_the_ones_before() {
    let setup = setup().await;
    // Ending the fixture user's only assignment, then giving it back at
    // the child: the root is lost, the child (already held) is not.
    let assignment = crate::support::fixtures::assignment_of(&setup.test, &setup.a).await;
    let end = proposed_write::Write::EndAssignment(portcullis::proto::v1::EndAssignmentRequest {
        tenant_id: String::new(),
        assignment_id: assignment.to_string(),
        end_utc: None,
        dry_run: false,
    });
    let again = proposed_write::Write::AssignRole(AssignRoleRequest {
        idempotency_key: String::new(),
        ..assign(&setup, setup.a.user, setup.a.child)
    });
    let answer = preview(&setup, &setup.token, vec![end, again], "")
        .await
        .unwrap();
    assert_eq!(answer.changes.len(), 1);
    let lost = &answer.changes[0];
    assert_eq!(lost.direction, AccessDirection::Lost as i32);
    assert_eq!(lost.subtree_root_id, setup.a.root.to_string());
    assert_eq!(lost.except_org_node_ids, vec![setup.a.child.to_string()]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_proposed_write_is_held_to_its_own_rpcs_rule() {
    let setup = setup().await;
    let reader = create_service(&setup.test.db(), Some(setup.a.tenant), &["admin.org.read"]).await;
    let token = token_of(&setup.channel, &reader).await.access_token;
    let user = newcomer(&setup).await;
    let write = proposed_write::Write::AssignRole(assign(&setup, user, setup.a.root));
    let refused = preview(&setup, &token, vec![write], "").await.unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied);
    assert!(
        refused.message().starts_with("writes[0].assign_role: "),
        "{}",
        refused.message()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failing_write_names_its_place_in_the_list_and_fails_as_for_real() {
    let setup = setup().await;
    let user = newcomer(&setup).await;
    let good = proposed_write::Write::AssignRole(assign(&setup, user, setup.a.root));
    let unknown = AssignRoleRequest {
        idempotency_key: String::new(),
        ..assign(&setup, user, Uuid::new_v4())
    };
    let real = setup
        .admin()
        .assign_role(bearer(unknown.clone(), &setup.token))
        .await
        .unwrap_err();
    let unknown = proposed_write::Write::AssignRole(unknown);
    let failed = preview(&setup, &setup.token, vec![good, unknown], "")
        .await
        .unwrap_err();
    assert_eq!(failed.code(), real.code());
    assert_eq!(
        failed.message(),
        format!("writes[1].assign_role: {}", real.message())
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_preview_of_another_tenants_write_is_refused_naming_the_field() {
    let setup = setup().await;
    let mut foreign = assign(&setup, setup.b.user, setup.b.root);
    foreign.tenant_id = setup.b.tenant.to_string();
    let write = proposed_write::Write::AssignRole(foreign);
    let refused = preview(&setup, &setup.token, vec![write], "")
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::InvalidArgument);
    assert!(
        refused
            .message()
            .starts_with("writes[0].assign_role.tenant_id: ")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_page_token_of_other_writes_is_refused() {
    let setup = setup().await;
    let user = newcomer(&setup).await;
    let write = proposed_write::Write::AssignRole(assign(&setup, user, setup.a.root));
    let refused = preview(
        &setup,
        &setup.token,
        vec![write],
        "AAAAAAAAAAEAAAAAAAAAAAAAAAAAAAAA",
    )
    .await
    .unwrap_err();
    assert_eq!(refused.code(), Code::InvalidArgument);
    assert!(refused.message().starts_with("page_token: "));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tenant_suspension_previews_everyone_losing_everything_and_suspends_nothing() {
    let setup = setup().await;
    let answer = setup
        .admin()
        .suspend_tenant(bearer(
            portcullis::proto::v1::TenantRef {
                tenant_id: setup.a.tenant.to_string(),
                dry_run: true,
            },
            &setup.global_token,
        ))
        .await
        .unwrap();
    assert!(
        !answer.get_ref().active,
        "the answer is the suspended tenant"
    );
    assert_eq!(answer.metadata().get("x-access-lost").unwrap(), "1");
    assert_eq!(
        setup.check(&setup.a, setup.a.child).await,
        portcullis::proto::v1::DecisionReason::Allowed
    );
}
