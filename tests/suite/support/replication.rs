//! The suite's primary and hot standby ([`ReplicatedPair`], under
//! `target/portcullis-replication/`), started once per test run. The tests
//! that use it take turns ([`Pair::turn`]), since pausing replay or
//! stopping the standby affects every database on it.

use std::path::Path;
use std::time::Duration;

use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use portcullis::consistency::Requirement;
use portcullis::db::{Db, PoolSettings, ReplicaHealth, ReplicaSettings};
use portcullis::ops::replicated::ReplicatedPair;
use portcullis::proto::v1::EndAssignmentRequest;
use portcullis::proto::v1::administration_client::AdministrationClient;
use tokio::sync::{Mutex, MutexGuard, OnceCell};
use tonic::transport::Channel;
use url::Url;

use super::{Template, TestDb, ports::unused_port, prepare_template_at};

pub struct Pair {
    servers: ReplicatedPair,
    pub standby_port: u16,
    template: Template,
    turns: Mutex<()>,
}

static PAIR: OnceCell<Pair> = OnceCell::const_new();

/// The suite's primary and standby, started on first use.
pub async fn pair() -> &'static Pair {
    PAIR.get_or_init(|| async {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/portcullis-replication");
        let servers = ReplicatedPair::start(&dir, unused_port(), unused_port())
            .await
            .expect("a primary and a standby of the suite's own");
        let template = prepare_template_at(servers.primary_url())
            .await
            .expect("the template on the replicated primary");
        Pair {
            standby_port: servers.standby_port,
            servers,
            template,
            turns: Mutex::new(()),
        }
    })
    .await
}

impl Pair {
    /// This test's turn with the pair; hold it to the end of the test.
    pub async fn turn(&self) -> MutexGuard<'_, ()> {
        let turn = self.turns.lock().await;
        // Whatever the last test left: the standby up, replay running.
        if !self.servers.standby_answers().await {
            self.start_standby().await;
        }
        self.set_replay(true).await;
        turn
    }

    pub async fn start_standby(&self) {
        self.servers.start_standby().await.unwrap();
    }

    pub async fn stop_standby(&self) {
        self.servers.stop_standby().await.unwrap();
    }

    /// A migrated database of the test's own on the primary, and the
    /// application role's URL of the same database on the standby, once
    /// the standby has it.
    pub async fn database(&self) -> (TestDb, Url) {
        let test = TestDb::on(&self.template).await;
        let mut standby = test.app_url.clone();
        standby.set_port(Some(self.standby_port)).unwrap();
        for _ in 0..200 {
            if AsyncPgConnection::establish(standby.as_str()).await.is_ok() {
                return (test, standby);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the standby never received {}", test.name);
    }

    /// Pauses (`false`) or resumes (`true`) replay on the standby.
    pub async fn set_replay(&self, running: bool) {
        let mut conn = AsyncPgConnection::establish(self.servers.standby_url().as_str())
            .await
            .unwrap();
        let call = if running {
            "SELECT pg_catalog.pg_wal_replay_resume()"
        } else {
            "SELECT pg_catalog.pg_wal_replay_pause()"
        };
        diesel::sql_query(call).execute(&mut conn).await.unwrap();
    }
}

/// `test`'s database reading from the standby at `standby`: requests that
/// state nothing tolerate `default`; a paused standby stays in rotation for
/// a minute.
pub fn reading_standby(
    test: &TestDb,
    standby: &Url,
    pool: &PoolSettings,
    default: Requirement,
) -> Db {
    test.db()
        .with_read_replicas(
            &[standby.to_string()],
            pool,
            ReplicaSettings {
                default,
                wait: Duration::from_millis(30),
                max_lag: Duration::from_secs(60),
                poll: Duration::from_millis(10),
            },
        )
        .unwrap()
}

/// Waits until `db`'s (one) replica is `health`.
pub async fn until_replica(db: &Db, health: ReplicaHealth) {
    for _ in 0..500 {
        if db.replica_status()[0].health == health {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!(
        "the standby never became {health:?}: {:?}",
        db.replica_status()
    );
}

/// Ends `assignment` of `tenant` through the API as `admin`; the write's
/// consistency token.
pub async fn end_through_api(
    channel: &Channel,
    admin: &str,
    tenant: uuid::Uuid,
    assignment: &str,
) -> String {
    let answer = AdministrationClient::new(channel.clone())
        .end_assignment(super::services::bearer(
            EndAssignmentRequest {
                tenant_id: tenant.to_string(),
                assignment_id: assignment.to_owned(),
                end_utc: None,
                dry_run: false,
            },
            admin,
        ))
        .await
        .unwrap();
    let token = answer.metadata().get("x-consistency-token");
    token
        .expect("a write answers with its token")
        .to_str()
        .unwrap()
        .to_owned()
}
