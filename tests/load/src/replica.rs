//! `portcullis-load replica`: checks on a primary with a streaming hot
//! standby of the harness's own (under `target/bench-replication/`), against
//! today's path. Each round runs both, alternately (A B, then B A, …), with
//! the same concurrent write stream (credential exchanges, each answering
//! with its consistency token):
//!
//! - A, today's path: no replica configured; checks state nothing, so every
//!   read is the primary's;
//! - B: the standby configured; every check presents the newest write's
//!   token (`at_least_as_fresh`), so it is answered by the standby once it
//!   has replayed that write, or by the primary;
//! - C: the standby configured, checks stating nothing (the server's
//!   default bound): what the standby costs without tokens.
//!
//! It reports B's and C's throughput against A's per round, where B's checks were
//! answered, the staleness they stated, and how long reads waited for the
//! standby (from the server's metrics).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;
use tonic::metadata::{AsciiMetadataValue, MetadataMap};

use super::compare::{Measured, geometric_mean};
use super::dataset::{BENCH_SERVICE_KEY, Profile};
use super::load::{self, LoadConfig, Target};
use super::manifest;
use super::server::ServerUnderTest;
use portcullis::ops::replicated::ReplicatedPair;
use portcullis::proto::v1 as pb;
use portcullis::proto::v1::service_credentials_client::ServiceCredentialsClient;

const PRIMARY_PORT: u16 = 54341;
const STANDBY_PORT: u16 = 54342;
const TOKEN: &str = "x-consistency-token";

pub struct ReplicaConfig {
    pub profile: Profile,
    pub rounds: u32,
    /// Everything of the server but its databases.
    pub server: ServerUnderTest,
    /// The checks each arm is measured with.
    pub load: LoadConfig,
    /// One write (a credential exchange) this often.
    pub write_every: Duration,
    /// Where the pair and its manifest live.
    pub dir: PathBuf,
}

/// The token checks present, and what their answers said.
pub struct Freshness {
    newest_write: RwLock<Option<AsciiMetadataValue>>,
    /// Whether checks present the token (B) or not (A).
    present: bool,
    seen: Mutex<Seen>,
}

struct Seen {
    served_by: BTreeMap<String, u64>,
    /// Stated staleness, in milliseconds.
    staleness: Histogram<u64>,
}

impl Freshness {
    fn new(present: bool) -> Self {
        Self {
            newest_write: RwLock::new(None),
            present,
            seen: Mutex::new(Seen {
                served_by: BTreeMap::new(),
                staleness: Histogram::new(3).unwrap_or_else(|_| unreachable!("3 digits is valid")),
            }),
        }
    }

    /// Adds the newest write's token to a check, in B.
    pub fn attach<T>(&self, request: &mut tonic::Request<T>) {
        if !self.present {
            return;
        }
        let token = self
            .newest_write
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        if let Some(token) = token {
            request.metadata_mut().insert(TOKEN, token);
        }
    }

    /// Records who answered a check and the staleness it stated.
    pub fn observe(&self, metadata: &MetadataMap) {
        let text = |name| metadata.get(name).and_then(|v| v.to_str().ok());
        let mut seen = self
            .seen
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let served_by = text("x-consistency-served-by").unwrap_or("unstated");
        *seen.served_by.entry(served_by.to_owned()).or_default() += 1;
        if let Some(millis) = text("x-consistency-staleness")
            .and_then(|s| s.trim_end_matches("ms").parse::<u64>().ok())
        {
            let _ = seen.staleness.record(millis);
        }
    }
}

#[derive(Debug, Serialize)]
pub struct Round {
    pub a_per_second: f64,
    pub b_per_second: f64,
    pub c_per_second: f64,
    pub b_to_a: f64,
    pub c_to_a: f64,
    pub errors: u64,
}

