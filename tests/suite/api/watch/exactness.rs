//! The stream under load: 8 writers make 500 mixed changes each (moves and
//! deactivations among them) while one consumer disconnects and resumes at
//! random points, and the server it streams from is restarted once. The
//! consumer's changes are the audit trail's, once each, in commit order.
//! Run through PgBouncer too, by the suite's PgBouncer run.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use portcullis::db::RlsContext;
use portcullis::proto::v1::administration_client::AdministrationClient;
use portcullis::proto::v1::{
    AssignRoleRequest, CreateOrgNodeRequest, EndAssignmentRequest, GrantVisibilityRequest,
    MoveOrgNodeRequest, OrgNodeRef, RenameOrgNodeRequest, RevokeVisibilityRequest, WatchRequest,
    watch_response,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use scoped_futures::ScopedFutureExt;
use tonic::Request;
use tonic::transport::Channel;
use uuid::Uuid;

use super::{Follower, Setup, from, setup_with};
use crate::support::server::TestServer;

const WRITERS: usize = 8;
const CHANGES_PER_WRITER: usize = 500;

/// One write as its writer saw it: when it was sent and when its answer
/// came (so it committed in between), by its request id.
struct Write {
    request_id: String,
    sent: Instant,
    answered: Instant,
}

/// A change as the consumer received it.
struct Received {
    position: u64,
    event_id: String,
    action: String,
    request_id: String,
    actor_id: String,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writers_resumes_and_a_restart_lose_and_repeat_nothing() {
    let s = setup_with(|_| {}).await;
    let db = s.test.db();
    // The server the consumer streams from, with the same keys.
    let reader_of = || {
        TestServer::build(db.clone())
            .tokens(s.server.tokens.clone())
            .start()
    };
    let mut reader = reader_of().await;
    let mut follower = Follower::open(&reader.channel().await, &s.token, WatchRequest::default())
        .await
        .unwrap();

    let writers: Vec<_> = (0..WRITERS)
        .map(|writer| {
            tokio::spawn(write_changes(
                writer,
                s.channel.clone(),
                s.token.clone(),
                tenant_of(&s),
            ))
        })
        .collect();

    // The consumer: reads, drops and resumes at random points, and moves
    // to a restarted server once half way.
    let mut rng = StdRng::seed_from_u64(0x5EED);
    let mut received: Vec<Received> = Vec::new();
    let mut token = String::new();
    let mut restarted = false;
    let mut resumes = 0;
    let mut expected: Option<usize> = None;
    let mut progress = Instant::now();
    let mut writers = Some(writers);
    let mut writes: Vec<Write> = Vec::new();
    loop {
        if expected.is_none()
            && writers
                .as_ref()
                .is_some_and(|w| w.iter().all(|w| w.is_finished()))
        {
            for writer in writers.take().unwrap() {
                writes.extend(writer.await.unwrap());
            }
            expected = Some(watched_audit_rows(&s).await.len());
        }
        if expected.is_some_and(|expected| received.len() >= expected) {
            break;
        }
        assert!(
            expected.is_none() || progress.elapsed() < Duration::from_secs(15),
            "the consumer got {} of {expected:?} changes and nothing more for 15 s",
            received.len()
        );
        let message = tokio::time::timeout(Duration::from_millis(500), follower.next()).await;
        let message = match message {
            Err(_) => continue, // quiet: look at the writers again
            Ok(message) => message,
        };
        match message {
            Some(Ok(message)) => {
                token = message.token;
                if let Some(watch_response::Event::Change(change)) = message.event {
                    progress = Instant::now();
                    received.push(Received {
                        position: change.position,
                        event_id: change.event_id,
                        action: change.action,
                        request_id: change.request_id,
                        actor_id: change.actor_id,
                    });
                    if !restarted && received.len() >= WRITERS * CHANGES_PER_WRITER / 2 {
                        restarted = true;
                        reader.stop().await.unwrap();
                        reader = reader_of().await;
                        follower = reopen(&reader, &s, &token).await;
                        resumes += 1;
                    } else if rng.gen_ratio(1, 150) {
                        follower = reopen(&reader, &s, &token).await;
                        resumes += 1;
                    }
                }
            }
            // Ended (the restart's shutdown, say): resume where it was.
            Some(Err(_)) | None => {
                follower = reopen(&reader, &s, &token).await;
                resumes += 1;
            }
        }
    }
    assert!(restarted, "the server was restarted mid-stream");
    assert!(
        resumes > 10,
        "the consumer resumed at random points ({resumes})"
    );

    // Once each, in increasing positions.
    assert!(
        received.windows(2).all(|w| w[0].position < w[1].position),
        "positions increase"
    );
    // The stream is the audit trail: the same rows, with their actor and
    // request, and nothing else.
    let audit = watched_audit_rows(&s).await;
    let by_id: HashMap<&str, &AuditRow> = audit
        .iter()
        .map(|row| (row.audit_id.as_str(), row))
        .collect();
    assert_eq!(received.len(), audit.len());
    for change in &received {
        let row = by_id
            .get(change.event_id.as_str())
            .unwrap_or_else(|| panic!("{} is not a watched audit row", change.event_id));
        assert_eq!(change.action, row.action_key);
        assert_eq!(
            change.request_id,
            row.request_id.clone().unwrap_or_default()
        );
        assert_eq!(change.actor_id, row.actor_id.clone().unwrap_or_default());
    }
    let distinct: std::collections::HashSet<&str> =
        received.iter().map(|c| c.event_id.as_str()).collect();
    assert_eq!(distinct.len(), received.len(), "no change twice");
    // In commit order: a write answered before another was sent committed
    // first, so its changes come first.
    let place: HashMap<&str, usize> = received
        .iter()
        .enumerate()
        .map(|(index, change)| (change.request_id.as_str(), index))
        .collect();
    let mut placed: Vec<(&Write, usize)> = writes
        .iter()
        .filter_map(|write| place.get(write.request_id.as_str()).map(|&i| (write, i)))
        .collect();
    assert!(
        placed.len() > WRITERS * CHANGES_PER_WRITER / 2,
        "most writes changed something"
    );
    placed.sort_by_key(|(write, _)| write.answered);
    let mut by_sent: Vec<&(&Write, usize)> = placed.iter().collect();
    by_sent.sort_by_key(|(write, _)| write.sent);
    // For each write in order of sending, the latest place of any write
    // answered before it was sent must be before its own.
    let mut answered = placed.iter().peekable();
    let mut latest_before: Option<usize> = None;
    for (write, index) in by_sent {
        while let Some((earlier, earlier_index)) = answered.peek() {
            if earlier.answered >= write.sent {
                break;
            }
            latest_before = latest_before.max(Some(*earlier_index));
            answered.next();
        }
        if let Some(latest) = latest_before {
            assert!(
                latest < *index,
                "{} came before a change committed before it was sent",
                write.request_id
            );
        }
    }
}

async fn reopen(reader: &TestServer, s: &Setup, token: &str) -> Follower {
    let channel = reader.channel().await;
    Follower::open(&channel, &s.token, from(token))
        .await
        .unwrap()
}

#[derive(Clone)]
struct Tenant {
    id: Uuid,
    root: Uuid,
    user: Uuid,
    role: Uuid,
}

fn tenant_of(s: &Setup) -> Tenant {
    Tenant {
        id: s.world.tenant,
        root: s.world.root,
        user: s.world.user,
        role: s.world.role,
    }
}

/// One writer's 500 changes, each answered before the next is sent.
async fn write_changes(writer: usize, channel: Channel, token: String, t: Tenant) -> Vec<Write> {
    let mut admin = AdministrationClient::new(channel);
    let mut rng = StdRng::seed_from_u64(writer as u64);
    let tenant = t.id.to_string();
    let mut nodes: Vec<Uuid> = Vec::new();
    let mut assignments: Vec<String> = Vec::new();
    let mut grants: Vec<String> = Vec::new();
    let mut writes = Vec::new();
    for step in 0..CHANGES_PER_WRITER {
        let request_id = format!("writer-{writer}-{step}");
        let any_node = |rng: &mut StdRng, nodes: &[Uuid]| nodes[rng.gen_range(0..nodes.len())];
        let sent = Instant::now();
        let op = match if nodes.len() < 3 {
            0
        } else {
            rng.gen_range(0..9)
        } {
            // Nothing to end or revoke yet: a rename instead.
            6 if assignments.is_empty() => 1,
            8 if grants.is_empty() => 1,
            op => op,
        };
        let ok = match op {
            0 => {
                let parent = if nodes.is_empty() {
                    t.root
                } else {
                    any_node(&mut rng, &nodes)
                };
                admin
                    .create_org_node(signed(
                        CreateOrgNodeRequest {
                            tenant_id: tenant.clone(),
                            parent_org_node_id: parent.to_string(),
                            node_type: "site".into(),
                            label: format!("w{writer} s{step}"),
                            idempotency_key: String::new(),
                            dry_run: false,
                        },
                        &token,
                        &request_id,
                    ))
                    .await
                    .map(|node| nodes.push(node.into_inner().org_node_id.parse().unwrap()))
                    .is_ok()
            }
            1 => admin
                .rename_org_node(signed(
                    RenameOrgNodeRequest {
                        tenant_id: tenant.clone(),
                        org_node_id: any_node(&mut rng, &nodes).to_string(),
                        label: format!("w{writer} r{step}"),
                        dry_run: false,
                    },
                    &token,
                    &request_id,
                ))
                .await
                .is_ok(),
            // Moves: a cycle is refused, which is a write that changed
            // nothing.
            2 | 3 => admin
                .move_org_node(signed(
                    MoveOrgNodeRequest {
                        tenant_id: tenant.clone(),
                        org_node_id: nodes[1 + rng.gen_range(0..nodes.len() - 1)].to_string(),
                        new_parent_org_node_id: any_node(&mut rng, &nodes).to_string(),
                        dry_run: false,
                    },
                    &token,
                    &request_id,
                ))
                .await
                .is_ok(),
            4 => {
                let node = OrgNodeRef {
                    tenant_id: tenant.clone(),
                    org_node_id: nodes[1 + rng.gen_range(0..nodes.len() - 1)].to_string(),
                    dry_run: false,
                };
                if rng.gen_bool(0.5) {
                    admin
                        .deactivate_org_node(signed(node, &token, &request_id))
                        .await
                        .is_ok()
                } else {
                    admin
                        .reactivate_org_node(signed(node, &token, &request_id))
                        .await
                        .is_ok()
                }
            }
            5 => admin
                .assign_role(signed(
                    AssignRoleRequest {
                        tenant_id: tenant.clone(),
                        user_id: t.user.to_string(),
                        role_id: t.role.to_string(),
                        org_node_id: any_node(&mut rng, &nodes).to_string(),
                        ..AssignRoleRequest::default()
                    },
                    &token,
                    &request_id,
                ))
                .await
                .map(|a| assignments.push(a.into_inner().assignment_id))
                .is_ok(),
            6 => admin
                .end_assignment(signed(
                    EndAssignmentRequest {
                        tenant_id: tenant.clone(),
                        assignment_id: assignments.swap_remove(rng.gen_range(0..assignments.len())),
                        end_utc: None,
                        dry_run: false,
                    },
                    &token,
                    &request_id,
                ))
                .await
                .is_ok(),
            7 => admin
                .grant_visibility(signed(
                    GrantVisibilityRequest {
                        tenant_id: tenant.clone(),
                        user_id: t.user.to_string(),
                        org_node_id: any_node(&mut rng, &nodes).to_string(),
                        scope: 1,
                        ..GrantVisibilityRequest::default()
                    },
                    &token,
                    &request_id,
                ))
                .await
                .map(|g| grants.push(g.into_inner().grant_id))
                .is_ok(),
            _ => admin
                .revoke_visibility(signed(
                    RevokeVisibilityRequest {
                        tenant_id: tenant.clone(),
                        grant_id: grants.swap_remove(rng.gen_range(0..grants.len())),
                        dry_run: false,
                    },
                    &token,
                    &request_id,
                ))
                .await
                .is_ok(),
        };
        if ok {
            writes.push(Write {
                request_id,
                sent,
                answered: Instant::now(),
            });
        }
    }
    writes
}

/// `body` with the writer's token and the write's request id.
fn signed<T>(body: T, token: &str, request_id: &str) -> Request<T> {
    let mut request = Request::new(body);
    let metadata = request.metadata_mut();
    metadata.insert("authorization", format!("Bearer {token}").parse().unwrap());
    metadata.insert("x-request-id", request_id.parse().unwrap());
    request
}

#[derive(diesel::QueryableByName)]
struct AuditRow {
    #[diesel(sql_type = diesel::sql_types::Text)]
    audit_id: String,
    #[diesel(sql_type = diesel::sql_types::Text)]
    action_key: String,
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Text>)]
    request_id: Option<String>,
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Text>)]
    actor_id: Option<String>,
}

/// The tenant's audit rows of changes the stream carries, read by the
/// stream's own context (the policy the stream's reads pass).
async fn watched_audit_rows(s: &Setup) -> Vec<AuditRow> {
    let ctx = RlsContext::purpose("watch").with_tenant(s.world.tenant);
    s.test
        .db()
        .read(&ctx, |conn| {
            async move {
                use diesel_async::RunQueryDsl;
                diesel::sql_query(
                    "SELECT audit_id::text, action_key, request_id, \
                            coalesce(actor_user_id, actor_svc_id)::text AS actor_id \
                       FROM audit.audit_events \
                      WHERE audit.changes_access(action_key) AND tenant_id = $1",
                )
                .bind::<diesel::sql_types::Uuid, _>(s.world.tenant)
                .load::<AuditRow>(conn)
                .await
                .map_err(portcullis::db::DbError::from)
            }
            .scope_boxed()
        })
        .await
        .unwrap()
}
