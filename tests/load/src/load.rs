//! `portcullis-load load`: drives a running server with random but valid
//! requests from the bench data set and reports throughput and latency.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;
use tokio::sync::Mutex;

use super::cpu::{CpuCost, CpuProbe};
pub use super::target::Target;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum Scenario {
    /// CheckCapability: a random user, node and capability.
    Check,
    /// CheckCapabilities: 100 random checks for one user.
    Batch,
    /// ListVisibleOrgNodes: the first page of 100 for a user assigned at the root.
    ListFirst,
    /// ListVisibleOrgNodes: a page of 100 deep in the same listing.
    ListDeep,
    /// ListUsersWithCapability: the first page of holders of a random
    /// capability at a random node one level below the root.
    ListUsers,
    /// ExchangeServiceCredential.
    Exchange,
    /// Authenticate with a password.
    Login,
    /// `/forward-auth` over HTTP, as a gateway asks it: a password user's
    /// token, a random node and capability through the bench catalogue.
    ForwardAuth,
}

impl Scenario {
    pub fn name(self) -> &'static str {
        match self {
            Self::Check => "check",
            Self::Batch => "batch",
            Self::ListFirst => "list_first",
            Self::ListDeep => "list_deep",
            Self::ListUsers => "list_users",
            Self::Exchange => "exchange",
            Self::Login => "login",
            Self::ForwardAuth => "forward_auth",
        }
    }

    /// Decisions one request of this kind makes.
    fn decisions(self) -> u64 {
        match self {
            Self::Check | Self::ForwardAuth => 1,
            Self::Batch => BATCH,
            _ => 0,
        }
    }
}

pub const BATCH: u64 = 100;

/// What one scenario did in the measured part of a run.
#[derive(Clone, Debug, Serialize)]
pub struct ScenarioReport {
    pub scenario: Scenario,
    pub concurrency: usize,
    /// HTTP/2 connections the calls in flight shared.
    pub connections: usize,
    pub requests: u64,
    pub errors: u64,
    pub seconds: f64,
    pub per_second: f64,
    pub decisions_per_second: f64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    /// Latency at each of `plots::QUANTILES`, for the plots.
    pub latency_ms: Vec<(f64, f64)>,
    /// Failed requests by gRPC code (or HTTP status), to tell retryable
    /// failures from the rest.
    pub error_codes: BTreeMap<String, u64>,
    /// The first few distinct error messages, to tell what failed.
    pub sample_errors: Vec<String>,
    /// CPU per request over the measured window (all of the run's requests
    /// together when it mixes scenarios).
    pub cpu: Option<CpuCost>,
}

pub struct LoadConfig {
    pub concurrency: usize,
    /// HTTP/2 connections the calls in flight share (at least 1).
    pub connections: usize,
    pub warmup: Duration,
    pub duration: Duration,
    /// Scenarios with weights; each request picks one.
    pub mix: Vec<(Scenario, u32)>,
    /// Samples CPU at the start and end of the measured window.
    pub probe: Option<Arc<CpuProbe>>,
}

#[derive(Default)]
struct Tally {
    histograms: BTreeMap<Scenario, Histogram<u64>>,
    errors: BTreeMap<Scenario, u64>,
    error_codes: BTreeMap<Scenario, BTreeMap<String, u64>>,
    sample_errors: BTreeMap<Scenario, Vec<String>>,
}

/// Microseconds, up to 60 s, 3 significant digits.
#[allow(clippy::expect_used)] // constant bounds, valid by construction
fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid histogram bounds")
}