#[derive(Debug, Serialize)]
pub struct ReplicaReport {
    pub profile: Profile,
    pub concurrency: usize,
    pub write_every_ms: u64,
    pub rounds: Vec<Round>,
    /// The geometric mean of the rounds' B/A, and their range.
    pub b_to_a: f64,
    pub b_to_a_min: f64,
    pub b_to_a_max: f64,
    /// The geometric mean of the rounds' C/A.
    pub c_to_a: f64,
    /// Over every B run: who answered the checks.
    pub b_served_by: BTreeMap<String, u64>,
    /// Over every B run: the staleness the standby's answers stated, ms.
    pub b_staleness_ms: BTreeMap<String, u64>,
    /// Over every B run, from the server's metrics: reads that waited for
    /// the standby, their mean wait, and reads that fell back.
    pub b_reads_waited: u64,
    pub b_mean_wait_ms: f64,
    pub b_fallbacks: BTreeMap<String, u64>,
}

pub async fn run(config: ReplicaConfig) -> anyhow::Result<ReplicaReport> {
    let pair =
        ReplicatedPair::start(&config.dir.join("cluster"), PRIMARY_PORT, STANDBY_PORT).await?;
    let manifests = config.dir.join("manifests");
    // A pair made afresh holds nothing, whatever an earlier manifest says.
    if pair.made_afresh || manifest::read(&manifests, config.profile).is_err() {
        println!(
            "seeding the {} profile on the replicated primary…",
            config.profile.as_str()
        );
        super::seed::seed_profile(
            Some(pair.primary_url().as_str()),
            config.profile,
            &manifests,
        )
        .await?;
    }
    let manifest = manifest::read(&manifests, config.profile)?;
    caught_up(&pair).await?;
    let mut standby = url::Url::parse(&manifest.app_url)?;
    standby
        .set_port(Some(STANDBY_PORT))
        .map_err(|()| anyhow::anyhow!("no port"))?;
    let server = ServerUnderTest {
        app_url: manifest.app_url.clone(),
        ..config.server.clone()
    };
    let mut rounds = Vec::new();
    let b_freshness = Arc::new(Freshness::new(true));
    let (mut waited, mut wait_seconds) = (0u64, 0f64);
    let mut fallbacks: BTreeMap<String, u64> = BTreeMap::new();
    for round in 0..config.rounds {
        // A B C, then B C A, then C A B, …: each arm takes every place.
        let mut order = ['A', 'B', 'C'];
        order.rotate_left(round as usize % 3);
        let mut measured_by = BTreeMap::new();
        for arm in order {
            let (server, freshness) = match arm {
                'A' => (server.clone(), Arc::new(Freshness::new(false))),
                arm => (
                    ServerUnderTest {
                        read_url: Some(standby.to_string()),
                        ..server.clone()
                    },
                    if arm == 'B' {
                        b_freshness.clone()
                    } else {
                        Arc::new(Freshness::new(false))
                    },
                ),
            };
            let (measured, metrics) =
                measure(arm, &config, &server, &manifest.service_secret, freshness).await?;
            println!(
                "round {} {arm}: {:.0} checks/s, p99 {:.2} ms, {} errors",
                round + 1,
                measured.per_second,
                measured.p99_ms,
                measured.errors
            );
            if arm == 'B' {
                waited += counter(&metrics, "portcullis_replica_wait_seconds_count") as u64;
                wait_seconds += counter(&metrics, "portcullis_replica_wait_seconds_sum");
                for reason in ["not_fresh_enough", "none_in_rotation"] {
                    let series =
                        format!("portcullis_replica_fallbacks_total{{reason=\"{reason}\"}}");
                    *fallbacks.entry(reason.into()).or_default() +=
                        counter(&metrics, &series) as u64;
                }
            }
            measured_by.insert(arm, measured);
        }
        let per_second = |arm| {
            measured_by
                .get(&arm)
                .map_or(0.0, |m: &Measured| m.per_second)
        };
        let (a, b, c) = (per_second('A'), per_second('B'), per_second('C'));
        println!("round {}: B/A {:.3}, C/A {:.3}", round + 1, b / a, c / a);
        rounds.push(Round {
            a_per_second: a,
            b_per_second: b,
            c_per_second: c,
            b_to_a: b / a,
            c_to_a: c / a,
            errors: measured_by.values().map(|m| m.errors).sum(),
        });
    }
    let ratios: Vec<f64> = rounds.iter().map(|r| r.b_to_a).collect();
    let c_ratios: Vec<f64> = rounds.iter().map(|r| r.c_to_a).collect();
    let seen = b_freshness
        .seen
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let staleness = [0.5, 0.9, 0.99, 1.0]
        .into_iter()
        .map(|q| {
            (
                format!("p{}", (q * 100.0) as u32),
                seen.staleness.value_at_quantile(q),
            )
        })
        .collect();
    Ok(ReplicaReport {
        profile: config.profile,
        concurrency: config.load.concurrency,
        write_every_ms: config.write_every.as_millis() as u64,
        b_to_a: geometric_mean(&ratios),
        c_to_a: geometric_mean(&c_ratios),
        b_to_a_min: ratios.iter().copied().fold(f64::INFINITY, f64::min),
        b_to_a_max: ratios.iter().copied().fold(f64::NEG_INFINITY, f64::max),
        rounds,
        b_served_by: seen.served_by.clone(),
        b_staleness_ms: staleness,
        b_reads_waited: waited,
        b_mean_wait_ms: if waited == 0 {
            0.0
        } else {
            wait_seconds * 1000.0 / waited as f64
        },
        b_fallbacks: fallbacks,
    })
}

