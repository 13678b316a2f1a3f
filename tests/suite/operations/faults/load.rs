//! A server behind a cuttable proxy under mixed concurrent load (checks,
//! credential exchanges and revocations, password logins and refreshes,
//! idempotency-keyed admin creates, on one channel), every answer recorded
//! with its code and time, and the health service watched beside it.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use diesel::sql_types::{Array, Text, Uuid as SqlUuid};
use diesel_async::RunQueryDsl;
use portcullis::db::PoolSettings;
use portcullis::proto::v1::administration_client::AdministrationClient;
use portcullis::proto::v1::authentication_client::AuthenticationClient;
use portcullis::proto::v1::authorization_client::AuthorizationClient;
use portcullis::proto::v1::service_credentials_client::ServiceCredentialsClient;
use portcullis::proto::v1::{
    CheckCapabilityRequest, CreateOrgNodeRequest, ExchangeServiceCredentialRequest,
    RefreshSessionRequest, RevokeServiceTokenRequest, Subject, UserRef,
    revoke_service_token_request, subject,
};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tonic::Code;
use tonic::transport::Channel;
use tonic_health::ServingStatus;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;
use uuid::Uuid;

use super::{Count, password_login, password_user};
use crate::support::fixtures::populate;
use crate::support::proxy::Proxy;
use crate::support::server::TestServer;
use crate::support::services::{TestService, bearer, create_service, token_of};
use crate::support::{TestDb, pgbouncer};

/// Users who log in, one per caller (more callers share them).
const USERS: usize = 8;

/// Short limits, so a fault case runs in seconds.
pub fn fault_pool() -> PoolSettings {
    PoolSettings {
        max_size: 4,
        acquire_timeout: Duration::from_secs(1),
        idle_timeout: None,
        max_lifetime: None,
        statement_timeout: Duration::from_secs(2),
        idle_in_transaction_timeout: Duration::from_secs(3),
        statement_cache: pgbouncer().is_none(),
    }
}

/// The longest any call may take to fail under [`fault_pool`]: the wait
/// for a connection, then a transaction the database stopped answering.
pub const FAILURE_BOUND: Duration = Duration::from_secs(1 + 2 + 3 + 1);

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Call {
    Check,
    Exchange,
    Login,
    Refresh,
    CreateNode,
    Revoke,
}

const CALLS: [Call; 6] = [
    Call::Check,
    Call::Exchange,
    Call::Login,
    Call::Refresh,
    Call::CreateNode,
    Call::Revoke,
];

/// Half checks, half writes of every kind.
const MIX: [Call; 10] = [
    Call::Check,
    Call::Exchange,
    Call::Check,
    Call::Login,
    Call::Check,
    Call::CreateNode,
    Call::Check,
    Call::Refresh,
    Call::Check,
    Call::Revoke,
];

/// What one caller carries from call to call.
#[derive(Default)]
pub struct Carried {
    /// Which caller this is.
    caller: usize,
    /// Its session's current refresh token, from its last login or refresh.
    refresh_token: Option<String>,
    /// The service session its last exchange opened, not yet revoked.
    service_session: Option<Uuid>,
}

/// What a call answered: the row it wrote, and a refresh token to carry.
#[derive(Debug, Default)]
pub struct Answer {
    written: Option<Uuid>,
    refresh_token: Option<String>,
}

pub struct Outcome {
    pub call: Call,
    /// When the call was sent, from the start of the load.
    pub at: Duration,
    pub took: Duration,
    pub code: Code,
    pub message: String,
    /// The row an acknowledged write made or changed (session, service
    /// session, node, revoked service session).
    pub written: Option<Uuid>,
    /// A create's idempotency key and label.
    pub key: Option<String>,
}

pub struct Rig {
    pub test: TestDb,
    pub proxy: Proxy,
    pub server: TestServer,
    channel: Channel,
    tenant: Uuid,
    root: Uuid,
    /// Who logs in, by caller; the first is also the checks' subject.
    users: Vec<(Uuid, String)>,
    capability: String,
    exchanger: TestService,
    exchanger_token: String,
    checker_token: String,
    admin_token: String,
}

impl Rig {
    pub async fn start() -> Self {
        Self::start_behind(None).await
    }

