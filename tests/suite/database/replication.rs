//! Reads on a real hot standby: a read that presents a write's consistency
//! token is never answered from before the write; a read that bounds its
//! staleness is answered by the standby within the bound; a standby that
//! stops is taken out of rotation and reads fall back to the primary.

use std::time::Duration;

use diesel::sql_types::Uuid as SqlUuid;
use diesel_async::RunQueryDsl;
use portcullis::consistency::Requirement;
use portcullis::db::{Db, DbError, ReplicaHealth, RlsContext};
use portcullis::proto::v1::administration_client::AdministrationClient;
use portcullis::proto::v1::authorization_client::AuthorizationClient;
use portcullis::proto::v1::{AssignRoleRequest, CheckCapabilityResponse, DecisionReason};
use tonic::metadata::MetadataMap;
use tonic::transport::Channel;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};

use crate::operations::metrics::scrape;
use crate::support::bouncer::Bouncer;
use crate::support::fixtures::{TenantWorld, assignment_of, populate};
use crate::support::replication::{Pair, end_through_api, pair, reading_standby, until_replica};
use crate::support::server::TestServer;
use crate::support::services::{bearer, create_service, token_of};
use crate::support::{APP_ROLE, TestDb, test_pool};

pub(super) const TOKEN: &str = "x-consistency-token";
pub(super) const SERVED_BY: &str = "x-consistency-served-by";
pub(super) const STALENESS: &str = "x-consistency-staleness";

pub(super) struct Setup {
    pub(super) test: TestDb,
    db: Db,
    world: TenantWorld,
    server: TestServer,
    channel: Channel,
    checker: String,
    admin: String,
}

/// A server reading from the pair's standby (default: at most 1 s stale;
/// a paused standby stays in rotation for a minute).
pub(super) async fn setup(pair: &Pair) -> Setup {
    setup_through(pair, None).await
}

/// The same, reaching the standby through a PgBouncer on `bouncer_port`
/// (transaction pooling: statements are not cached across transactions).
async fn setup_through(pair: &Pair, bouncer_port: Option<u16>) -> Setup {
    let (test, mut standby) = pair.database().await;
    let mut pool = test_pool();
    if let Some(port) = bouncer_port {
        standby.set_port(Some(port)).unwrap();
        pool.statement_cache = false;
    }
    let setup = test.db();
    let world = populate(&setup).await;
    let checker = create_service(&setup, Some(world.tenant), &["authz.check"]).await;
    let admin = create_service(
        &setup,
        Some(world.tenant),
        &["admin.assignments.write", "admin.assignments.read"],
    )
    .await;
    let db = reading_standby(
        &test,
        &standby,
        &pool,
        Requirement::max_staleness(Duration::from_secs(1)),
    );
    let server = TestServer::build(db.clone()).metrics().start().await;
    let channel = server.channel().await;
    let checker = token_of(&channel, &checker).await.access_token;
    let admin = token_of(&channel, &admin).await.access_token;
    let s = Setup {
        test,
        db,
        world,
        server,
        channel,
        checker,
        admin,
    };
    s.wait_for(ReplicaHealth::InRotation).await;
    s
}

impl Setup {
    async fn wait_for(&self, health: ReplicaHealth) {
        until_replica(&self.db, health).await;
    }

