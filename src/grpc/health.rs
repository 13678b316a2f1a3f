//! gRPC health follows the database: `SERVING` only while it answers.

use std::time::Duration;

use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;

use crate::db::{Db, ReplicaHealth};

/// Services whose health is reported, besides the server as a whole ("").
pub const SERVICE_NAMES: [&str; 4] = [
    "portcullis.v1.Administration",
    "portcullis.v1.Authentication",
    "portcullis.v1.Authorization",
    "portcullis.v1.ServiceCredentials",
];

pub async fn set_all(reporter: &HealthReporter, status: ServingStatus) {
    reporter.set_service_status("", status).await;
    for name in SERVICE_NAMES {
        reporter.set_service_status(name, status).await;
    }
}

/// Health service name of a read replica (`portcullis.replica.replica-1`):
/// `SERVING` while it is in rotation. The server stays `SERVING` without
/// replicas: its reads then go to the primary.
pub fn replica_service_name(replica: &str) -> String {
    format!("portcullis.replica.{replica}")
}

/// Probes the database every `interval` (each probe bounded by the same
/// interval, at least one second) and publishes the result, and each read
/// replica's standing. Runs until the task is aborted.
pub async fn watch_database(db: Db, reporter: HealthReporter, interval: Duration) {
    let probe_timeout = interval.max(Duration::from_secs(1));
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last: Option<ServingStatus> = None;
    let mut replicas_last: Vec<Option<ServingStatus>> = Vec::new();
    loop {
        ticker.tick().await;
        let replicas = db.replica_status();
        replicas_last.resize(replicas.len(), None);
        for (replica, last) in replicas.iter().zip(replicas_last.iter_mut()) {
            let status = if replica.health == ReplicaHealth::InRotation {
                ServingStatus::Serving
            } else {
                ServingStatus::NotServing
            };
            if *last != Some(status) {
                reporter
                    .set_service_status(&replica_service_name(&replica.name), status)
                    .await;
                *last = Some(status);
            }
        }
        let status = match tokio::time::timeout(probe_timeout, db.ping()).await {
            Ok(Ok(())) => ServingStatus::Serving,
            Ok(Err(error)) => {
                if last != Some(ServingStatus::NotServing) {
                    tracing::warn!(%error, "database probe failed; health is NOT_SERVING");
                }
                ServingStatus::NotServing
            }
            Err(_) => {
                if last != Some(ServingStatus::NotServing) {
                    tracing::warn!(
                        ?probe_timeout,
                        "database probe timed out; health is NOT_SERVING"
                    );
                }
                ServingStatus::NotServing
            }
        };
        if last != Some(status) {
            if status == ServingStatus::Serving {
                tracing::info!("database answers; health is SERVING");
            }
            set_all(&reporter, status).await;
            last = Some(status);
        }
    }
}