    /// With the proxy in front of a PgBouncer of the test's own on
    /// `bouncer_port`, when given, instead of the suite's database door.
    pub async fn start_behind(bouncer_port: Option<u16>) -> Self {
        let test = TestDb::new().await;
        let setup = test.db();
        let world = populate(&setup).await;
        // One user per caller: people log in as themselves.
        let mut users = Vec::new();
        for n in 0..USERS {
            let email = format!(
                "load-{n}-{}@example.test",
                &world.tenant.simple().to_string()[..8]
            );
            users.push((password_user(&setup, world.tenant, &email).await, email));
        }
        let exchanger = create_service(&setup, None, &["authz.check"]).await;
        let checker = create_service(&setup, None, &["authz.check"]).await;
        let admin = create_service(&setup, Some(world.tenant), &["admin.org.write"]).await;
        let (proxy, db) = match bouncer_port {
            None => test.db_behind_proxy_with(&fault_pool()).await,
            Some(port) => {
                let settings = PoolSettings {
                    statement_cache: false,
                    ..fault_pool()
                };
                test.db_behind_proxy_to(("127.0.0.1", port), &settings)
                    .await
            }
        };
        let server = TestServer::start(db).await;
        let channel = server.channel().await;
        let exchanger_token = token_of(&channel, &exchanger).await.access_token;
        let checker_token = token_of(&channel, &checker).await.access_token;
        let admin_token = token_of(&channel, &admin).await.access_token;
        Self {
            capability: format!("test.cap_{}", &world.tenant.simple().to_string()[..12]),
            tenant: world.tenant,
            root: world.root,
            test,
            proxy,
            server,
            channel,
            users,
            exchanger,
            exchanger_token,
            checker_token,
            admin_token,
        }
    }

    /// Starts `workers` concurrent callers and a health watcher.
    pub fn start_load(self: &Arc<Self>, workers: usize) -> Running {
        let started = Instant::now();
        let (stop, stopped) = watch::channel(false);
        let callers = (0..workers)
            .map(|worker| {
                let (rig, stopped) = (self.clone(), stopped.clone());
                tokio::spawn(async move { rig.call_until(worker, started, stopped).await })
            })
            .collect();
        let (rig, stopped) = (self.clone(), stopped.clone());
        let health = tokio::spawn(async move { rig.watch_health(started, stopped).await });
        Running {
            started,
            stop,
            callers,
            health,
        }
    }

    async fn call_until(
        &self,
        worker: usize,
        started: Instant,
        stopped: watch::Receiver<bool>,
    ) -> Vec<Outcome> {
        let mut outcomes = Vec::new();
        let mut carried = Carried {
            caller: worker,
            ..Carried::default()
        };
        let mut n = worker;
        while !*stopped.borrow() {
            let call = match MIX[n % MIX.len()] {
                Call::Refresh if carried.refresh_token.is_none() => Call::Login,
                Call::Revoke if carried.service_session.is_none() => Call::Exchange,
                call => call,
            };
            let key = format!("load-{worker}-{n}");
            let sent = Instant::now();
            let answer = self.call(call, &key, &carried).await;
            let took = sent.elapsed();
            match call {
                // A failed refresh may have rotated the token (committed,
                // answer lost): start a new session rather than present a
                // token that would now count as reused.
                Call::Login | Call::Refresh => {
                    carried.refresh_token =
                        answer.as_ref().ok().and_then(|a| a.refresh_token.clone())
                }
                Call::Exchange => {
                    if let Ok(answer) = &answer {
                        carried.service_session = answer.written;
                    }
                }
                Call::Revoke => carried.service_session = None,
                Call::Check | Call::CreateNode => {}
            }
            let (code, message, written) = match answer {
                Ok(answer) => (Code::Ok, String::new(), answer.written),
                Err(status) => (status.code(), status.message().to_owned(), None),
            };
            outcomes.push(Outcome {
                call,
                at: sent - started,
                took,
                code,
                message,
                written,
                key: (call == Call::CreateNode).then_some(key),
            });
            n += 1;
        }
        outcomes
    }

