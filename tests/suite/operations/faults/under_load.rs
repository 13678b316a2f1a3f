//! Each fault injected under mixed concurrent load: no call answers
//! anything but OK or a retryable code, none waits past the bound, the
//! service recovers on its own, and every acknowledged write is kept.
//! Counts and recovery times are printed (`-- --nocapture`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use diesel_async::SimpleAsyncConnection;
use tonic::Code;

use super::load::{FAILURE_BOUND, Rig, Tally, fault_pool};
use super::lock;
use crate::support::bouncer::Bouncer;
use crate::support::{APP_ROLE, pgbouncer};

const WORKERS: usize = 8;
const WARM_UP: Duration = Duration::from_millis(1500);
const AFTER: Duration = Duration::from_secs(4);
/// Every kind of call answers OK again within this after the fault ends.
const RECOVERY: Duration = Duration::from_secs(5);
/// Health answers SERVING again within this after the fault ends (the
/// probe runs every 100 ms in tests).
const HEALTH_RECOVERY: Duration = Duration::from_secs(2);

async fn pause(duration: Duration) {
    tokio::time::sleep(duration).await;
}

fn assert_recovered(tally: &Tally, fault_end: Duration) {
    let ok_again = tally
        .all_calls_ok_again_after(fault_end)
        .expect("some kind of call never succeeded again");
    assert!(
        ok_again <= fault_end + RECOVERY,
        "calls succeeded again only {:?} after the fault",
        ok_again - fault_end
    );
    let serving = tally
        .serving_again_after(fault_end)
        .expect("health never answered SERVING again");
    assert!(
        serving <= fault_end + HEALTH_RECOVERY,
        "SERVING again only {:?} after the fault",
        serving - fault_end
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_backend_terminated_under_load_fails_calls_retryably_and_loses_nothing() {
    let rig = Arc::new(Rig::start().await);
    let mut admin = rig.test.superuser().await;
    let load = rig.start_load(WORKERS);
    pause(WARM_UP).await;
    let fault = load.now();
    let terminate = format!(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
          WHERE datname = current_database() AND usename = '{APP_ROLE}'"
    );
    // Twice, as a restart's shutdown and the connections made meanwhile.
    admin.batch_execute(&terminate).await.unwrap();
    pause(Duration::from_millis(200)).await;
    admin.batch_execute(&terminate).await.unwrap();
    let fault = (fault, load.now());
    pause(AFTER).await;
    let tally = load.finish().await;
    tally.report("backends terminated", fault);
    tally.assert_only_retryable_within(FAILURE_BOUND);
    assert_recovered(&tally, fault.1);
    rig.assert_nothing_acknowledged_lost(&tally).await;
}

/// Runs where PgBouncer is installed (the suite's PgBouncer run has it,
/// `PORTCULLIS_TEST_PGBOUNCER`); elsewhere it says it skipped.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_pgbouncer_restarted_under_load_fails_calls_retryably_and_loses_nothing() {
    let test_pg = crate::support::admin_url().await;
    let upstream = (
        test_pg.host_str().unwrap().to_owned(),
        test_pg.port().unwrap_or(5432),
    );
    let Some(mut bouncer) = Bouncer::start((&upstream.0, upstream.1), APP_ROLE).await else {
        assert!(
            pgbouncer().is_none(),
            "the suite runs through PgBouncer but its binary was not found"
        );
        eprintln!("skipped: PgBouncer is not installed");
        return;
    };
    let rig = Arc::new(Rig::start_behind(Some(bouncer.port)).await);
    let load = rig.start_load(WORKERS);
    pause(WARM_UP).await;
    let start = load.now();
    bouncer.restart().await;
    let fault = (start, load.now());
    pause(AFTER).await;
    let tally = load.finish().await;
    tally.report("PgBouncer restarted", fault);
    tally.assert_only_retryable_within(FAILURE_BOUND);
    assert_recovered(&tally, fault.1);
    rig.assert_nothing_acknowledged_lost(&tally).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_cut_database_connection_fails_calls_retryably_and_recovers_when_restored() {
    let rig = Arc::new(Rig::start().await);
    let load = rig.start_load(WORKERS);
    pause(WARM_UP).await;
    let start = load.now();
    rig.proxy.cut();
    pause(Duration::from_secs(2)).await;
    rig.proxy.restore();
    let fault = (start, load.now());
    pause(AFTER).await;
    let tally = load.finish().await;
    tally.report("connection cut", fault);
    tally.assert_only_retryable_within(FAILURE_BOUND);
    assert!(
        tally.not_serving_between(fault.0, fault.1 + Duration::from_millis(200)),
        "health never said NOT_SERVING while the database was cut off"
    );
    assert_recovered(&tally, fault.1);
    rig.assert_nothing_acknowledged_lost(&tally).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_stalled_database_connection_fails_calls_within_the_bound_and_recovers() {
    let rig = Arc::new(Rig::start().await);
    let load = rig.start_load(WORKERS);
    pause(WARM_UP).await;
    let start = load.now();
    // Packets dropped, nothing closed: calls on open connections hear
    // nothing back, and new connections are never answered.
    rig.proxy.stall();
    pause(Duration::from_secs(3)).await;
    rig.proxy.restore();
    let fault = (start, load.now());
    pause(AFTER + Duration::from_secs(2)).await;
    let tally = load.finish().await;
    tally.report("connection stalled", fault);
    tally.assert_only_retryable_within(FAILURE_BOUND);
    assert!(
        tally.not_serving_between(fault.0, fault.1 + Duration::from_millis(200)),
        "health never said NOT_SERVING while the database was silent"
    );
    // Connections stalled before the restore stay silent: the recovery
    // counts from when the last of their calls gave up.
    let last_stalled_call = tally
        .outcomes
        .iter()
        .filter(|o| o.at < fault.1)
        .map(|o| o.at + o.took)
        .max()
        .unwrap_or(fault.1)
        .max(fault.1);
    assert_recovered(&tally, last_stalled_call);
    rig.assert_nothing_acknowledged_lost(&tally).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_pool_filled_by_a_slow_database_answers_the_overflow_unavailable_within_the_acquire_timeout()
 {
    let rig = Arc::new(Rig::start().await);
    let load = rig.start_load(WORKERS);
    pause(WARM_UP).await;
    // Checks and logins read users: with this lock held past the statement
    // timeout they hold every pooled connection until it fires.
    let mut holder = lock(&rig.test, "auth.users").await;
    let start = load.now();
    pause(Duration::from_secs(3)).await;
    holder.batch_execute("ROLLBACK").await.unwrap();
    let fault = (start, load.now());
    pause(AFTER).await;
    let tally = load.finish().await;
    tally.report("pool filled by a lock", fault);
    tally.assert_only_retryable_within(FAILURE_BOUND);
    let acquire = fault_pool().acquire_timeout;
    let during: Vec<_> = tally
        .outcomes
        .iter()
        .filter(|o| o.at < fault.1 && o.at + o.took > fault.0)
        .collect();
    assert!(
        during.iter().any(|o| o.code == Code::Unavailable),
        "no call waited past the pool"
    );
    assert!(
        during.iter().any(|o| o.code == Code::DeadlineExceeded),
        "no statement reached the statement timeout"
    );
    for o in during.iter().filter(|o| o.code == Code::Unavailable) {
        assert!(
            o.took <= acquire + Duration::from_millis(500),
            "{:?} waited {:?} for a connection",
            o.call,
            o.took
        );
    }
    assert!(
        tally.slowest_health_answer() < Duration::from_millis(500),
        "health answered slowly while the pool was full: {:?}",
        tally.slowest_health_answer()
    );
    assert_recovered(&tally, fault.1);
    rig.assert_nothing_acknowledged_lost(&tally).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_server_told_to_stop_under_load_answers_every_call_cleanly_and_returns_within_the_grace()
{
    let mut rig = Rig::start().await;
    let stop = rig.server.take_stop_signal().unwrap();
    let rig = Arc::new(rig);
    let load = rig.start_load(WORKERS);
    // Long enough for every kind of write to be acknowledged before.
    pause(WARM_UP * 2).await;
    let signalled = Instant::now();
    let at = load.now();
    stop.send(()).unwrap();
    let grace = crate::support::server::test_settings().shutdown_grace;
    while !rig.server.has_returned() {
        assert!(
            signalled.elapsed() < grace + Duration::from_secs(1),
            "the server was still running {:?} after the signal",
            signalled.elapsed()
        );
        pause(Duration::from_millis(20)).await;
    }
    let returned = signalled.elapsed();
    pause(Duration::from_millis(500)).await;
    let tally = load.finish().await;
    println!("server stopped: returned {returned:?} after the signal");
    tally.report("server stopped", (at, at + returned));
    // Calls the server had before the signal were answered. Calls sent
    // after it were refused before any work: UNAVAILABLE once nothing
    // listens, or, on the connection the server was closing, tonic's
    // CANCELLED "operation was canceled" (the stream was never accepted;
    // gRPC C-core clients say UNAVAILABLE). Never cut half-way.
    let in_flight = at.saturating_sub(Duration::from_millis(50));
    for o in &tally.outcomes {
        let refused_unsent = o.at >= in_flight
            && (o.code == Code::Unavailable
                || (o.code == Code::Cancelled && o.message == "operation was canceled"));
        assert!(
            o.code == Code::Ok || refused_unsent,
            "{:?} sent at {:?} answered {:?}: {}",
            o.call,
            o.at,
            o.code,
            o.message
        );
    }
    assert!(
        tally
            .outcomes
            .iter()
            .any(|o| o.at > at + returned && o.code == Code::Unavailable),
        "no call was refused after the server returned"
    );
    rig.assert_acknowledged_kept(&tally).await;
}
