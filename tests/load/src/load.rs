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
use tonic::transport::Channel;

use super::cpu::{CpuCost, CpuProbe};
use super::dataset::{self, BENCH_SERVICE_KEY, Shape};
pub use super::forward_auth::ForwardAuthTarget;
use super::server::ServerUnderTest;
use portcullis::proto::v1 as pb;
use portcullis::proto::v1::authentication_client::AuthenticationClient;
use portcullis::proto::v1::authorization_client::AuthorizationClient;
use portcullis::proto::v1::service_credentials_client::ServiceCredentialsClient;

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

const BATCH: u64 = 100;

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

/// What the load needs to know of the data set and the server.
#[derive(Clone)]
pub struct Target {
    pub channel: Channel,
    /// Where to open further connections.
    pub endpoint: Option<tonic::transport::Endpoint>,
    pub shape: Shape,
    pub service_secret: String,
    /// A page token deep in the root user's listing, per tenant.
    pub deep_tokens: Arc<Vec<String>>,
    /// `Bearer <the service's token>`, built once: parsing it per request
    /// was the load client's own cost, not the server's.
    authorization: tonic::metadata::AsciiMetadataValue,
    /// When half the shortest-lived token's life is gone.
    renew_tokens_at: Instant,
    /// The forward-auth endpoint and the users' tokens, when measured.
    forward_auth: Option<ForwardAuthTarget>,
}

#[derive(Default)]
struct Tally {
    histograms: BTreeMap<Scenario, Histogram<u64>>,
    errors: BTreeMap<Scenario, u64>,
    error_codes: BTreeMap<Scenario, BTreeMap<String, u64>>,
    sample_errors: BTreeMap<Scenario, Vec<String>>,
}

/// When a token just received should be renewed: once half of what is
/// left of its life, by its `expires_at`, has gone by.
pub fn renew_by(expires_at: Option<&prost_types::Timestamp>) -> Instant {
    let left = expires_at
        .and_then(|at| {
            let expires = std::time::UNIX_EPOCH
                + Duration::new(
                    u64::try_from(at.seconds).ok()?,
                    u32::try_from(at.nanos).ok()?,
                );
            expires.duration_since(std::time::SystemTime::now()).ok()
        })
        .unwrap_or_default();
    Instant::now() + left / 2
}

/// Microseconds, up to 60 s, 3 significant digits.
#[allow(clippy::expect_used)] // constant bounds, valid by construction
fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid histogram bounds")
}

impl Target {
    /// Exchanges the bench service's secret and finds a deep page token in
    /// each tenant's root-user listing.
    pub async fn prepare(
        endpoint: tonic::transport::Endpoint,
        shape: Shape,
        service_secret: String,
    ) -> Result<Self, tonic::Status> {
        let channel = endpoint
            .connect()
            .await
            .map_err(|e| tonic::Status::unavailable(format!("cannot connect: {e}")))?;
        let (authorization, renew_tokens_at) =
            Self::service_authorization(&channel, &service_secret).await?;
        let mut target = Self {
            channel,
            endpoint: Some(endpoint),
            shape,
            service_secret,
            deep_tokens: Arc::new(Vec::new()),
            authorization,
            renew_tokens_at,
            forward_auth: None,
        };
        let mut deep = Vec::new();
        for tenant in 0..shape.tenants {
            deep.push(target.deep_token(tenant).await?);
        }
        target.deep_tokens = Arc::new(deep);
        Ok(target)
    }

    /// `Bearer <a fresh token of the bench service>`, and when to renew it.
    async fn service_authorization(
        channel: &Channel,
        service_secret: &str,
    ) -> Result<(tonic::metadata::AsciiMetadataValue, Instant), tonic::Status> {
        let exchanged = ServiceCredentialsClient::new(channel.clone())
            .exchange_service_credential(pb::ExchangeServiceCredentialRequest {
                service_key: BENCH_SERVICE_KEY.into(),
                secret: service_secret.to_owned(),
                requested_permissions: Vec::new(),
            })
            .await?
            .into_inner();
        let header = format!("Bearer {}", exchanged.access_token)
            .parse()
            .map_err(|_| tonic::Status::internal("the issued token is not a header value"))?;
        Ok((header, renew_by(exchanged.expires_at.as_ref())))
    }

