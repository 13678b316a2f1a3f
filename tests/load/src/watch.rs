//! `portcullis-load watch`: the change stream's delivery lag and the memory
//! a stalled consumer costs, against a running server. One consumer reads
//! the stream; the harness makes changes at a steady rate (renames of one
//! org node); each change's lag is the time from its commit (`committed_at`,
//! the database's clock at COMMIT) to its arrival here (the same host's
//! clock). Alongside, a second consumer opens the stream on a connection
//! with small HTTP/2 windows and never reads: the server's resident memory
//! is sampled before, during and after.

use std::time::{Duration, Instant};

use anyhow::Context;
use portcullis::proto::v1::administration_client::AdministrationClient;
use portcullis::proto::v1::changes_client::ChangesClient;
use portcullis::proto::v1::service_credentials_client::ServiceCredentialsClient;
use portcullis::proto::v1::{
    ExchangeServiceCredentialRequest, RenameOrgNodeRequest, WatchRequest, watch_response,
};
use tonic::Request;
use tonic::transport::{Channel, Endpoint};

#[derive(Debug, clap::Args)]
pub struct WatchArgs {
    /// The server to drive.
    #[arg(long, default_value = "127.0.0.1:50051")]
    addr: String,
    /// The server the consumers follow [default: --addr]; another one
    /// shows the lag of a change committed through another server (found
    /// by polling, every --watch-poll).
    #[arg(long)]
    watch_addr: Option<String>,
    /// A service with authz.watch and admin.org.write in the tenant.
    #[arg(long, default_value = "demo-gateway")]
    service_key: String,
    #[arg(long, env = "PORTCULLIS_LOAD_SECRET", hide_env_values = true)]
    secret: String,
    #[arg(long)]
    tenant: String,
    /// The org node renamed for each change.
    #[arg(long)]
    node: String,
    /// How many changes.
    #[arg(long, default_value_t = 2000)]
    changes: u32,
    /// One change this often.
    #[arg(long, default_value = "10ms")]
    every: humantime::Duration,
    /// The followed server's process, for its resident memory.
    #[arg(long)]
    server_pid: Option<u32>,
}

fn bearer<T>(body: T, token: &str) -> Request<T> {
    let mut request = Request::new(body);
    if let Ok(value) = format!("Bearer {token}").parse() {
        request.metadata_mut().insert("authorization", value);
    }
    request
}

/// The server's resident memory, in KiB.
fn resident_kib(pid: Option<u32>) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{}/status", pid?)).ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
}

pub async fn run(args: WatchArgs) -> anyhow::Result<()> {
    let endpoint = Endpoint::from_shared(format!("http://{}", args.addr))?;
    let channel = endpoint.connect().await?;
    let token = ServiceCredentialsClient::new(channel.clone())
        .exchange_service_credential(ExchangeServiceCredentialRequest {
            service_key: args.service_key.clone(),
            secret: args.secret.clone(),
            requested_permissions: vec![],
        })
        .await
        .context("exchanging the service's secret")?
        .into_inner()
        .access_token;
    let rss_before = resident_kib(args.server_pid);
    let watched = match &args.watch_addr {
        Some(addr) => Endpoint::from_shared(format!("http://{addr}"))?,
        None => endpoint.clone(),
    };
    let watched_channel = watched.connect().await?;

    // The stalled consumer: its own connection, small windows, never read.
    let stalled_channel: Channel = watched
        .clone()
        .initial_stream_window_size(Some(16 * 1024))
        .initial_connection_window_size(Some(16 * 1024))
        .connect()
        .await?;
    let mut stalled = ChangesClient::new(stalled_channel)
        .watch(bearer(WatchRequest::default(), &token))
        .await?
        .into_inner();

    let mut stream = ChangesClient::new(watched_channel)
        .watch(bearer(WatchRequest::default(), &token))
        .await?
        .into_inner();
    let expected = args.changes as usize;
    let reader = tokio::spawn(async move {
        let mut lags = Vec::with_capacity(expected);
        while lags.len() < expected {
            let Some(message) = stream.message().await? else {
                anyhow::bail!("the stream ended after {} changes", lags.len());
            };
            let arrived = chrono::Utc::now();
            if let Some(watch_response::Event::Change(change)) = message.event
                && let Some(committed) = change.committed_at
            {
                let committed =
                    chrono::DateTime::from_timestamp(committed.seconds, committed.nanos as u32)
                        .context("a commit time")?;
                lags.push((arrived - committed).to_std().unwrap_or_default());
            }
        }
        Ok(lags)
    });

    let mut admin = AdministrationClient::new(channel);
    let mut ticks = tokio::time::interval(args.every.into());
    let mut rss_peak = rss_before;
    let started = Instant::now();
    for i in 0..args.changes {
        ticks.tick().await;
        admin
            .rename_org_node(bearer(
                RenameOrgNodeRequest {
                    tenant_id: args.tenant.clone(),
                    org_node_id: args.node.clone(),
                    label: format!("Watched {i}"),
                    dry_run: false,
                },
                &token,
            ))
            .await?;
        if i % 100 == 0 {
            rss_peak = rss_peak.max(resident_kib(args.server_pid));
        }
    }
    let written = started.elapsed();
    let mut lags = tokio::time::timeout(Duration::from_secs(60), reader)
        .await
        .context("the reader did not get every change within 60 s")???;
    lags.sort();
    let at = |q: f64| lags[((lags.len() as f64 * q) as usize).min(lags.len() - 1)];
    println!(
        "lag commit->arrival over {} changes in {:.1} s: p50 {:.1} ms, p90 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        lags.len(),
        written.as_secs_f64(),
        at(0.50).as_secs_f64() * 1e3,
        at(0.90).as_secs_f64() * 1e3,
        at(0.99).as_secs_f64() * 1e3,
        lags[lags.len() - 1].as_secs_f64() * 1e3,
    );

    // The stalled consumer: what it holds, then how it ended.
    let mut held = 0;
    let ended = loop {
        match tokio::time::timeout(Duration::from_secs(30), stalled.message()).await {
            Ok(Ok(Some(message))) => {
                if matches!(message.event, Some(watch_response::Event::Change(_))) {
                    held += 1;
                }
            }
            Ok(Ok(None)) => break "ended without a status".to_owned(),
            Ok(Err(status)) => break format!("{:?}: {}", status.code(), status.message()),
            Err(_) => break "still open after 30 s of reading".to_owned(),
        }
    };
    let rss_after = resident_kib(args.server_pid);
    println!("stalled consumer: held {held} changes, then {ended}");
    if args.server_pid.is_some() {
        println!(
            "server resident memory: before {} KiB, peak while stalled {} KiB, after {} KiB",
            rss_before.unwrap_or_default(),
            rss_peak.unwrap_or_default(),
            rss_after.unwrap_or_default()
        );
    }
    Ok(())
}