    /// One call; what it wrote, if it writes.
    pub async fn call(
        &self,
        call: Call,
        key: &str,
        carried: &Carried,
    ) -> Result<Answer, tonic::Status> {
        // Far beyond FAILURE_BOUND: a call that hangs shows as its time.
        let deadline = Duration::from_secs(20);
        let channel = self.channel.clone();
        let id = |text: &str| Answer {
            written: Some(Uuid::parse_str(text).expect("an id")),
            refresh_token: None,
        };
        match call {
            Call::Check => {
                let mut request = bearer(
                    CheckCapabilityRequest {
                        subject: Some(Subject {
                            kind: Some(subject::Kind::User(UserRef {
                                tenant_id: self.tenant.to_string(),
                                user_id: self.users[0].0.to_string(),
                            })),
                        }),
                        capability: self.capability.clone(),
                        org_node_id: self.root.to_string(),
                        explain: false,
                    },
                    &self.checker_token,
                );
                request.set_timeout(deadline);
                AuthorizationClient::new(channel)
                    .check_capability(request)
                    .await
                    .map(|_| Answer::default())
            }
            Call::Exchange => {
                let mut request = tonic::Request::new(ExchangeServiceCredentialRequest {
                    service_key: self.exchanger.key.as_str().to_owned(),
                    secret: self.exchanger.secret.clone(),
                    requested_permissions: Vec::new(),
                });
                request.set_timeout(deadline);
                let answer = ServiceCredentialsClient::new(channel)
                    .exchange_service_credential(request)
                    .await?;
                Ok(id(&answer.into_inner().service_session_id))
            }
            Call::Login => {
                let mut request = tonic::Request::new(password_login(
                    self.tenant,
                    &self.users[carried.caller % USERS].1,
                ));
                request.set_timeout(deadline);
                let answer = AuthenticationClient::new(channel)
                    .authenticate(request)
                    .await?
                    .into_inner();
                Ok(Answer {
                    refresh_token: Some(answer.refresh_token),
                    ..id(&answer.session_id)
                })
            }
            Call::Refresh => {
                let mut request = tonic::Request::new(RefreshSessionRequest {
                    refresh_token: carried.refresh_token.clone().expect("a session to refresh"),
                });
                request.set_timeout(deadline);
                let answer = AuthenticationClient::new(channel)
                    .refresh_session(request)
                    .await?
                    .into_inner();
                Ok(Answer {
                    refresh_token: Some(answer.refresh_token),
                    ..id(&answer.session_id)
                })
            }
            Call::Revoke => {
                let session = carried.service_session.expect("a session to revoke");
                let mut request = bearer(
                    RevokeServiceTokenRequest {
                        target: Some(revoke_service_token_request::Target::ServiceSessionId(
                            session.to_string(),
                        )),
                    },
                    &self.exchanger_token,
                );
                request.set_timeout(deadline);
                ServiceCredentialsClient::new(channel)
                    .revoke_service_token(request)
                    .await?;
                Ok(Answer {
                    written: Some(session),
                    refresh_token: None,
                })
            }
            Call::CreateNode => {
                let mut request = bearer(
                    CreateOrgNodeRequest {
                        tenant_id: self.tenant.to_string(),
                        parent_org_node_id: self.root.to_string(),
                        node_type: "site".into(),
                        label: key.to_owned(),
                        idempotency_key: key.to_owned(),
                        dry_run: false,
                    },
                    &self.admin_token,
                );
                request.set_timeout(deadline);
                let answer = AdministrationClient::new(channel)
                    .create_org_node(request)
                    .await?;
                Ok(id(&answer.into_inner().org_node_id))
            }
        }
    }

