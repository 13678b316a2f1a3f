//! `Changes/Watch`: every change that can alter access, once, in commit
//! order, with what it does to access; resumable from any token; bounded
//! for a consumer that stops reading.

mod exactness;
mod http_form;

use std::time::Duration;

use portcullis::app::ServerSettings;
use portcullis::proto::v1::administration_client::AdministrationClient;
use portcullis::proto::v1::changes_client::ChangesClient;
use portcullis::proto::v1::{
    AssignRoleRequest, Change, CreateOrgNodeRequest, RenameOrgNodeRequest, WatchRequest,
    WatchResponse, changed_row, watch_response,
};
use tonic::transport::Channel;
use tonic::{Code, Status};
use uuid::Uuid;

use crate::support::TestDb;
use crate::support::fixtures::{TenantWorld, populate};
use crate::support::server::TestServer;
use crate::support::services::{TestService, bearer, create_service, token_of};

/// What a watching, administering service may do.
const PERMISSIONS: &[&str] = &[
    "authz.watch",
    "admin.org.write",
    "admin.assignments.write",
    "admin.grants.write",
    "admin.roles.write",
    "admin.users.write",
];

pub(crate) struct Setup {
    pub test: TestDb,
    pub server: TestServer,
    pub channel: Channel,
    pub world: TenantWorld,
    pub service: TestService,
    pub token: String,
}

pub(crate) async fn setup_with(configure: impl FnOnce(&mut ServerSettings)) -> Setup {
    let test = TestDb::new().await;
    let db = test.db();
    let world = populate(&db).await;
    let service = create_service(&db, Some(world.tenant), PERMISSIONS).await;
    let server = TestServer::build(db).settings(configure).start().await;
    let channel = server.channel().await;
    let token = token_of(&channel, &service).await.access_token;
    Setup {
        test,
        server,
        channel,
        world,
        service,
        token,
    }
}

async fn setup() -> Setup {
    setup_with(|_| {}).await
}

/// A consumer's end of a stream.
pub(crate) struct Follower {
    stream: tonic::Streaming<WatchResponse>,
}

impl Follower {
    pub async fn open(
        channel: &Channel,
        token: &str,
        request: WatchRequest,
    ) -> Result<Self, Status> {
        let stream = ChangesClient::new(channel.clone())
            .watch(bearer(request, token))
            .await?
            .into_inner();
        Ok(Self { stream })
    }

    /// The next message, the end of the stream (`None`), or how it ended.
    pub async fn next(&mut self) -> Option<Result<WatchResponse, Status>> {
        tokio::time::timeout(Duration::from_secs(20), self.stream.message())
            .await
            .expect("a message or the end within 20 s")
            .transpose()
    }

    /// The next change, passing checkpoints, with its token.
    pub async fn next_change(&mut self) -> (Change, String) {
        loop {
            let message = self.next().await.expect("the stream ended").unwrap();
            if let Some(watch_response::Event::Change(change)) = message.event {
                return (change, message.token);
            }
        }
    }
}

pub(crate) fn from(token: &str) -> WatchRequest {
    WatchRequest {
        resume_token: token.to_owned(),
        ..WatchRequest::default()
    }
}

impl Setup {
    pub fn admin(&self) -> AdministrationClient<Channel> {
        AdministrationClient::new(self.channel.clone())
    }

    /// How opening a stream with `request` is refused.
    pub async fn refusal(&self, request: WatchRequest) -> Status {
        Follower::open(&self.channel, &self.token, request)
            .await
            .err()
            .expect("the stream is refused")
    }

    pub async fn follow(&self, request: WatchRequest) -> Follower {
        Follower::open(&self.channel, &self.token, request)
            .await
            .unwrap()
    }

    pub async fn create_node(&self, label: &str) -> Uuid {
        let node = self
            .admin()
            .create_org_node(bearer(
                CreateOrgNodeRequest {
                    tenant_id: self.world.tenant.to_string(),
                    parent_org_node_id: self.world.root.to_string(),
                    node_type: "site".into(),
                    label: label.into(),
                    idempotency_key: String::new(),
                    dry_run: false,
                },
                &self.token,
            ))
            .await
            .unwrap()
            .into_inner();
        node.org_node_id.parse().unwrap()
    }

