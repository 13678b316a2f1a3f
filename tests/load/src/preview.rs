//! `portcullis-load preview`: how long what-if previews take on a seeded
//! profile, through a server this harness starts: `PreviewChanges` of one
//! assignment (a random user, role and node of tenant 0, many times), and
//! of a subtree move that 10,000 users' access depends on (every user of
//! tenant 0 is given role 0 at region node 1 for the run; area node 11,
//! under it, is previewed moving under region node 2). The scenario's
//! assignments are removed afterwards; the move is never made.

use std::time::{Duration, Instant};

use anyhow::Context;
use portcullis::db::{Db, PoolSettings};
use portcullis::proto::v1::administration_client::AdministrationClient;
use portcullis::proto::v1::service_credentials_client::ServiceCredentialsClient;
use portcullis::proto::v1::{
    AssignRoleRequest, ExchangeServiceCredentialRequest, MoveOrgNodeRequest, PreviewChangesRequest,
    PreviewSummary, ProposedWrite, proposed_write::Write,
};
use portcullis::service_accounts::names::{Permission, ServiceKey};
use portcullis::service_accounts::{self, NewService, ServiceError};
use rand::{Rng, SeedableRng};
use secrecy::ExposeSecret;
use serde::Serialize;
use tonic::Request;

use super::dataset::{Profile, node_id, tenant_id, user_id};
use super::filtered;
use super::server::ServerUnderTest;

/// The service the previews are asked as: the administration permissions
/// of the writes previewed, bound to tenant 0.
const PREVIEW_SERVICE_KEY: &str = "bench-preview";

pub struct PreviewConfig {
    pub profile: Profile,
    pub server: ServerUnderTest,
    pub admin_url: url::Url,
    /// Previews of one assignment.
    pub samples: u32,
    /// Previews of the move.
    pub moves: u32,
}

