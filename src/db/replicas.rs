//! Read replicas (hot standbys streaming from the primary) and the routing
//! of reads among them by each request's [`Requirement`].
//!
//! A monitor samples the primary's WAL write position every poll, stamped
//! with the moment the sample was asked for, and each replica's replay
//! position. A replica that has replayed past a sample holds every commit
//! completed before that moment: that moment is what it is *fresh as of*,
//! and the time since is its staleness bound. A replica that does not
//! answer, is not in recovery (promoted) or trails past `max_lag` is out of
//! rotation until it is healthy again. A read goes to a replica in rotation
//! whose replay position and staleness satisfy the request; if none does,
//! it waits up to `wait` for one (the replicas are probed at once while a
//! read waits, not at the next poll), then reads the primary. The positions the
//! monitor saw only ever trail the replicas' real ones, so a replica
//! chosen by them is at least as fresh as required.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

use super::pool::Pool;
use super::{Db, DbError};
use crate::consistency::scope::ReadAt;
use crate::consistency::{Lsn, Requirement};

/// How replicas are used.
#[derive(Clone, Debug)]
pub struct ReplicaSettings {
    /// The requirement of requests that state none.
    pub default: Requirement,
    /// How long a read waits for a replica fresh enough before it reads
    /// the primary.
    pub wait: Duration,
    /// A replica further behind than this is out of rotation.
    pub max_lag: Duration,
    /// How often the primary's position and each replica's are read.
    pub poll: Duration,
}

impl Default for ReplicaSettings {
    fn default() -> Self {
        Self {
            default: Requirement::max_staleness(Duration::from_secs(1)),
            wait: Duration::from_millis(30),
            max_lag: Duration::from_secs(5),
            poll: Duration::from_millis(10),
        }
    }
}

/// Where a replica stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReplicaHealth {
    /// Not yet probed.
    Starting,
    InRotation,
    /// Its probe failed or timed out.
    Down,
    /// Further behind than `max_lag`, or its freshness cannot be shown.
    Lagging,
    /// No longer in recovery: it is not following the primary.
    Promoted,
}

/// One replica, as health and metrics report it.
#[derive(Clone, Debug)]
pub struct ReplicaStatus {
    pub name: Arc<str>,
    pub health: ReplicaHealth,
    /// The staleness bound at its last probe, when it could be shown.
    pub staleness: Option<Duration>,
}

#[derive(Clone, Copy, Debug)]
struct MemberState {
    health: ReplicaHealth,
    replay: Option<Lsn>,
    fresh_as_of: Option<Instant>,
}

pub(super) struct Member {
    name: Arc<str>,
    pub(super) pool: Pool,
    state: Mutex<MemberState>,
    /// A read is waiting for this replica to be fresh enough: probe it
    /// now rather than at the next poll.
    wanted: Notify,
}

/// The replicas of one primary; none when no replica is configured.
pub(super) struct Replicas {
    members: Vec<Member>,
    settings: ReplicaSettings,
    /// Samples of the primary's write position, oldest first.
    clock: Mutex<VecDeque<(Instant, Lsn)>>,
    /// Woken after every probe, for reads waiting for a fresh replica.
    changed: Notify,
    next: AtomicUsize,
    /// `primary`, made once: every read without a replica names it.
    primary: Arc<str>,
}

/// Where a read goes: a member's index, or the primary.
pub(super) struct Route {
    pub(super) member: Option<usize>,
    pub(super) read_at: ReadAt,
}

