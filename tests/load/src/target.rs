//! The load's target: the server's channels, the bench service's and the
//! users' tokens (renewed before they expire), and one request per
//! scenario.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::Rng;
use rand::rngs::SmallRng;
use tonic::transport::Channel;

use super::dataset::{self, BENCH_SERVICE_KEY, Shape};
use super::forward_auth::ForwardAuthTarget;
use super::load::{BATCH, Scenario};
use super::replica::Freshness;
use super::server::ServerUnderTest;
use portcullis::proto::v1 as pb;
use portcullis::proto::v1::authentication_client::AuthenticationClient;
use portcullis::proto::v1::authorization_client::AuthorizationClient;
use portcullis::proto::v1::service_credentials_client::ServiceCredentialsClient;

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
    /// For the replica comparison: the token checks present, and what
    /// their answers said.
    pub freshness: Option<Arc<Freshness>>,
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
            freshness: None,
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
        let users_renew_at = match &mut self.forward_auth {
            Some(forward_auth) => Some(
                forward_auth
                    .renew_tokens(self.channel.clone(), self.shape)
                    .await?,
            ),
            None => None,
        };
        let (authorization, service_renew_at) =
            Self::service_authorization(&self.channel, &self.service_secret).await?;
        self.authorization = authorization;
        self.renew_tokens_at =
            users_renew_at.map_or(service_renew_at, |at| at.min(service_renew_at));
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
    pub async fn channels(&self, wanted: usize) -> Vec<Channel> {
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

    pub async fn call(&self, scenario: Scenario, rng: &mut SmallRng) -> Result<(), tonic::Status> {
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
                let mut request = self.bearer(pb::CheckCapabilityRequest {
                    subject: Some(user),
                    capability: check.capability,
                    org_node_id: check.org_node_id,
                    explain: false,
                });
                if let Some(freshness) = &self.freshness {
                    freshness.attach(&mut request);
                }
                let answer = AuthorizationClient::new(self.channel.clone())
                    .check_capability(request)
                    .await?;
                if let Some(freshness) = &self.freshness {
                    freshness.observe(answer.metadata());
                }
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