    /// New tokens for forward-auth's users and for the service once half of
    /// the first one's life is gone: a load held longer than a token lives
    /// (10 minutes for a service's, 15 for a user's, by default) calls this
    /// between its windows.
    pub async fn renew_tokens_if_due(&mut self) -> anyhow::Result<()> {
        if Instant::now() < self.renew_tokens_at {
            return Ok(());
        }
        let mut renew_at = Instant::now() + Duration::from_secs(24 * 3600);
        if let Some(forward_auth) = &mut self.forward_auth {
            renew_at = forward_auth
                .renew_tokens(self.channel.clone(), self.shape)
                .await?;
        }
        let (authorization, service_renew_at) =
            Self::service_authorization(&self.channel, &self.service_secret).await?;
        self.authorization = authorization;
        self.renew_tokens_at = renew_at.min(service_renew_at);
        Ok(())
    }

    /// The target of a server this harness started: its gRPC port and its
    /// `/forward-auth`.
    pub async fn prepare_for(
        server: &ServerUnderTest,
        shape: Shape,
        service_secret: &str,
    ) -> anyhow::Result<Self> {
        let endpoint = Channel::from_shared(format!("http://{}", server.listen))?;
        let mut target = Self::prepare(endpoint, shape, service_secret.to_owned()).await?;
        target.add_forward_auth(&server.forward_auth_listen).await?;
        Ok(target)
    }

    /// Measures `/forward-auth` at `http` too, with every user logged in.
    pub async fn add_forward_auth(&mut self, http: &str) -> anyhow::Result<()> {
        let (forward_auth, renew_at) =
            ForwardAuthTarget::prepare(self.channel.clone(), http, self.shape).await?;
        self.forward_auth = Some(forward_auth);
        self.renew_tokens_at = self.renew_tokens_at.min(renew_at);
        Ok(())
    }

    /// `wanted` connections (at least one) for the calls in flight to
    /// share, the first the one already open. A gRPC client's channel
    /// multiplexes its calls over one HTTP/2 connection; both ends then
    /// read and write several calls' frames per system call, where a
    /// connection per call pays a `read` and a `write` each. A connection
    /// that cannot be opened is left out, with a warning.
    async fn channels(&self, wanted: usize) -> Vec<Channel> {
        let mut channels = vec![self.channel.clone()];
        if let Some(endpoint) = &self.endpoint {
            while channels.len() < wanted {
                match endpoint.connect().await {
                    Ok(channel) => channels.push(channel),
                    Err(error) => {
                        tracing::warn!(%error, opened = channels.len(), wanted, "cannot open another connection");
                        break;
                    }
                }
            }
        }
        channels
    }

    /// The page token after the first half of the root user's listing.
    async fn deep_token(&self, tenant: u32) -> Result<String, tonic::Status> {
        let mut token = String::new();
        let mut seen = 0u32;
        let half = self.shape.nodes_per_tenant / 2;
        while seen < half {
            let page = AuthorizationClient::new(self.channel.clone())
                .list_visible_org_nodes(self.bearer(list_request(tenant, 1000, token.clone())))
                .await?
                .into_inner();
            seen += page.nodes.len() as u32;
            if page.next_page_token.is_empty() {
                break;
            }
            token = page.next_page_token;
        }
        Ok(token)
    }

    fn bearer<T>(&self, body: T) -> tonic::Request<T> {
        let mut request = tonic::Request::new(body);
        request
            .metadata_mut()
            .insert("authorization", self.authorization.clone());
        request
    }