    async fn watch_health(
        &self,
        started: Instant,
        stopped: watch::Receiver<bool>,
    ) -> Vec<HealthSample> {
        let mut samples = Vec::new();
        let mut client = HealthClient::new(self.channel.clone());
        while !*stopped.borrow() {
            let sent = Instant::now();
            let status = client
                .check(HealthCheckRequest {
                    service: String::new(),
                })
                .await
                .map(|answer| answer.into_inner().status);
            samples.push(HealthSample {
                at: sent - started,
                took: sent.elapsed(),
                serving: matches!(status, Ok(s) if s == ServingStatus::Serving as i32),
            });
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        samples
    }

    /// Every acknowledged write's rows are there (its row and its audit
    /// event); every create that failed, sent again with its key, is made
    /// once and only once.
    pub async fn assert_nothing_acknowledged_lost(&self, tally: &Tally) {
        self.assert_acknowledged_kept(tally).await;
        self.assert_failed_creates_made_once_when_retried(tally)
            .await;
    }

    /// Every acknowledged write's rows are there: its row and its audit
    /// event.
    pub async fn assert_acknowledged_kept(&self, tally: &Tally) {
        let mut admin = self.test.superuser().await;
        let acknowledged = |call: Call| -> Vec<Uuid> {
            tally
                .outcomes
                .iter()
                .filter(|o| o.call == call && o.code == Code::Ok)
                .map(|o| o.written.expect("a write's id"))
                .collect()
        };
        // Each write's rows: table, key column, audit action.
        let tables = [
            (
                Call::Exchange,
                "auth.service_sessions",
                "svc_session_id",
                "service.credential_exchanged",
            ),
            (
                Call::Login,
                "auth.refresh_sessions",
                "session_id",
                "auth.login_succeeded",
            ),
            (
                Call::Refresh,
                "auth.refresh_sessions",
                "session_id",
                "auth.session_refreshed",
            ),
            (
                Call::CreateNode,
                "auth.org_nodes",
                "org_node_id",
                "org.node_created",
            ),
            (
                Call::Revoke,
                "auth.token_revocations",
                "session_id",
                "service.token_revoked",
            ),
        ];
        for (call, table, column, action) in tables {
            let calls = acknowledged(call);
            assert!(!calls.is_empty(), "no {call:?} was acknowledged at all");
            // A session is refreshed many times: its rows once, its events
            // at least once per acknowledged refresh.
            let mut ids = calls.clone();
            ids.sort();
            ids.dedup();
            let found: Count = diesel::sql_query(format!(
                "SELECT count(DISTINCT {column}) AS n FROM {table} WHERE {column} = ANY($1)"
            ))
            .bind::<Array<SqlUuid>, _>(&ids)
            .get_result(&mut admin)
            .await
            .unwrap();
            assert_eq!(
                found.n as usize,
                ids.len(),
                "acknowledged {call:?} rows missing"
            );
            let audited: Count = diesel::sql_query(
                "SELECT count(*) AS n FROM audit.audit_events \
                  WHERE action_key = $1 AND entity_id = ANY($2)",
            )
            .bind::<Text, _>(action)
            .bind::<Array<SqlUuid>, _>(&ids)
            .get_result(&mut admin)
            .await
            .unwrap();
            assert!(
                audited.n as usize >= calls.len(),
                "acknowledged {call:?}: {} calls, {} audit events",
                calls.len(),
                audited.n
            );
            println!(
                "kept: {} acknowledged {call:?} with their audit rows",
                calls.len()
            );
        }
    }

    /// Every create that failed, sent again with its key, is made once and
    /// only once; no create is made twice.
    pub async fn assert_failed_creates_made_once_when_retried(&self, tally: &Tally) {
        let mut admin = self.test.superuser().await;
        let failed_creates: Vec<&str> = tally
            .outcomes
            .iter()
            .filter(|o| o.call == Call::CreateNode && o.code != Code::Ok)
            .filter_map(|o| o.key.as_deref())
            .collect();
        for key in &failed_creates {
            let again = self.call(Call::CreateNode, key, &Carried::default()).await;
            assert!(again.is_ok(), "a retried create failed: {again:?}");
        }
        let keys: Vec<String> = tally
            .outcomes
            .iter()
            .filter_map(|o| o.key.clone())
            .collect();
        let duplicated: Count = diesel::sql_query(
            "SELECT count(*) AS n FROM (SELECT node_label FROM auth.org_nodes \
              WHERE node_label = ANY($1) GROUP BY node_label HAVING count(*) > 1) d",
        )
        .bind::<Array<Text>, _>(&keys)
        .get_result(&mut admin)
        .await
        .unwrap();
        assert_eq!(
            duplicated.n, 0,
            "a create retried with its key was made twice"
        );
        let made: Count = diesel::sql_query(
            "SELECT count(DISTINCT node_label) AS n FROM auth.org_nodes WHERE node_label = ANY($1)",
        )
        .bind::<Array<Text>, _>(&keys)
        .get_result(&mut admin)
        .await
        .unwrap();
        assert_eq!(
            made.n as usize,
            keys.len(),
            "a create is missing after its retry"
        );
        println!(
            "retried: {} failed creates, each made once",
            failed_creates.len()
        );
    }
}

pub struct HealthSample {
    pub at: Duration,
    pub took: Duration,
    pub serving: bool,
}

pub struct Running {
    started: Instant,
    stop: watch::Sender<bool>,
    callers: Vec<JoinHandle<Vec<Outcome>>>,
    health: JoinHandle<Vec<HealthSample>>,
}

impl Running {
    /// Time since the load started.
    pub fn now(&self) -> Duration {
        self.started.elapsed()
    }