    /// The user's check at the child node, with `headers`.
    pub(super) async fn check(
        &self,
        headers: &[(&'static str, &str)],
    ) -> (DecisionReason, MetadataMap) {
        let answer = self.check_call(headers).await.unwrap();
        (answer.get_ref().reason(), answer.metadata().clone())
    }

    /// Checks at `token` until the standby answers (within the wait, or
    /// on a later try once the monitor has seen it replay): never allowed.
    async fn until_the_standby_answers(&self, token: &str) {
        let mut answered_by = None;
        for _ in 0..50 {
            let (reason, answered) = self.check(&[(TOKEN, token)]).await;
            assert_eq!(reason, DecisionReason::NoMatchingAssignment);
            answered_by = header(&answered, SERVED_BY);
            if answered_by.as_deref() == Some("replica-1") {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("the standby never answered at the token: {answered_by:?}");
    }

    /// The same check's refusal.
    async fn check_status(&self, headers: &[(&'static str, &str)]) -> tonic::Status {
        self.check_call(headers).await.unwrap_err()
    }

    async fn check_call(
        &self,
        headers: &[(&'static str, &str)],
    ) -> Result<tonic::Response<CheckCapabilityResponse>, tonic::Status> {
        let mut request = bearer(self.world.check_at_child(), &self.checker);
        for (name, value) in headers {
            request.metadata_mut().insert(*name, value.parse().unwrap());
        }
        AuthorizationClient::new(self.channel.clone())
            .check_capability(request)
            .await
    }

    /// Ends the user's assignment (the fixture's) through the API; the
    /// write's token.
    async fn end_assignment(&self) -> String {
        let assignment = assignment_of(&self.test, &self.world).await;
        self.end(&assignment.to_string()).await
    }

    /// Ends `assignment` through the API; the write's token.
    pub(super) async fn end(&self, assignment: &str) -> String {
        end_through_api(&self.channel, &self.admin, self.world.tenant, assignment).await
    }

    /// Assigns the user the fixture's role at the root again; the new
    /// assignment and the write's token.
    pub(super) async fn assign(&self) -> (String, String) {
        let answer = AdministrationClient::new(self.channel.clone())
            .assign_role(bearer(
                AssignRoleRequest {
                    tenant_id: self.world.tenant.to_string(),
                    user_id: self.world.user.to_string(),
                    role_id: self.world.role.to_string(),
                    org_node_id: self.world.root.to_string(),
                    start_utc: None,
                    end_utc: None,
                    idempotency_key: String::new(),
                    dry_run: false,
                },
                &self.admin,
            ))
            .await
            .unwrap();
        let token = header(answer.metadata(), TOKEN).expect("a write answers with its token");
        (answer.into_inner().assignment_id, token)
    }

    /// The fixture's assignment.
    pub(super) async fn first_assignment(&self) -> String {
        assignment_of(&self.test, &self.world).await.to_string()
    }
}

pub(super) fn header(metadata: &MetadataMap, name: &str) -> Option<String> {
    metadata
        .get(name)
        .map(|value| value.to_str().unwrap().to_owned())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_check_presenting_an_ended_assignments_token_is_denied_while_the_standby_is_paused() {
    let pair = pair().await;
    let _turn = pair.turn().await;
    let s = setup(pair).await;
    let (reason, answered) = s.check(&[]).await;
    assert_eq!(reason, DecisionReason::Allowed);
    assert_eq!(header(&answered, SERVED_BY).as_deref(), Some("replica-1"));

    pair.set_replay(false).await;
    let ended = s.end_assignment().await;
    let (reason, answered) = s.check(&[(TOKEN, &ended)]).await;
    assert_eq!(reason, DecisionReason::NoMatchingAssignment, "{answered:?}");
    assert_eq!(header(&answered, SERVED_BY).as_deref(), Some("primary"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_paused_standby_answers_a_check_that_tolerates_its_staleness_and_says_how_stale() {
    let pair = pair().await;
    let _turn = pair.turn().await;
    let s = setup(pair).await;
    pair.set_replay(false).await;
    s.end_assignment().await;
    tokio::time::sleep(Duration::from_millis(200)).await;

    let (reason, answered) = s.check(&[("x-consistency", "max_staleness=1h")]).await;
    // The standby has not replayed the end yet: its (stale) answer, stated.
    assert_eq!(reason, DecisionReason::Allowed);
    assert_eq!(header(&answered, SERVED_BY).as_deref(), Some("replica-1"));
    let staleness = header(&answered, STALENESS).expect("a replica's answer states its staleness");
    let millis: u64 = staleness.trim_end_matches("ms").parse().unwrap();
    assert!(
        millis >= 200,
        "the standby stopped replaying 200 ms ago: {staleness}"
    );
    assert!(
        header(&answered, TOKEN).is_some(),
        "and the point it was evaluated at"
    );

    // The default bound (1 s) is not met once the standby is that far behind.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (reason, answered) = s.check(&[]).await;
    assert_eq!(reason, DecisionReason::NoMatchingAssignment);
    assert_eq!(header(&answered, SERVED_BY).as_deref(), Some("primary"));
}

#[tokio::test(flavor = "multi_thread")]
async fn once_replay_resumes_the_standby_answers_the_token_bearing_check_itself() {
    let pair = pair().await;
    let _turn = pair.turn().await;
    let s = setup(pair).await;
    pair.set_replay(false).await;
    let ended = s.end_assignment().await;
    pair.set_replay(true).await;
    s.until_the_standby_answers(&ended).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stopped_standby_leaves_rotation_reads_fall_back_and_health_says_so() {
    let pair = pair().await;
    let _turn = pair.turn().await;
    let s = setup(pair).await;
    let mut health = HealthClient::new(s.channel.clone());
    let replica_health = async |health: &mut HealthClient<Channel>| {
        health
            .check(HealthCheckRequest {
                service: "portcullis.replica.replica-1".into(),
            })
            .await
            .map(|r| r.into_inner().status())
            .ok()
    };
    pair.stop_standby().await;
    s.wait_for(ReplicaHealth::Down).await;
    let (reason, answered) = s.check(&[]).await;
    assert_eq!(reason, DecisionReason::Allowed);
    assert_eq!(header(&answered, SERVED_BY).as_deref(), Some("primary"));
    let mut status = None;
    for _ in 0..100 {
        status = replica_health(&mut health).await;
        if status == Some(ServingStatus::NotServing) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(status, Some(ServingStatus::NotServing));
    // The server as a whole still serves: the primary answers.
    let overall = health
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .status();
    assert_eq!(overall, ServingStatus::Serving);

    pair.start_standby().await;
    s.wait_for(ReplicaHealth::InRotation).await;
    let (_, answered) = s.check(&[]).await;
    assert_eq!(header(&answered, SERVED_BY).as_deref(), Some("replica-1"));
    drop(s.server);
}

#[tokio::test(flavor = "multi_thread")]
async fn through_pgbouncer_the_standby_still_answers_only_when_fresh_enough() {
    let pair = pair().await;
    let _turn = pair.turn().await;
    let Some(_bouncer) = Bouncer::start(("127.0.0.1", pair.standby_port), APP_ROLE).await else {
        eprintln!("skipped: PgBouncer is not installed");
        return;
    };
    let s = setup_through(pair, Some(_bouncer.port)).await;
    let (_, answered) = s.check(&[]).await;
    assert_eq!(header(&answered, SERVED_BY).as_deref(), Some("replica-1"));
    pair.set_replay(false).await;
    let ended = s.end_assignment().await;
    let (reason, answered) = s.check(&[(TOKEN, &ended)]).await;
    assert_eq!(reason, DecisionReason::NoMatchingAssignment);
    assert_eq!(header(&answered, SERVED_BY).as_deref(), Some("primary"));
    pair.set_replay(true).await;
    s.until_the_standby_answers(&ended).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn where_reads_went_how_long_they_waited_and_each_replicas_lag_are_exported() {
    let pair = pair().await;
    let _turn = pair.turn().await;
    let s = setup(pair).await;
    s.check(&[]).await;
    pair.set_replay(false).await;
    let ended = s.end_assignment().await;
    s.check(&[(TOKEN, &ended)]).await;
    let text = scrape(s.server.metrics.unwrap()).await;
    for series in [
        "portcullis_replica_reads_total{target=\"replica-1\"}",
        "portcullis_replica_reads_total{target=\"primary\"}",
        "portcullis_replica_fallbacks_total{reason=\"not_fresh_enough\"}",
        "portcullis_replica_wait_seconds_count",
        "portcullis_replica_staleness_seconds{replica=\"replica-1\"}",
        "portcullis_replica_in_rotation{replica=\"replica-1\"} 1",
    ] {
        assert!(text.contains(series), "{series} not in:\n{text}");
    }
}

#[derive(diesel::QueryableByName)]
struct SqlToken {
    #[diesel(sql_type = diesel::sql_types::Text)]
    token: String,
}

/// Ends the user's assignments in a transaction of the test's own, as a
/// service writing through SQL would, and takes the transaction's token.
async fn end_through_sql(s: &Setup) -> String {
    use scoped_futures::ScopedFutureExt;
    let user = s.world.user;
    s.test
        .db()
        .write(
            &RlsContext::operator().with_tenant(s.world.tenant),
            |conn| {
                async move {
                    diesel::sql_query(
                        "UPDATE auth.org_assignments SET end_utc = now() WHERE user_id = $1",
                    )
                    .bind::<SqlUuid, _>(user)
                    .execute(conn)
                    .await?;
                    let token: SqlToken =
                        diesel::sql_query("SELECT auth.consistency_token() AS token")
                            .get_result(conn)
                            .await?;
                    Ok::<_, DbError>(token.token)
                }
                .scope_boxed()
            },
        )
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_token_from_a_services_own_sql_transaction_is_honoured_once_it_commits() {
    let pair = pair().await;
    let _turn = pair.turn().await;
    let s = setup(pair).await;
    pair.set_replay(false).await;
    let token = end_through_sql(&s).await;
    assert!(token.starts_with("cts1."), "{token}");
    let (reason, answered) = s.check(&[(TOKEN, &token)]).await;
    assert_eq!(reason, DecisionReason::NoMatchingAssignment);
    assert_eq!(header(&answered, SERVED_BY).as_deref(), Some("primary"));
    // The answer's own token is of the usual kind, for the next call.
    assert!(header(&answered, TOKEN).unwrap().starts_with("ct1."));

    let mut forged = token.clone();
    forged.replace_range(forged.len() - 4.., "0000");
    let mut request_headers = [(TOKEN, forged.as_str())];
    let status = s.check_status(&request_headers).await;
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    assert!(
        status.message().starts_with("x-consistency-token: "),
        "{}",
        status.message()
    );
    request_headers[0].1 = "cts1.k1.99999999999999.00";
    assert_eq!(
        s.check_status(&request_headers).await.code(),
        tonic::Code::InvalidArgument
    );
}