    async fn call(&self, scenario: Scenario, rng: &mut SmallRng) -> Result<(), tonic::Status> {
        let shape = self.shape;
        let tenant = rng.gen_range(0..shape.tenants);
        let random_check = |rng: &mut SmallRng| pb::CapabilityCheck {
            capability: dataset::capability_key(rng.gen_range(0..shape.capabilities)),
            org_node_id: dataset::node_id(tenant, rng.gen_range(0..shape.nodes_per_tenant))
                .to_string(),
        };
        let user = subject(tenant, rng.gen_range(0..shape.users_per_tenant));
        match scenario {
            Scenario::Check => {
                let check = random_check(rng);
                AuthorizationClient::new(self.channel.clone())
                    .check_capability(self.bearer(pb::CheckCapabilityRequest {
                        subject: Some(user),
                        capability: check.capability,
                        org_node_id: check.org_node_id,
                        explain: false,
                    }))
                    .await?;
            }
            Scenario::Batch => {
                let checks = (0..BATCH).map(|_| random_check(rng)).collect();
                AuthorizationClient::new(self.channel.clone())
                    .check_capabilities(self.bearer(pb::CheckCapabilitiesRequest {
                        subject: Some(user),
                        checks,
                        explain: false,
                    }))
                    .await?;
            }
            Scenario::ListFirst | Scenario::ListDeep => {
                let token = match scenario {
                    Scenario::ListDeep => self
                        .deep_tokens
                        .get(tenant as usize)
                        .cloned()
                        .unwrap_or_default(),
                    _ => String::new(),
                };
                AuthorizationClient::new(self.channel.clone())
                    .list_visible_org_nodes(self.bearer(list_request(tenant, 100, token)))
                    .await?;
            }
            Scenario::ListUsers => {
                // Nodes 1..=10 are the root's children (a parent is (i - 1) / 10).
                let node = rng.gen_range(1..=10u32.min(shape.nodes_per_tenant - 1));
                AuthorizationClient::new(self.channel.clone())
                    .list_users_with_capability(self.bearer(pb::ListUsersWithCapabilityRequest {
                        tenant_id: dataset::tenant_id(tenant).to_string(),
                        capability: dataset::capability_key(rng.gen_range(0..shape.capabilities)),
                        org_node_id: dataset::node_id(tenant, node).to_string(),
                        page_size: 100,
                        page_token: String::new(),
                    }))
                    .await?;
            }
            Scenario::Exchange => {
                ServiceCredentialsClient::new(self.channel.clone())
                    .exchange_service_credential(pb::ExchangeServiceCredentialRequest {
                        service_key: BENCH_SERVICE_KEY.into(),
                        secret: self.service_secret.clone(),
                        requested_permissions: Vec::new(),
                    })
                    .await?;
            }
            Scenario::Login => {
                let user = rng.gen_range(0..shape.password_users_per_tenant.max(1));
                AuthenticationClient::new(self.channel.clone())
                    .authenticate(dataset::password_login(tenant, user))
                    .await?;
            }
            Scenario::ForwardAuth => {
                let target = self.forward_auth.as_ref().ok_or_else(|| {
                    tonic::Status::failed_precondition("forward-auth is not being measured")
                })?;
                target.ask(shape, tenant, rng).await?;
            }
        }
        Ok(())
    }
}

fn subject(tenant: u32, user: u32) -> pb::Subject {
    pb::Subject {
        kind: Some(pb::subject::Kind::User(pb::UserRef {
            tenant_id: dataset::tenant_id(tenant).to_string(),
            user_id: dataset::user_id(tenant, user).to_string(),
        })),
    }
}

fn list_request(tenant: u32, page_size: u32, page_token: String) -> pb::ListVisibleOrgNodesRequest {
    pb::ListVisibleOrgNodesRequest {
        subject: Some(subject(tenant, 0)),
        page_size,
        page_token,
        ..Default::default()
    }
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
