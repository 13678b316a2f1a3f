//! `portcullis-load compare`: two server builds, A and B, measured under the
//! same load in alternation (A B, then B A, …), so the machine's drift
//! falls on both alike. Reports each round's throughput and B's ratio to A.

use std::path::PathBuf;
use std::time::Duration;

use serde::Serialize;

use super::dataset::Shape;
use super::load::{self, LoadConfig, Scenario, ScenarioReport, Target};
use super::server::ServerUnderTest;

pub struct CompareConfig {
    pub a: PathBuf,
    pub b: PathBuf,
    pub rounds: u32,
    /// Everything of the server but its binary.
    pub server: ServerUnderTest,
    pub shape: Shape,
    pub service_secret: String,
    pub concurrency: usize,
    pub connections: usize,
    pub warmup: Duration,
    pub duration: Duration,
    pub mix: Vec<(Scenario, u32)>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Measured {
    pub build: char,
    pub per_second: f64,
    pub p99_ms: f64,
    pub errors: u64,
}

impl Measured {
    /// One measurement of `build`: every scenario's requests over `duration`.
    pub fn of(build: char, reports: &[ScenarioReport], duration: Duration) -> Self {
        let requests: u64 = reports.iter().map(|r| r.requests).sum();
        Self {
            build,
            per_second: requests as f64 / duration.as_secs_f64(),
            p99_ms: reports.iter().map(|r| r.p99_ms).fold(0.0, f64::max),
            errors: reports.iter().map(|r| r.errors).sum(),
        }
    }
}

/// The geometric mean of ratios (1 for none).
pub fn geometric_mean(ratios: &[f64]) -> f64 {
    (ratios.iter().map(|r| r.ln()).sum::<f64>() / ratios.len().max(1) as f64).exp()
}

#[derive(Clone, Debug, Serialize)]
pub struct Round {
    pub a: Measured,
    pub b: Measured,
    pub b_to_a: f64,
}

#[derive(Clone, Debug, Serialize)]
pub struct Comparison {
    pub a: PathBuf,
    pub b: PathBuf,
    pub rounds: Vec<Round>,
    /// The geometric mean of the rounds' ratios, and their range.
    pub b_to_a: f64,
    pub b_to_a_min: f64,
    pub b_to_a_max: f64,
}

pub async fn compare(config: &CompareConfig) -> anyhow::Result<Comparison> {
    let mut rounds = Vec::new();
    for round in 0..config.rounds {
        // A B, B A, A B, …: each build goes first as often as the other.
        let order = if round % 2 == 0 {
            ['A', 'B']
        } else {
            ['B', 'A']
        };
        let mut a = None;
        let mut b = None;
        for build in order {
            let measured = measure(config, build).await?;
            println!(
                "round {} build {build}: {:.0} req/s, p99 {:.2} ms, {} errors",
                round + 1,
                measured.per_second,
                measured.p99_ms,
                measured.errors
            );
            if build == 'A' {
                a = Some(measured);
            } else {
                b = Some(measured);
            }
        }
        if let (Some(a), Some(b)) = (a, b) {
            let b_to_a = b.per_second / a.per_second;
            println!("round {}: B/A {b_to_a:.3}", round + 1);
            rounds.push(Round { a, b, b_to_a });
        }
    }
    let ratios: Vec<f64> = rounds.iter().map(|r| r.b_to_a).collect();
    let geometric = geometric_mean(&ratios);
    Ok(Comparison {
        a: config.a.clone(),
        b: config.b.clone(),
        b_to_a: geometric,
        b_to_a_min: ratios.iter().copied().fold(f64::INFINITY, f64::min),
        b_to_a_max: ratios.iter().copied().fold(f64::NEG_INFINITY, f64::max),
        rounds,
    })
}

/// One build's server started afresh, loaded, stopped.
async fn measure(config: &CompareConfig, build: char) -> anyhow::Result<Measured> {
    let server = ServerUnderTest {
        binary: if build == 'A' {
            config.a.clone()
        } else {
            config.b.clone()
        },
        ..config.server.clone()
    };
    let (running, channel) = server.start().await?;
    drop(channel);
    let target = Target::prepare_for(&server, config.shape, &config.service_secret).await?;
    let reports = load::run(
        &target,
        &LoadConfig {
            concurrency: config.concurrency,
            connections: config.connections,
            warmup: config.warmup,
            duration: config.duration,
            mix: config.mix.clone(),
            probe: None,
        },
    )
    .await;
    running.stop().await;
    Ok(Measured::of(build, &reports, config.duration))
}