    pub async fn finish(self) -> Tally {
        self.stop.send_replace(true);
        let mut outcomes = Vec::new();
        for caller in self.callers {
            outcomes.extend(caller.await.expect("a caller panicked"));
        }
        outcomes.sort_by_key(|o| o.at);
        Tally {
            outcomes,
            health: self.health.await.expect("the health watcher panicked"),
        }
    }
}

pub struct Tally {
    pub outcomes: Vec<Outcome>,
    pub health: Vec<HealthSample>,
}

impl Tally {
    /// Fails unless every failed call answered a retryable code, and no
    /// call took longer than `bound`.
    pub fn assert_only_retryable_within(&self, bound: Duration) {
        for o in &self.outcomes {
            assert!(
                matches!(
                    o.code,
                    Code::Ok | Code::Unavailable | Code::DeadlineExceeded | Code::Aborted
                ),
                "{:?} at {:?} answered {:?}: {}",
                o.call,
                o.at,
                o.code,
                o.message
            );
            assert!(
                o.took <= bound,
                "{:?} at {:?} took {:?} ({:?}: {})",
                o.call,
                o.at,
                o.took,
                o.code,
                o.message
            );
        }
    }

    /// Calls answered OK per second, sent within `[from, to)`.
    pub fn ok_rate(&self, from: Duration, to: Duration) -> f64 {
        if to <= from {
            return 0.0;
        }
        let ok = self
            .outcomes
            .iter()
            .filter(|o| o.code == Code::Ok && o.at >= from && o.at < to)
            .count();
        ok as f64 / (to - from).as_secs_f64()
    }

    /// When, after `from`, every kind of call had been answered OK again.
    pub fn all_calls_ok_again_after(&self, from: Duration) -> Option<Duration> {
        CALLS
            .into_iter()
            .map(|call| {
                self.outcomes
                    .iter()
                    .find(|o| o.call == call && o.code == Code::Ok && o.at >= from)
                    .map(|o| o.at + o.took)
            })
            .collect::<Option<Vec<_>>>()
            .and_then(|times| times.into_iter().max())
    }

    /// When health first answered SERVING at or after `from`.
    pub fn serving_again_after(&self, from: Duration) -> Option<Duration> {
        self.health
            .iter()
            .find(|s| s.at >= from && s.serving)
            .map(|s| s.at)
    }

    pub fn not_serving_between(&self, from: Duration, to: Duration) -> bool {
        self.health
            .iter()
            .any(|s| s.at >= from && s.at < to && !s.serving)
    }

    pub fn slowest_health_answer(&self) -> Duration {
        self.health.iter().map(|s| s.took).max().unwrap_or_default()
    }

    /// Counts by call and code, the fault's window and the recovery, on
    /// the test's output (`cargo test -- --nocapture` shows it).
    pub fn report(&self, case: &str, fault: (Duration, Duration)) {
        let mut counts: BTreeMap<(Call, String), usize> = BTreeMap::new();
        for o in &self.outcomes {
            *counts.entry((o.call, format!("{:?}", o.code))).or_default() += 1;
        }
        let before = self.ok_rate(Duration::ZERO, fault.0);
        let after = self.ok_rate(fault.1 + Duration::from_secs(1), self.end());
        println!(
            "{case}: fault {:?}..{:?}; OK/s before {before:.0}, after {after:.0} ({:.2} x); \
             all calls OK again {:?} after; SERVING again {:?} after; health answered within {:?}",
            fault.0,
            fault.1,
            after / before,
            self.all_calls_ok_again_after(fault.1)
                .map(|t| t.saturating_sub(fault.1)),
            self.serving_again_after(fault.1)
                .map(|t| t.saturating_sub(fault.1)),
            self.slowest_health_answer(),
        );
        for ((call, code), n) in counts {
            println!("  {call:?} {code}: {n}");
        }
    }

    fn end(&self) -> Duration {
        self.outcomes.last().map(|o| o.at).unwrap_or_default()
    }
}
