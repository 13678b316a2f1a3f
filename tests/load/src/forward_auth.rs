//! The forward-auth scenario: `/forward-auth` asked as nginx's
//! `auth_request` asks it, with the bench users' own tokens, decided
//! through a bench catalogue of one route per capability
//! (`GET /bench/cap_<n>/nodes/{node_id}` needs `bench.cap_<n>`), so a
//! request is the same decision as a random `CheckCapability`.

use std::sync::Arc;
use std::time::Instant;

use rand::Rng;
use rand::rngs::SmallRng;
use tonic::transport::Channel;

use super::dataset::{self, Shape};
use super::target::renew_by;
use portcullis::ops::admin::{AdminConnection, OperatorError};
use portcullis::proto::v1::authentication_client::AuthenticationClient;

/// The catalogue's service for the bench routes.
pub const SERVICE: &str = "bench";

/// Writes the bench catalogue into the profile's database (idempotent);
/// `db` is the database owner's or a superuser's connection.
pub async fn seed_catalogue(db: &mut AdminConnection, shape: Shape) -> Result<(), OperatorError> {
    db.execute(
        "writing the bench endpoint catalogue",
        &format!(
            "INSERT INTO auth.endpoint_policy (endpoint_id, service_key, method_code, route_pattern,
                                               capability, node_source_code, node_source_name)
             SELECT md5('bench/endpoint/' || c)::uuid, '{SERVICE}', 'GET',
                    '/bench/cap_' || c || '/nodes/{{node_id}}', 'bench.cap_' || c, 'path', 'node_id'
               FROM generate_series(0, {last}) c
             ON CONFLICT DO NOTHING",
            last = shape.capabilities - 1
        ),
    )
    .await
}

/// An access token per password user, per tenant, and when the first of
/// them should be renewed.
async fn log_in_everyone(
    channel: Channel,
    shape: Shape,
) -> anyhow::Result<(Vec<Vec<String>>, Instant)> {
    let mut tokens = Vec::new();
    let mut renew_at: Option<Instant> = None;
    for tenant in 0..shape.tenants {
        let mut of_tenant = Vec::new();
        for user in 0..shape.password_users_per_tenant {
            let answer = AuthenticationClient::new(channel.clone())
                .authenticate(dataset::password_login(tenant, user))
                .await?
                .into_inner();
            let this = renew_by(answer.access_expires_at.as_ref());
            renew_at = Some(renew_at.map_or(this, |at| at.min(this)));
            of_tenant.push(answer.access_token);
        }
        tokens.push(of_tenant);
    }
    Ok((tokens, renew_at.unwrap_or_else(Instant::now)))
}

/// Where to ask, and a token per password user of each tenant.
#[derive(Clone)]
pub struct ForwardAuthTarget {
    url: String,
    client: reqwest::Client,
    tokens: Arc<Vec<Vec<String>>>,
}

impl ForwardAuthTarget {
    /// Logs in every password user of the data set (their tokens are what
    /// a gateway would forward).
    /// Also says when the first token should be renewed.
    pub async fn prepare(
        channel: Channel,
        http: &str,
        shape: Shape,
    ) -> anyhow::Result<(Self, Instant)> {
        let (tokens, renew_at) = log_in_everyone(channel, shape).await?;
        let target = Self {
            url: format!("http://{http}/forward-auth"),
            client: portcullis::tls::http_client()
                .pool_max_idle_per_host(64)
                .build()?,
            tokens: Arc::new(tokens),
        };
        Ok((target, renew_at))
    }

    /// Logs every user in again; says when to renew the new tokens.
    pub async fn renew_tokens(
        &mut self,
        channel: Channel,
        shape: Shape,
    ) -> anyhow::Result<Instant> {
        let (tokens, renew_at) = log_in_everyone(channel, shape).await?;
        self.tokens = Arc::new(tokens);
        Ok(renew_at)
    }

    /// One decision; a 200 or a 403 for a capability the user lacks is an
    /// answer, anything else (401, 5xx, a route not found) an error.
    pub async fn ask(
        &self,
        shape: Shape,
        tenant: u32,
        rng: &mut SmallRng,
    ) -> Result<(), tonic::Status> {
        let token = self
            .tokens
            .get(tenant as usize)
            .and_then(|users| users.get(rng.gen_range(0..users.len().max(1))))
            .ok_or_else(|| tonic::Status::failed_precondition("no user token for the tenant"))?;
        let capability = rng.gen_range(0..shape.capabilities);
        let node = dataset::node_id(tenant, rng.gen_range(0..shape.nodes_per_tenant));
        let response = self
            .client
            .get(&self.url)
            .bearer_auth(token)
            .header("x-auth-service", SERVICE)
            .header("x-original-method", "GET")
            .header(
                "x-original-uri",
                format!("/bench/cap_{capability}/nodes/{node}"),
            )
            .send()
            .await
            .map_err(|e| tonic::Status::unavailable(e.to_string()))?;
        let status = response.status().as_u16();
        if status == 200 {
            return Ok(());
        }
        let body = response.text().await.unwrap_or_default();
        if status == 403 && body.contains("no_matching_assignment") {
            return Ok(());
        }
        Err(tonic::Status::unknown(format!("HTTP {status}: {body}")))
    }
}