/// Runs `config` against `target`: `concurrency` workers for warm-up plus
/// duration; only the measured part is reported, per scenario.
pub async fn run(target: &Target, config: &LoadConfig) -> Vec<ScenarioReport> {
    let tally = Arc::new(Mutex::new(Tally::default()));
    let total: u32 = config.mix.iter().map(|(_, w)| *w).sum::<u32>().max(1);
    let started = Instant::now();
    let measure_from = started + config.warmup;
    let end = measure_from + config.duration;
    let sampler = config.probe.clone().map(|probe| {
        tokio::spawn(async move {
            tokio::time::sleep_until(measure_from.into()).await;
            let before = probe.sample().await;
            tokio::time::sleep_until(end.into()).await;
            (before, probe.sample().await)
        })
    });
    // More connections than calls in flight would carry nothing.
    let channels = target
        .channels(config.connections.min(config.concurrency))
        .await;
    let mut workers = Vec::new();
    for worker in 0..config.concurrency {
        let (mut target, tally, mix) = (target.clone(), tally.clone(), config.mix.clone());
        target.channel = channels[worker % channels.len()].clone();
        workers.push(tokio::spawn(async move {
            let mut rng = SmallRng::seed_from_u64(0x5eed + worker as u64);
            let mut local = Tally::default();
            while Instant::now() < end {
                let mut pick = rng.gen_range(0..total);
                let scenario = mix
                    .iter()
                    .find(|(_, weight)| {
                        let hit = pick < *weight;
                        pick = pick.saturating_sub(*weight);
                        hit
                    })
                    .map_or(Scenario::Check, |(s, _)| *s);
                let sent = Instant::now();
                let result = target.call(scenario, &mut rng).await;
                if sent < measure_from {
                    continue;
                }
                let micros = sent.elapsed().as_micros().min(u128::from(u64::MAX)) as u64;
                match result {
                    Ok(()) => {
                        let _ = local
                            .histograms
                            .entry(scenario)
                            .or_insert_with(histogram)
                            .record(micros.max(1));
                    }
                    Err(status) => {
                        *local.errors.entry(scenario).or_default() += 1;
                        *local
                            .error_codes
                            .entry(scenario)
                            .or_default()
                            .entry(format!("{:?}", status.code()))
                            .or_default() += 1;
                        let samples = local.sample_errors.entry(scenario).or_default();
                        let message = format!("{:?}: {}", status.code(), status.message());
                        if samples.len() < 3 && !samples.contains(&message) {
                            samples.push(message);
                        }
                    }
                }
            }
            let mut shared = tally.lock().await;
            for (scenario, histogram) in local.histograms {
                let _ = shared
                    .histograms
                    .entry(scenario)
                    .or_insert_with(self::histogram)
                    .add(&histogram);
            }
            for (scenario, errors) in local.errors {
                *shared.errors.entry(scenario).or_default() += errors;
            }
            for (scenario, codes) in local.error_codes {
                let shared = shared.error_codes.entry(scenario).or_default();
                for (code, n) in codes {
                    *shared.entry(code).or_default() += n;
                }
            }
            for (scenario, samples) in local.sample_errors {
                let shared = shared.sample_errors.entry(scenario).or_default();
                for sample in samples {
                    if !shared.contains(&sample) {
                        shared.push(sample);
                    }
                }
            }
        }));
    }
    for worker in workers {
        let _ = worker.await;
    }
    let samples = match sampler {
        Some(sampler) => sampler.await.ok(),
        None => None,
    };
    let seconds = config.duration.as_secs_f64();
    let tally = tally.lock().await;
    let (mut requests, mut decisions) = (0, 0);
    for (scenario, _) in &config.mix {
        let done = tally.histograms.get(scenario).map_or(0, Histogram::len)
            + tally.errors.get(scenario).copied().unwrap_or_default();
        requests += done;
        decisions += done * scenario.decisions();
    }
    let cpu = samples.and_then(|(before, after)| {
        CpuCost::between(&before, &after, seconds, requests, decisions)
    });
    config
        .mix
        .iter()
        .map(|(scenario, _)| {
            let empty = histogram();
            let h = tally.histograms.get(scenario).unwrap_or(&empty);
            let ms = |q: f64| h.value_at_quantile(q) as f64 / 1000.0;
            let requests = h.len();
            ScenarioReport {
                scenario: *scenario,
                concurrency: config.concurrency,
                connections: channels.len(),
                requests,
                errors: tally.errors.get(scenario).copied().unwrap_or_default(),
                seconds,
                per_second: requests as f64 / seconds,
                decisions_per_second: (requests * scenario.decisions()) as f64 / seconds,
                p50_ms: ms(0.50),
                p90_ms: ms(0.90),
                p99_ms: ms(0.99),
                max_ms: h.max() as f64 / 1000.0,
                latency_ms: crate::plots::QUANTILES
                    .iter()
                    .map(|q| (*q, ms(*q)))
                    .collect(),
                error_codes: tally.error_codes.get(scenario).cloned().unwrap_or_default(),
                sample_errors: tally
                    .sample_errors
                    .get(scenario)
                    .cloned()
                    .unwrap_or_default(),
                cpu: cpu.clone(),
            }
        })
        .collect()
}