/// One server started afresh, checked under the write stream, its metrics
/// read, stopped.
async fn measure(
    arm: char,
    config: &ReplicaConfig,
    server: &ServerUnderTest,
    service_secret: &str,
    freshness: Arc<Freshness>,
) -> anyhow::Result<(Measured, String)> {
    let (running, channel) = server.start().await?;
    let mut target = Target::prepare_for(server, config.profile.shape(), service_secret).await?;
    target.freshness = Some(freshness.clone());
    let writes = tokio::spawn(write_stream(
        channel,
        service_secret.to_owned(),
        freshness,
        config.write_every,
    ));
    let reports = load::run(&target, &config.load).await;
    writes.abort();
    let metrics = scrape(&server.metrics_listen).await.unwrap_or_default();
    running.stop().await;
    Ok((Measured::of(arm, &reports, config.load.duration), metrics))
}

/// One credential exchange every `every`, its token the newest write's.
async fn write_stream(
    channel: tonic::transport::Channel,
    secret: String,
    freshness: Arc<Freshness>,
    every: Duration,
) {
    let mut ticker = tokio::time::interval(every);
    loop {
        ticker.tick().await;
        let answer = ServiceCredentialsClient::new(channel.clone())
            .exchange_service_credential(pb::ExchangeServiceCredentialRequest {
                service_key: BENCH_SERVICE_KEY.into(),
                secret: secret.clone(),
                requested_permissions: Vec::new(),
            })
            .await;
        if let Some(token) = answer.ok().and_then(|a| a.metadata().get(TOKEN).cloned()) {
            *freshness
                .newest_write
                .write()
                .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(token);
        }
    }
}

/// Waits until the standby has replayed what the primary has written now
/// (a seed writes hundreds of megabytes).
async fn caught_up(pair: &ReplicatedPair) -> anyhow::Result<()> {
    use portcullis::ops::admin::AdminConnection;
    let lsn = |sql: &'static str, url: url::Url| async move {
        let mut admin = AdminConnection::connect(&url).await?;
        let rows = admin.query_strings(sql, &[]).await?;
        anyhow::Ok(rows.into_iter().next().unwrap_or_default())
    };
    let written = lsn(
        "SELECT (pg_current_wal_lsn() - '0/0'::pg_lsn)::text AS value",
        pair.primary_url(),
    )
    .await?;
    let written: f64 = written.parse().unwrap_or_default();
    for _ in 0..600 {
        let replayed = lsn(
            "SELECT coalesce((pg_last_wal_replay_lsn() - '0/0'::pg_lsn)::text, '0') AS value",
            pair.standby_url(),
        )
        .await?;
        if replayed.parse::<f64>().unwrap_or_default() >= written {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    anyhow::bail!("the standby did not catch up with the primary within 5 minutes")
}

async fn scrape(addr: &str) -> Option<String> {
    let client = portcullis::tls::http_client()
        .timeout(Duration::from_secs(2))
        .build()
        .ok()?;
    let response = client
        .get(format!("http://{addr}/metrics"))
        .send()
        .await
        .ok()?;
    response.text().await.ok()
}

/// The value of the series `series` (name and labels, as exported).
fn counter(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or_default()
}

/// Where the harness keeps the pair and its manifest.
pub fn dir(bench_dir: &Path) -> PathBuf {
    bench_dir.join("replica")
}
