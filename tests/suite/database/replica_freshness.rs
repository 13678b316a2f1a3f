//! A property over random interleavings of writes (an assignment ended or
//! made again), replay paused and resumed on the real standby, and reads
//! with random requirements: no answer is older than its requirement. A
//! read presenting a write's token sees that write or later ones; a read
//! bounding its staleness is answered by the primary or by the standby
//! within the bound.

use std::time::{Duration, Instant};

use portcullis::proto::v1::DecisionReason;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

use super::replication::{SERVED_BY, STALENESS, header, setup};
use crate::support::replication::pair;

#[derive(Clone, Debug)]
enum Step {
    /// End the user's assignment, or assign the role again.
    Toggle,
    PauseReplay,
    ResumeReplay,
    /// A check presenting the token of the write this many writes back.
    ReadAtToken(usize),
    /// A check tolerating this many milliseconds of staleness.
    ReadWithin(u64),
    /// A check stating nothing (the server's default, 1 s).
    Read,
    Pause(u64),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        3 => Just(Step::Toggle),
        1 => Just(Step::PauseReplay),
        1 => Just(Step::ResumeReplay),
        3 => (0usize..3).prop_map(Step::ReadAtToken),
        2 => prop::sample::select(vec![20u64, 100, 400, 3_600_000]).prop_map(Step::ReadWithin),
        1 => Just(Step::Read),
        1 => (0u64..150).prop_map(Step::Pause),
    ]
}

#[test]
fn no_answer_is_older_than_its_requirement() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let mut runner = TestRunner::new(Config {
        cases: 6,
        failure_persistence: None,
        ..Config::default()
    });
    runner
        .run(&prop::collection::vec(step(), 4..16), |steps| {
            runtime.block_on(run(steps));
            Ok(())
        })
        .unwrap();
}

async fn run(steps: Vec<Step>) {
    let pair = pair().await;
    let _turn = pair.turn().await;
    let s = setup(pair).await;
    let mut assignment = Some(s.first_assignment().await);
    // Every write's token and whether the user held the role after it.
    let mut writes: Vec<(String, bool)> = Vec::new();
    for step in steps {
        match step {
            Step::Toggle => match assignment.take() {
                Some(id) => writes.push((s.end(&id).await, false)),
                None => {
                    let (id, token) = s.assign().await;
                    assignment = Some(id);
                    writes.push((token, true));
                }
            },
            Step::PauseReplay => pair.set_replay(false).await,
            Step::ResumeReplay => pair.set_replay(true).await,
            Step::ReadAtToken(back) => {
                let Some(index) = writes.len().checked_sub(back + 1) else {
                    continue;
                };
                let (reason, answered) = s
                    .check(&[(super::replication::TOKEN, &writes[index].0)])
                    .await;
                let allowed = reason == DecisionReason::Allowed;
                // The write's own outcome or a later write's: never earlier.
                assert!(
                    writes[index..].iter().any(|(_, held)| *held == allowed),
                    "a check at write {index}'s token saw {reason:?} ({answered:?}); writes: {writes:?}"
                );
            }
            Step::ReadWithin(bound) => {
                let started = Instant::now();
                let (_, answered) = s
                    .check(&[("x-consistency", &format!("max_staleness={bound}ms"))])
                    .await;
                within(&answered, Duration::from_millis(bound), started.elapsed());
            }
            Step::Read => {
                let started = Instant::now();
                let (_, answered) = s.check(&[]).await;
                within(&answered, Duration::from_secs(1), started.elapsed());
            }
            Step::Pause(millis) => tokio::time::sleep(Duration::from_millis(millis)).await,
        }
    }
}

/// The answer came from the primary, or from the standby no staler than
/// `bound` when it was chosen (`call` later at most, when stated).
fn within(answered: &tonic::metadata::MetadataMap, bound: Duration, call: Duration) {
    match header(answered, SERVED_BY).as_deref() {
        Some("primary") => {}
        Some("replica-1") => {
            let stated =
                header(answered, STALENESS).expect("a replica's answer states its staleness");
            let millis: u64 = stated.trim_end_matches("ms").parse().unwrap();
            assert!(
                Duration::from_millis(millis) <= bound + call,
                "answered {stated} stale under a {bound:?} bound"
            );
        }
        other => panic!("answered by {other:?}"),
    }
}