const PRIMARY: &str = "primary";

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Replicas {
    pub(super) fn new(pools: Vec<Pool>, settings: ReplicaSettings) -> Self {
        let members = pools
            .into_iter()
            .enumerate()
            .map(|(index, pool)| Member {
                name: format!("replica-{}", index + 1).into(),
                pool,
                state: Mutex::new(MemberState {
                    health: ReplicaHealth::Starting,
                    replay: None,
                    fresh_as_of: None,
                }),
                wanted: Notify::new(),
            })
            .collect();
        Self {
            members,
            settings,
            clock: Mutex::new(VecDeque::new()),
            changed: Notify::new(),
            next: AtomicUsize::new(0),
            primary: PRIMARY.into(),
        }
    }

    pub(super) fn member(&self, index: usize) -> &Member {
        &self.members[index]
    }

    pub(super) fn settings(&self) -> &ReplicaSettings {
        &self.settings
    }

    pub(super) fn status(&self) -> Vec<ReplicaStatus> {
        let now = Instant::now();
        self.members
            .iter()
            .map(|member| {
                let state = *lock(&member.state);
                ReplicaStatus {
                    name: member.name.clone(),
                    health: state.health,
                    staleness: state.fresh_as_of.map(|t| now.saturating_duration_since(t)),
                }
            })
            .collect()
    }

    /// The newest sample of the primary's position: a point every read of
    /// the primary from now on is at least as fresh as.
    fn primary_point(&self) -> Option<Lsn> {
        lock(&self.clock).back().map(|(_, lsn)| *lsn)
    }

    /// A member in rotation that satisfies `requirement` now, taking turns.
    fn eligible(&self, requirement: &Requirement, now: Instant) -> Option<(usize, MemberState)> {
        if requirement.fully_consistent || self.members.is_empty() {
            return None;
        }
        let count = self.members.len();
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        (0..count)
            .map(|k| (start + k) % count)
            .map(|index| (index, *lock(&self.members[index].state)))
            .find(|(_, state)| {
                state.health == ReplicaHealth::InRotation
                    && requirement
                        .at_least
                        .is_none_or(|at| state.replay >= Some(at))
                    && requirement.max_staleness.is_none_or(|bound| {
                        state
                            .fresh_as_of
                            .is_some_and(|t| now.saturating_duration_since(t) <= bound)
                    })
            })
    }

    fn in_rotation(&self) -> bool {
        self.members
            .iter()
            .any(|m| lock(&m.state).health == ReplicaHealth::InRotation)
    }

    /// Where a read with `requirement` goes.
    pub(super) async fn route(&self, requirement: Requirement) -> Route {
        let mut found = self.eligible(&requirement, Instant::now());
        if found.is_none() && !requirement.fully_consistent && self.in_rotation() {
            let started = Instant::now();
            let deadline = tokio::time::Instant::from_std(started + self.settings.wait);
            loop {
                let notified = self.changed.notified();
                tokio::pin!(notified);
                notified.as_mut().enable();
                // Readers waiting together share one probe per replica.
                for member in &self.members {
                    member.wanted.notify_one();
                }
                found = self.eligible(&requirement, Instant::now());
                if found.is_some() || tokio::time::timeout_at(deadline, notified).await.is_err() {
                    break;
                }
            }
            metrics::histogram!("portcullis_replica_wait_seconds")
                .record(started.elapsed().as_secs_f64());
        }
        match found {
            Some((index, state)) => {
                let name = self.members[index].name.clone();
                metrics::counter!("portcullis_replica_reads_total", "target" => name.to_string())
                    .increment(1);
                Route {
                    member: Some(index),
                    read_at: ReadAt {
                        served_by: name,
                        at: state.replay,
                        fresh_as_of: state.fresh_as_of,
                    },
                }
            }
            None => {
                // Counted only where there is a choice: without replicas
                // the hot path pays for no metric.
                if !self.members.is_empty() {
                    if !requirement.fully_consistent {
                        let reason = if self.in_rotation() {
                            "not_fresh_enough"
                        } else {
                            "none_in_rotation"
                        };
                        metrics::counter!("portcullis_replica_fallbacks_total", "reason" => reason)
                            .increment(1);
                    }
                    metrics::counter!("portcullis_replica_reads_total", "target" => PRIMARY)
                        .increment(1);
                }
                Route {
                    member: None,
                    read_at: ReadAt {
                        served_by: self.primary.clone(),
                        at: self.primary_point(),
                        fresh_as_of: None,
                    },
                }
            }
        }
    }

    /// Samples the primary and probes every replica, each on its own
    /// cadence, until the task is aborted. Without replicas the primary is
    /// sampled once a second, for the point its answers state.
    pub(super) async fn monitor(self: Arc<Self>, primary: Db) {
        let poll = if self.members.is_empty() {
            Duration::from_secs(1)
        } else {
            self.settings.poll
        };
        let probe_timeout = poll.max(Duration::from_secs(1));
        let replicas = &self;
        let clock = async {
            let mut ticker = ticker(poll);
            loop {
                ticker.tick().await;
                let asked = Instant::now();
                if let Ok(Ok(lsn)) =
                    tokio::time::timeout(probe_timeout, primary.wal_written()).await
                {
                    let mut clock = lock(&replicas.clock);
                    clock.push_back((asked, lsn));
                    // Older samples than max_lag are of no use: a replica
                    // that far behind is out of rotation anyway.
                    while clock.front().is_some_and(|(t, _)| {
                        asked.saturating_duration_since(*t) > replicas.settings.max_lag * 2
                    }) {
                        clock.pop_front();
                    }
                }
            }
        };
        let probes = replicas.members.iter().map(|member| {
            let db = primary.on_pool(member.pool.clone());
            async move {
                let mut ticker = ticker(poll);
                loop {
                    tokio::select! {
                        _ = ticker.tick() => {}
                        () = member.wanted.notified() => {}
                    }
                    let probed = tokio::time::timeout(probe_timeout, db.replay_position())
                        .await
                        .unwrap_or_else(|_| {
                            Err(DbError::Unavailable("the probe timed out".into()))
                        });
                    replicas.record_probe(member, probed);
                    replicas.changed.notify_waiters();
                }
            }
        });
        futures_util::future::join(clock, futures_util::future::join_all(probes)).await;
    }

    fn record_probe(&self, member: &Member, probed: Result<Option<Lsn>, DbError>) {
        let now = Instant::now();
        let replay = probed.as_ref().ok().copied().flatten();
        let fresh_as_of = replay.and_then(|replay| {
            lock(&self.clock)
                .iter()
                .rev()
                .find(|(_, lsn)| *lsn <= replay)
                .map(|(t, _)| *t)
        });
        let health = match &probed {
            Err(_) => ReplicaHealth::Down,
            Ok(None) => ReplicaHealth::Promoted,
            Ok(Some(_)) => match fresh_as_of {
                Some(t) if now.saturating_duration_since(t) <= self.settings.max_lag => {
                    ReplicaHealth::InRotation
                }
                _ => ReplicaHealth::Lagging,
            },
        };
        let mut state = lock(&member.state);
        if state.health != health {
            match (&probed, health) {
                (_, ReplicaHealth::InRotation) => {
                    tracing::info!(replica = %member.name, "replica in rotation");
                }
                (Err(error), _) => {
                    tracing::warn!(replica = %member.name, %error, "replica out of rotation: down");
                }
                _ => {
                    tracing::warn!(replica = %member.name, ?health, "replica out of rotation");
                }
            }
        }
        *state = MemberState {
            health,
            // What a replica replayed never goes back while it follows the
            // same primary; a new probe that failed keeps nothing.
            replay: if health == ReplicaHealth::InRotation {
                replay
            } else {
                None
            },
            fresh_as_of,
        };
        let name = member.name.to_string();
        metrics::gauge!("portcullis_replica_in_rotation", "replica" => name.clone()).set(
            if health == ReplicaHealth::InRotation {
                1.0
            } else {
                0.0
            },
        );
        if let Some(t) = fresh_as_of {
            metrics::gauge!("portcullis_replica_staleness_seconds", "replica" => name)
                .set(now.saturating_duration_since(t).as_secs_f64());
        }
    }
}

fn ticker(period: Duration) -> tokio::time::Interval {
    let mut ticker = tokio::time::interval(period);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticker
}