    /// Assigns the world's role to its user at its child node.
    pub fn assignment_at_child(&self) -> AssignRoleRequest {
        AssignRoleRequest {
            tenant_id: self.world.tenant.to_string(),
            user_id: self.world.user.to_string(),
            role_id: self.world.role.to_string(),
            org_node_id: self.world.child.to_string(),
            ..AssignRoleRequest::default()
        }
    }

    pub async fn rename(&self, node: Uuid, label: &str) {
        self.admin()
            .rename_org_node(bearer(
                RenameOrgNodeRequest {
                    tenant_id: self.world.tenant.to_string(),
                    org_node_id: node.to_string(),
                    label: label.into(),
                    dry_run: false,
                },
                &self.token,
            ))
            .await
            .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_assignment_streams_with_its_actor_request_rows_and_effect() {
    let s = setup().await;
    let mut follower = s.follow(WatchRequest::default()).await;
    let mut request = bearer(s.assignment_at_child(), &s.token);
    request
        .metadata_mut()
        .insert("x-request-id", "watch-assign-1".parse().unwrap());
    let assigned = s.admin().assign_role(request).await.unwrap().into_inner();

    let (change, token) = follower.next_change().await;
    assert!(token.starts_with("ctw1."), "{token}");
    assert_eq!(change.kind, "assignment");
    assert_eq!(change.action, "assignment.created");
    assert_eq!(change.tenant_id, s.world.tenant.to_string());
    assert_eq!(change.entity_id, assigned.assignment_id);
    assert_eq!(change.actor_kind, "service");
    assert_eq!(change.actor_id, s.service.id.to_string());
    assert_eq!(change.request_id, "watch-assign-1");
    assert_eq!(change.before, None);
    assert_eq!(
        change.after.unwrap().row,
        Some(changed_row::Row::Assignment(assigned.clone()))
    );
    let effect = change.effect.unwrap();
    assert!(!effect.all_capabilities);
    assert_eq!(effect.capabilities, vec![s.world.capability()]);
    assert_eq!(effect.subtree_root_id, s.world.child.to_string());
    assert_eq!(effect.user_ids, vec![s.world.user.to_string()]);
    assert_eq!(effect.effective_from, assigned.start_utc);
    assert_eq!(effect.effective_until, None);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_change_token_makes_a_later_read_at_least_as_fresh() {
    let s = setup().await;
    let mut follower = s.follow(WatchRequest::default()).await;
    s.create_node("Fresh").await;
    let (_, token) = follower.next_change().await;
    let checker = create_service(&s.test.db(), Some(s.world.tenant), &["authz.check"]).await;
    let check_token = token_of(&s.channel, &checker).await.access_token;
    let mut request = bearer(s.world.check_at_child(), &check_token);
    request
        .metadata_mut()
        .insert("x-consistency-token", token.parse().unwrap());
    let answer =
        portcullis::proto::v1::authorization_client::AuthorizationClient::new(s.channel.clone())
            .check_capability(request)
            .await
            .unwrap();
    assert_eq!(
        answer.metadata().get("x-consistency-served-by").unwrap(),
        "primary"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_idle_stream_gets_checkpoints_whose_tokens_resume() {
    let s = setup_with(|settings| settings.watch.checkpoint = Duration::from_millis(100)).await;
    let mut follower = s.follow(WatchRequest::default()).await;
    let first = follower.next().await.unwrap().unwrap();
    assert_eq!(
        first.event,
        Some(watch_response::Event::Checkpoint(Default::default()))
    );
    let node = s.create_node("After the checkpoint").await;
    drop(follower);
    let mut resumed = s.follow(from(&first.token)).await;
    let (change, _) = resumed.next_change().await;
    assert_eq!(change.entity_id, node.to_string());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_resumed_stream_continues_after_its_token_without_gaps_or_repeats() {
    let s = setup().await;
    let mut follower = s.follow(WatchRequest::default()).await;
    let nodes = [
        s.create_node("One").await,
        s.create_node("Two").await,
        s.create_node("Three").await,
    ];
    let (first, token) = follower.next_change().await;
    assert_eq!(first.entity_id, nodes[0].to_string());
    drop(follower);
    s.rename(nodes[0], "One renamed").await;
    let mut resumed = s.follow(from(&token)).await;
    let mut seen = Vec::new();
    for _ in 0..3 {
        let (change, _) = resumed.next_change().await;
        assert!(change.position > first.position);
        seen.push((change.entity_id, change.action));
    }
    assert_eq!(
        seen,
        vec![
            (nodes[1].to_string(), "org.node_created".to_owned()),
            (nodes[2].to_string(), "org.node_created".to_owned()),
            (nodes[0].to_string(), "org.node_renamed".to_owned()),
        ]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_resume_from_before_the_retention_is_out_of_range_with_the_oldest_token() {
    let s = setup().await;
    let mut follower = s.follow(WatchRequest::default()).await;
    s.create_node("Old").await;
    s.create_node("Older").await;
    let (_, token) = follower.next_change().await;
    drop(follower);
    let pruned = portcullis::watch::prune(&s.test.db(), Duration::ZERO, chrono::Utc::now())
        .await
        .unwrap();
    assert_eq!(pruned, 2);
    let status = s.refusal(from(&token)).await;
    assert_eq!(status.code(), Code::OutOfRange, "{status:?}");
    assert!(
        status.message().starts_with("resume_token: "),
        "{}",
        status.message()
    );
    let oldest = resume_token(&status);
    let kept = s.create_node("Kept").await;
    let mut resumed = s.follow(from(&oldest)).await;
    let (change, _) = resumed.next_change().await;
    assert_eq!(change.entity_id, kept.to_string());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_token_from_beyond_this_databases_stream_is_out_of_range() {
    let s = setup().await;
    let ahead = portcullis::consistency::token::encode_change(
        s.server.tokens.keys(),
        portcullis::consistency::Lsn(1),
        1_000_000,
        chrono::Utc::now(),
    )
    .unwrap();
    let status = s.refusal(from(&ahead)).await;
    assert_eq!(status.code(), Code::OutOfRange);
    assert!(
        status.message().contains("never reached"),
        "{}",
        status.message()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_token_not_of_the_stream_is_refused_naming_the_field() {
    let s = setup().await;
    for token in ["garbage", "ct1.AAAA.BBBB.CCCC"] {
        let status = s.refusal(from(token)).await;
        assert_eq!(status.code(), Code::InvalidArgument);
        assert!(
            status.message().starts_with("resume_token: "),
            "{}",
            status.message()
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_kinds_filter_passes_only_those_kinds_and_an_unknown_kind_is_named() {
    let s = setup().await;
    let mut follower = s
        .follow(WatchRequest {
            kinds: vec!["assignment".into()],
            ..WatchRequest::default()
        })
        .await;
    s.create_node("Not an assignment").await;
    let assigned = s
        .admin()
        .assign_role(bearer(s.assignment_at_child(), &s.token))
        .await
        .unwrap()
        .into_inner();
    let (change, _) = follower.next_change().await;
    assert_eq!(change.entity_id, assigned.assignment_id);

    let status = s
        .refusal(WatchRequest {
            kinds: vec!["assignment".into(), "session".into()],
            ..WatchRequest::default()
        })
        .await;
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(
        status.message().starts_with("kinds[1]: "),
        "{}",
        status.message()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tenant_bound_service_sees_its_tenant_and_the_catalogues_only() {
    let s = setup().await;
    let other = populate(&s.test.db()).await;
    let other_admin = create_service(&s.test.db(), Some(other.tenant), PERMISSIONS).await;
    let other_token = token_of(&s.channel, &other_admin).await.access_token;
    let mut follower = s.follow(WatchRequest::default()).await;
    // The other tenant's change, then a global one, then ours.
    s.admin()
        .create_org_node(bearer(
            CreateOrgNodeRequest {
                tenant_id: other.tenant.to_string(),
                parent_org_node_id: other.root.to_string(),
                node_type: "site".into(),
                label: "Elsewhere".into(),
                idempotency_key: String::new(),
                dry_run: false,
            },
            &other_token,
        ))
        .await
        .unwrap();
    let catalogue = create_service(&s.test.db(), None, &["admin.catalogue.write"]).await;
    let catalogue_token = token_of(&s.channel, &catalogue).await.access_token;
    s.admin()
        .create_capability(bearer(
            portcullis::proto::v1::CreateCapabilityRequest {
                key: "watch.new_capability".into(),
                description: "new".into(),
                idempotency_key: String::new(),
                dry_run: false,
            },
            &catalogue_token,
        ))
        .await
        .unwrap();
    let ours = s.create_node("Ours").await;
    let (global, _) = follower.next_change().await;
    assert_eq!(global.kind, "capability");
    assert_eq!(global.tenant_id, "");
    assert_eq!(
        global.effect.unwrap().capabilities,
        vec!["watch.new_capability".to_owned()]
    );
    let (own, _) = follower.next_change().await;
    assert_eq!(own.entity_id, ours.to_string());

    let status = s
        .refusal(WatchRequest {
            tenant_id: other.tenant.to_string(),
            ..WatchRequest::default()
        })
        .await;
    assert_eq!(status.code(), Code::NotFound);
    assert!(status.message().starts_with("tenant_id: "));
}

#[tokio::test(flavor = "multi_thread")]
async fn watching_needs_the_authz_watch_permission() {
    let s = setup().await;
    let checker = create_service(&s.test.db(), Some(s.world.tenant), &["authz.check"]).await;
    let token = token_of(&s.channel, &checker).await.access_token;
    let status = Follower::open(&s.channel, &token, WatchRequest::default())
        .await
        .err()
        .unwrap();
    assert_eq!(status.code(), Code::PermissionDenied);
    assert!(
        status.message().contains("authz.watch"),
        "{}",
        status.message()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_role_change_names_exactly_the_capabilities_that_moved() {
    let s = setup().await;
    let mut follower = s.follow(WatchRequest::default()).await;
    s.admin()
        .set_role_capabilities(bearer(
            portcullis::proto::v1::SetRoleCapabilitiesRequest {
                tenant_id: s.world.tenant.to_string(),
                role_id: s.world.role.to_string(),
                capabilities: vec![],
                dry_run: false,
            },
            &s.token,
        ))
        .await
        .unwrap();
    let (change, _) = follower.next_change().await;
    assert_eq!(change.action, "role.capabilities_set");
    let Some(changed_row::Row::Role(before)) = change.before.unwrap().row else {
        panic!("a role before");
    };
    assert_eq!(before.capabilities, vec![s.world.capability()]);
    let effect = change.effect.unwrap();
    assert_eq!(effect.capabilities, vec![s.world.capability()]);
    assert!(!effect.all_capabilities);
    assert_eq!(effect.subtree_root_id, "", "tenant-wide");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stalled_consumer_holds_a_bounded_buffer_then_ends_with_its_resume_token() {
    let s = setup_with(|settings| {
        settings.watch.buffer = 8;
        settings.watch.stall = Duration::from_millis(300);
    })
    .await;
    // A channel of its own, with small HTTP/2 windows: an unread stream
    // holds its connection's window (the writes must not share it), and
    // the client's buffers hold only a few changes, as a slow reader's do.
    let own = tonic::transport::Endpoint::from_shared(format!("http://{}", s.server.addr))
        .unwrap()
        .initial_stream_window_size(Some(16 * 1024))
        .initial_connection_window_size(Some(16 * 1024))
        .connect()
        .await
        .unwrap();
    let mut stalled = Follower::open(&own, &s.token, WatchRequest::default())
        .await
        .unwrap();
    // Far more than the buffer and the transport's window hold.
    let mut made = Vec::new();
    for i in 0..300 {
        made.push(s.create_node(&format!("Node {i}")).await);
    }
    tokio::time::sleep(Duration::from_millis(800)).await;
    let mut seen = Vec::new();
    let mut last_position = 0;
    let ended = loop {
        match stalled.next().await {
            Some(Ok(message)) => {
                if let Some(watch_response::Event::Change(change)) = message.event {
                    last_position = change.position;
                    seen.push(change.entity_id);
                }
                assert!(seen.len() < made.len(), "the stalled stream never ended");
            }
            Some(Err(status)) => break status,
            None => panic!("the stream ended without saying why"),
        }
    };
    assert_eq!(ended.code(), Code::Aborted, "{ended:?}");
    assert!(
        seen.len() < made.len(),
        "the stream ended before it was read"
    );
    let resume = resume_token(&ended);
    let (_, at) = portcullis::consistency::token::decode_change(
        s.server.tokens.keys(),
        &resume,
        chrono::Utc::now(),
    )
    .unwrap();
    assert_eq!(
        at, last_position,
        "the token resumes after the last change sent"
    );
    let mut resumed = s.follow(from(&resume)).await;
    while seen.len() < made.len() {
        seen.push(resumed.next_change().await.0.entity_id);
    }
    let made: Vec<String> = made.iter().map(ToString::to_string).collect();
    assert_eq!(seen, made, "every change once, in order, across the end");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_server_shutting_down_ends_its_streams_with_their_resume_token() {
    let mut s = setup().await;
    let mut follower = s.follow(WatchRequest::default()).await;
    let node = s.create_node("Before the shutdown").await;
    let (change, _) = follower.next_change().await;
    assert_eq!(change.entity_id, node.to_string());
    let stop = s.server.take_stop_signal().unwrap();
    let _ = stop.send(());
    let ended = loop {
        match follower.next().await {
            Some(Ok(_)) => {}
            Some(Err(status)) => break status,
            None => panic!("ended without saying why"),
        }
    };
    assert_eq!(ended.code(), Code::Unavailable, "{ended:?}");
    assert!(ended.metadata().get("x-watch-resume-token").is_some());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_change_that_commits_late_is_streamed_after_one_that_committed_first() {
    use scoped_futures::ScopedFutureExt;
    let s = setup().await;
    let mut follower = s.follow(WatchRequest::default()).await;
    // A change whose transaction stays open while another commits.
    let (release, released) = tokio::sync::oneshot::channel::<()>();
    let (written, wrote) = tokio::sync::oneshot::channel::<()>();
    let db = s.test.db();
    let (tenant, node) = (s.world.tenant, s.world.child);
    let held = tokio::spawn(async move {
        db.write(&portcullis::db::RlsContext::tenant(tenant), |conn| {
            async move {
                use diesel_async::RunQueryDsl;
                diesel::sql_query(format!(
                    "INSERT INTO audit.audit_events \
                       (tenant_id, actor_kind_code, action_key, entity_kind_code, entity_id, request_id) \
                     VALUES ('{tenant}', 'system', 'org.node_renamed', 'org_node', '{node}', 'held-open')"
                ))
                .execute(conn)
                .await?;
                let _ = written.send(());
                let _ = released.await;
                Ok::<_, portcullis::db::DbError>(())
            }
            .scope_boxed()
        })
        .await
        .unwrap();
    });
    wrote.await.unwrap();
    let first = s.create_node("Committed first").await;
    let (change, _) = follower.next_change().await;
    assert_eq!(change.entity_id, first.to_string());
    release.send(()).unwrap();
    held.await.unwrap();
    let (late, _) = tokio::time::timeout(Duration::from_secs(5), follower.next_change())
        .await
        .expect("the change that committed late is streamed too");
    assert_eq!(late.request_id, "held-open");
    assert!(
        late.position > change.position,
        "positions follow commit order"
    );
}

/// The token an ended stream says to resume from.
fn resume_token(ended: &Status) -> String {
    ended
        .metadata()
        .get("x-watch-resume-token")
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned()
}