#[derive(Debug, Serialize)]
pub struct Timings {
    pub samples: usize,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

#[derive(Debug, Serialize)]
pub struct PreviewReport {
    pub profile: &'static str,
    pub assignment: Timings,
    pub moved_subtree: Timings,
    /// The move's difference: users, losses and gains now, entries.
    pub moved_users: i64,
    pub moved_lost: i64,
    pub moved_gained: i64,
    pub moved_changes: i64,
}

fn timings(mut samples: Vec<Duration>) -> Timings {
    samples.sort();
    let at = |q: f64| {
        let index = ((samples.len() as f64 * q).ceil() as usize).clamp(1, samples.len()) - 1;
        samples[index].as_secs_f64() * 1000.0
    };
    Timings {
        samples: samples.len(),
        p50_ms: at(0.50),
        p90_ms: at(0.90),
        p99_ms: at(0.99),
        max_ms: at(1.0),
    }
}

fn bearer<T>(body: T, token: &str) -> Request<T> {
    let mut request = Request::new(body);
    if let Ok(value) = format!("Bearer {token}").parse() {
        request.metadata_mut().insert("authorization", value);
    }
    request
}

/// md5('bench/role/<tenant>/<index>')::uuid, as the seed names roles.
fn role_id(tenant: u32, role: u32) -> uuid::Uuid {
    use md5::{Digest, Md5};
    uuid::Uuid::from_bytes(Md5::digest(format!("bench/role/{tenant}/{role}").as_bytes()).into())
}

/// The 10,000 assignments of the move scenario, made or removed.
fn scenario_sql(profile: Profile, make: bool) -> String {
    let users = profile.shape().users_per_tenant - 1;
    let id = "md5('bench/preview/0/' || u)::uuid";
    if make {
        format!(
            "INSERT INTO auth.org_assignments (assignment_id, tenant_id, user_id, role_id, org_node_id, start_utc) \
             SELECT {id}, '{t}', md5('bench/user/0/' || u)::uuid, '{role}', '{region}', now() - interval '1 day' \
               FROM generate_series(0, {users}) AS u ON CONFLICT DO NOTHING",
            t = tenant_id(0),
            role = role_id(0, 0),
            region = node_id(0, 1),
        )
    } else {
        format!(
            "DELETE FROM auth.org_assignments WHERE assignment_id IN \
             (SELECT {id} FROM generate_series(0, {users}) AS u)"
        )
    }
}

/// A fresh secret of the preview service, created if need be.
async fn preview_secret(app_url: &str) -> anyhow::Result<String> {
    let db = Db::new(app_url, &PoolSettings::default())?;
    let key = ServiceKey::parse(PREVIEW_SERVICE_KEY).map_err(|e| anyhow::anyhow!("{e}"))?;
    let permissions = ["admin.assignments.write", "admin.org.write"]
        .iter()
        .filter_map(|p| Permission::parse(p).ok())
        .collect();
    let created = service_accounts::create(
        &db,
        &NewService {
            key: key.clone(),
            label: "Benchmark previews".into(),
            tenant_id: Some(tenant_id(0)),
            permissions,
        },
    )
    .await;
    match created {
        Ok(_) | Err(ServiceError::DuplicateKey(_)) => {}
        Err(other) => return Err(other.into()),
    }
    let (_, secret) = service_accounts::issue_secret(&db, &key, true).await?;
    Ok(secret.expose_secret().to_owned())
}

fn previewing(write: Write, token: &str) -> Request<PreviewChangesRequest> {
    bearer(
        PreviewChangesRequest {
            tenant_id: tenant_id(0).to_string(),
            writes: vec![ProposedWrite { write: Some(write) }],
            page_size: 100,
            page_token: String::new(),
        },
        token,
    )
}

pub async fn run(config: PreviewConfig) -> anyhow::Result<PreviewReport> {
    let shape = config.profile.shape();
    let mut superuser = filtered::superuser(&config.admin_url, config.profile).await?;
    superuser
        .execute(
            "making the move scenario",
            &scenario_sql(config.profile, true),
        )
        .await?;
    let secret = preview_secret(&config.server.app_url).await?;
    let (running, channel) = config.server.start().await?;
    let token = ServiceCredentialsClient::new(channel.clone())
        .exchange_service_credential(ExchangeServiceCredentialRequest {
            service_key: PREVIEW_SERVICE_KEY.into(),
            secret,
            requested_permissions: vec![],
        })
        .await
        .context("exchanging the preview service's secret")?
        .into_inner()
        .access_token;
    let mut admin = AdministrationClient::new(channel).max_decoding_message_size(64 << 20);
    let mut rng = rand::rngs::StdRng::seed_from_u64(38);
    let mut assignment = Vec::new();
    for _ in 0..config.samples {
        let write = Write::AssignRole(AssignRoleRequest {
            tenant_id: tenant_id(0).to_string(),
            user_id: user_id(0, rng.gen_range(0..shape.users_per_tenant)).to_string(),
            role_id: role_id(0, rng.gen_range(0..shape.roles_per_tenant)).to_string(),
            org_node_id: node_id(0, rng.gen_range(0..shape.nodes_per_tenant)).to_string(),
            start_utc: None,
            end_utc: None,
            idempotency_key: String::new(),
            dry_run: false,
        });
        let started = Instant::now();
        admin.preview_changes(previewing(write, &token)).await?;
        assignment.push(started.elapsed());
    }
    let mut moved = Vec::new();
    let mut summary = PreviewSummary::default();
    for _ in 0..config.moves {
        let write = Write::MoveOrgNode(MoveOrgNodeRequest {
            tenant_id: tenant_id(0).to_string(),
            org_node_id: node_id(0, 11).to_string(),
            new_parent_org_node_id: node_id(0, 2).to_string(),
            dry_run: false,
        });
        let started = Instant::now();
        let answer = admin.preview_changes(previewing(write, &token)).await?;
        moved.push(started.elapsed());
        summary = answer.into_inner().summary.unwrap_or_default();
    }
    running.stop().await;
    superuser
        .execute(
            "removing the move scenario",
            &scenario_sql(config.profile, false),
        )
        .await?;
    Ok(PreviewReport {
        profile: config.profile.as_str(),
        assignment: timings(assignment),
        moved_subtree: timings(moved),
        moved_users: summary.users,
        moved_lost: summary.lost,
        moved_gained: summary.gained,
        moved_changes: summary.changes,
    })
}
