//! `portcullis serve`: the gRPC API, and the server flags `dev` shares.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use clap::Args;

use super::common::{DatabaseArgs, HashArgs, ReplicaArgs, database};
use super::gateways::GatewayArgs;
use crate::app::{App, ServerSettings, Settings};
use crate::authn::federation::FederationConfigError;
use crate::authn::{
    AuthnSettings, DevLogDelivery, Federation, OtpDelivery, OutboxDelivery, ThrottlePolicy,
};
use crate::db::Db;
use crate::server;
use crate::tls::{ServerTls, TlsFileError};
use crate::tokens::{KeyRing, RESERVED_CLAIMS, RoleClaim, TokenSettings};

#[derive(Debug, Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub server: ServerArgs,
    /// Directory of Ed25519 signing keys (`ed25519-<time>.pem`, from
    /// `portcullis keys generate`). The newest active key signs; all verify.
    #[arg(long, env = "PORTCULLIS_SIGNING_KEYS_DIR")]
    pub signing_keys_dir: PathBuf,
    #[command(flatten)]
    pub database: DatabaseArgs,
    #[command(flatten)]
    pub replicas: ReplicaArgs,
    #[command(flatten)]
    pub telemetry: TelemetryArgs,
}

/// Where traces go: only commands that serve export them.
#[derive(Debug, Args)]
pub struct TelemetryArgs {
    /// Export traces over OTLP/gRPC to this collector (e.g. http://collector:4317).
    #[arg(long, env = "OTEL_EXPORTER_OTLP_ENDPOINT")]
    pub otlp_endpoint: Option<String>,
    /// Share of new traces exported, 0 to 1 (a caller's `traceparent` decision is followed).
    #[arg(long, env = "PORTCULLIS_TRACE_SAMPLE_RATIO", default_value_t = 1.0, value_parser = parse_ratio)]
    pub trace_sample_ratio: f64,
    /// `deployment.environment` on exported traces.
    #[arg(long, env = "PORTCULLIS_ENVIRONMENT", default_value = "unknown")]
    pub environment: String,
}

#[derive(Debug, Args)]
pub struct ServerArgs {
    /// Address to serve gRPC on.
    #[arg(long, env = "PORTCULLIS_LISTEN", default_value = "127.0.0.1:50051")]
    pub listen: SocketAddr,
    /// Threads serving requests [default: one per core]. Where PostgreSQL
    /// shares the cores, fewer do more (the book: operations/performance.md,
    /// "Tuning").
    #[arg(long, env = "PORTCULLIS_WORKER_THREADS", value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub worker_threads: Option<u16>,
    /// How often the database is probed for gRPC health.
    #[arg(long, env = "PORTCULLIS_HEALTH_INTERVAL", default_value = "2s")]
    pub health_interval: humantime::Duration,
    /// How long in-flight calls may finish after SIGTERM or SIGINT.
    #[arg(long, env = "PORTCULLIS_SHUTDOWN_GRACE", default_value = "30s")]
    pub shutdown_grace: humantime::Duration,
    /// Issuer (`iss`) of the tokens this service signs.
    #[arg(long, env = "PORTCULLIS_TOKEN_ISSUER", default_value = "portcullis")]
    pub token_issuer: String,
    /// Audience (`aud`) of the tokens this service signs and accepts
    /// [default: the issuer]; PostgREST's `jwt-aud`.
    #[arg(long, env = "PORTCULLIS_TOKEN_AUDIENCE")]
    pub token_audience: Option<String>,
    /// The claim naming the database role PostgREST switches to (its
    /// `jwt-role-claim-key`); empty for none.
    #[arg(long, env = "PORTCULLIS_TOKEN_ROLE_CLAIM", default_value = "role", value_parser = parse_role_claim)]
    pub token_role_claim: String,
    /// The role claim of user tokens.
    #[arg(long, env = "PORTCULLIS_TOKEN_USER_ROLE", default_value = "api_user")]
    pub token_user_role: String,
    /// The role claim of service tokens: this prefix and the service key.
    #[arg(
        long,
        env = "PORTCULLIS_TOKEN_SERVICE_ROLE_PREFIX",
        default_value = "api_service_"
    )]
    pub token_service_role_prefix: String,
    /// Clock skew tolerated when checking a token's `exp` and `nbf` (at
    /// most 5m: revoked sessions are listed that long past their expiry).
    #[arg(long, env = "PORTCULLIS_TOKEN_LEEWAY", default_value = "30s", value_parser = parse_leeway)]
    pub token_leeway: humantime::Duration,
    /// Lifetime of service tokens issued by ExchangeServiceCredential.
    #[arg(long, env = "PORTCULLIS_SERVICE_TOKEN_LIFETIME", default_value = "10m")]
    pub service_token_lifetime: humantime::Duration,
    /// How often each replica refreshes its list of revoked sessions. A
    /// revoked token is refused everywhere within this plus the query time,
    /// and never later than 5 seconds: a replica whose list is older
    /// refuses tokens until it catches up.
    #[arg(
        long,
        env = "PORTCULLIS_REVOCATION_POLL_INTERVAL",
        default_value = "1s"
    )]
    pub revocation_poll_interval: humantime::Duration,
    /// Most checks one CheckCapabilities call may carry.
    #[arg(long, env = "PORTCULLIS_MAX_BATCH_CHECKS", default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub max_batch_checks: u32,
    /// Serve Prometheus metrics (GET /metrics) on this address [default:
    /// off for serve, 127.0.0.1:9464 for dev].
    #[arg(long, env = "PORTCULLIS_METRICS_LISTEN")]
    pub metrics_listen: Option<SocketAddr>,
    /// Serve gRPC over TLS with this PEM certificate chain (with --tls-key).
    #[arg(long, env = "PORTCULLIS_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert.
    #[arg(long, env = "PORTCULLIS_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Require client certificates issued by this PEM CA (mutual TLS).
    #[arg(
        long,
        env = "PORTCULLIS_TLS_CLIENT_CA",
        requires = "tls_cert",
        required_if_eq("ext_authz_callers", "mtls")
    )]
    pub tls_client_ca: Option<PathBuf>,
    #[command(flatten)]
    pub gateways: GatewayArgs,
    #[command(flatten)]
    pub authn: AuthnArgs,
    #[command(flatten)]
    pub watch: WatchArgs,
}

/// The change stream (`Watch`).
#[derive(Debug, clap::Args)]
pub struct WatchArgs {
    /// How often Watch looks for changes other servers committed (this
    /// server's own it sees at once).
    #[arg(long, env = "PORTCULLIS_WATCH_POLL", default_value = "20ms")]
    pub watch_poll: humantime::Duration,
    /// A quiet Watch stream gets a checkpoint (a token, no change) this
    /// often.
    #[arg(long, env = "PORTCULLIS_WATCH_CHECKPOINT", default_value = "1s")]
    pub watch_checkpoint: humantime::Duration,
    /// Changes a Watch stream holds for a consumer that is not reading.
    #[arg(long, env = "PORTCULLIS_WATCH_BUFFER", default_value_t = 1024, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub watch_buffer: u32,
    /// How long a Watch stream's buffer may stay full: then the stream
    /// ends with the token to resume from.
    #[arg(long, env = "PORTCULLIS_WATCH_STALL", default_value = "10s")]
    pub watch_stall: humantime::Duration,
    /// How long changes stay resumable; older ones are pruned.
    #[arg(long, env = "PORTCULLIS_WATCH_RETENTION", default_value = "7days")]
    pub watch_retention: humantime::Duration,
}

impl WatchArgs {
    pub fn settings(&self) -> crate::watch::WatchSettings {
        let at_least_1ms = |d: humantime::Duration| {
            std::time::Duration::from(d).max(std::time::Duration::from_millis(1))
        };
        crate::watch::WatchSettings {
            poll: at_least_1ms(self.watch_poll),
            checkpoint: at_least_1ms(self.watch_checkpoint),
            buffer: self.watch_buffer as usize,
            stall: at_least_1ms(self.watch_stall),
            retention: self.watch_retention.into(),
        }
    }
}

impl ServerArgs {
    /// The server settings; TLS files are read and checked here.
    pub fn settings(&self) -> Result<ServerSettings, TlsFileError> {
        let tls = match (&self.tls_cert, &self.tls_key) {
            (Some(cert), Some(key)) => {
                Some(ServerTls::load(cert, key, self.tls_client_ca.as_deref())?)
            }
            _ => None,
        };
        self.gateways.warn_of_renamed_flags();
        Ok(ServerSettings {
            health_interval: self.health_interval.into(),
            shutdown_grace: self.shutdown_grace.into(),
            service_token_lifetime: self.service_token_lifetime.into(),
            revocation_poll_interval: self.revocation_poll_interval.into(),
            max_batch_checks: self.max_batch_checks as usize,
            trust_forwarded_for: self.authn.trust_forwarded_for,
            trusted_proxy_hops: usize::from(self.authn.trusted_proxy_hops),
            metrics_listen: self.metrics_listen,
            tls,
            forward_auth_listen: self.gateways.forward_auth_listen(),
            authzen_listen: self.gateways.authzen_listen,
            authzen_base_url: self.gateways.authzen_base_url.clone(),
            forward_auth: self.gateways.forward_auth(),
            gateway: self.gateways.gateway(),
            ext_authz: self.gateways.ext_authz(),
            watch: self.watch.settings(),
        })
    }

    pub fn token_settings(&self) -> TokenSettings {
        TokenSettings {
            issuer: self.token_issuer.clone(),
            audience: self
                .token_audience
                .clone()
                .unwrap_or_else(|| self.token_issuer.clone()),
            leeway: self.token_leeway.into(),
            role_claim: (!self.token_role_claim.is_empty()).then(|| RoleClaim {
                name: self.token_role_claim.clone(),
                user_role: self.token_user_role.clone(),
                service_role_prefix: self.token_service_role_prefix.clone(),
            }),
        }
    }

    /// The application this command serves: tokens signed with `keys`,
    /// the hashing pool and the code delivery (`default_delivery` unless
    /// `--otp-delivery` says otherwise); TLS files are read and checked here.
    pub fn app(
        &self,
        db: Db,
        keys: KeyRing,
        default_delivery: OtpDeliveryKind,
    ) -> anyhow::Result<App> {
        let delivery: Arc<dyn OtpDelivery> =
            match self.authn.otp_delivery.unwrap_or(default_delivery) {
                OtpDeliveryKind::Outbox => Arc::new(OutboxDelivery),
                OtpDeliveryKind::Log => Arc::new(DevLogDelivery),
            };
        let settings = Settings {
            authn: self.authn.settings(),
            server: self.settings()?,
        };
        Ok(App::assemble(
            db,
            keys,
            self.token_settings(),
            self.authn.hashing.passwords()?,
            delivery,
            self.authn.federation()?,
            settings,
        ))
    }

    /// How long a superseded signing key keeps verifying: long enough for
    /// every token it signed to expire.
    pub fn key_retirement_grace(&self) -> std::time::Duration {
        let service: std::time::Duration = self.service_token_lifetime.into();
        let user: std::time::Duration = self.authn.access_token_lifetime.into();
        let leeway: std::time::Duration = self.token_leeway.into();
        service.max(user) + leeway
    }
}

#[derive(Debug, Args)]
pub struct AuthnArgs {
    /// Lifetime of user access tokens.
    #[arg(long, env = "PORTCULLIS_ACCESS_TOKEN_LIFETIME", default_value = "15m")]
    pub access_token_lifetime: humantime::Duration,
    /// Lifetime of a login session (its refresh token rotates within it).
    #[arg(
        long,
        env = "PORTCULLIS_REFRESH_TOKEN_LIFETIME",
        default_value = "30days"
    )]
    pub refresh_token_lifetime: humantime::Duration,
    /// Where one-time codes go [default: outbox for serve, log for dev].
    #[arg(long, env = "PORTCULLIS_OTP_DELIVERY", value_enum)]
    pub otp_delivery: Option<OtpDeliveryKind>,
    /// Failed logins per login name before it locks.
    #[arg(
        long,
        env = "PORTCULLIS_LOGIN_FAILURES_BEFORE_LOCK",
        default_value_t = 5
    )]
    pub login_failures_before_lock: i32,
    /// Failed logins per client address before it locks.
    #[arg(
        long,
        env = "PORTCULLIS_ADDRESS_FAILURES_BEFORE_LOCK",
        default_value_t = 50
    )]
    pub address_failures_before_lock: i32,
    /// Failures older than this are forgotten.
    #[arg(long, env = "PORTCULLIS_LOGIN_FAILURE_WINDOW", default_value = "15m")]
    pub login_failure_window: humantime::Duration,
    /// Failed one-time-code verifications per destination, across codes,
    /// before it is locked for the rest of a day.
    #[arg(
        long,
        env = "PORTCULLIS_CODE_FAILURES_PER_DESTINATION",
        default_value_t = 10
    )]
    pub code_failures_per_destination: i32,
    /// RequestOtp and ResetPassword calls per client address per hour.
    #[arg(
        long,
        env = "PORTCULLIS_CODE_REQUESTS_PER_ADDRESS",
        default_value_t = 30
    )]
    pub code_requests_per_address: i32,
    /// Take the client address from `x-forwarded-for` (only behind a proxy
    /// that appends to it) instead of the TCP peer: the entry the trusted
    /// proxies appended, never one the client wrote.
    #[arg(long, env = "PORTCULLIS_TRUST_FORWARDED_FOR")]
    pub trust_forwarded_for: bool,
    /// With --trust-forwarded-for: how many proxies in front of Portcullis
    /// append to `x-forwarded-for`; the client is that many entries from
    /// the right.
    #[arg(long, env = "PORTCULLIS_TRUSTED_PROXY_HOPS", default_value_t = 1, value_parser = clap::value_parser!(u8).range(1..))]
    pub trusted_proxy_hops: u8,
    /// JSON file listing the OpenID Connect providers whose ID tokens
    /// Authenticate accepts (issuer, provider google|oidc, audiences,
    /// jwks_url or jwks_file, algorithms); none when not given.
    #[arg(long, env = "PORTCULLIS_OIDC_PROVIDERS")]
    pub oidc_providers: Option<PathBuf>,
    #[command(flatten)]
    pub hashing: HashArgs,
}

impl AuthnArgs {
    /// The OpenID providers of `--oidc-providers`, checked now so a bad
    /// file stops the start-up rather than every federated login.
    pub fn federation(&self) -> Result<Federation, FederationConfigError> {
        match &self.oidc_providers {
            Some(path) => Federation::load(path),
            None => Ok(Federation::none()),
        }
    }

    pub fn settings(&self) -> AuthnSettings {
        AuthnSettings {
            access_lifetime: self.access_token_lifetime.into(),
            refresh_lifetime: self.refresh_token_lifetime.into(),
            throttle: ThrottlePolicy {
                login_threshold: self.login_failures_before_lock,
                address_threshold: self.address_failures_before_lock,
                window: self.login_failure_window.into(),
                code_failures_per_destination: self.code_failures_per_destination,
                requests_per_address: self.code_requests_per_address,
                ..ThrottlePolicy::default()
            },
            ..AuthnSettings::default()
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum OtpDeliveryKind {
    /// Write codes to auth.otp_outbox for a sender process.
    Outbox,
    /// Print codes in the log: for dev only.
    Log,
}

/// `portcullis serve`.
pub async fn run(args: ServeArgs) -> anyhow::Result<()> {
    if args.server.gateways.forward_auth_listen().is_some()
        && args.server.gateways.forward_auth_mode.is_none()
    {
        anyhow::bail!(
            "--forward-auth-listen needs --forward-auth-mode nginx|traefik|envoy \
             (PORTCULLIS_FORWARD_AUTH_MODE): the one gateway convention /forward-auth reads"
        );
    }
    let keys = KeyRing::load_dir(&args.signing_keys_dir, args.server.key_retirement_grace())?;
    let db = args
        .replicas
        .apply(database(&args.database)?, &args.database.pool)?;
    let app = args.server.app(db, keys, OtpDeliveryKind::Outbox)?;
    let listener = server::bind(args.server.listen).await?;
    let tls = app.settings.server.tls.as_ref();
    tracing::info!(
        listen = %args.server.listen,
        tls = tls.is_some(),
        mutual_tls = tls.is_some_and(|tls| tls.mutual),
        oidc_issuers = ?app.federation.issuers(),
        "serving"
    );
    let grace = app.settings.server.shutdown_grace;
    server::serve(app, listener, server::shutdown_signal_within(grace)).await?;
    Ok(())
}

/// A role claim may not replace a claim Portcullis writes itself.
fn parse_role_claim(raw: &str) -> Result<String, String> {
    if RESERVED_CLAIMS.contains(&raw) {
        return Err(format!("`{raw}` is a claim Portcullis writes itself"));
    }
    Ok(raw.to_owned())
}

/// A leeway no longer than revocations are remembered past expiry.
fn parse_leeway(raw: &str) -> Result<humantime::Duration, String> {
    let leeway: humantime::Duration = raw.parse().map_err(|e| format!("{e}"))?;
    if *leeway > crate::tokens::MAX_LEEWAY {
        return Err(format!(
            "at most {}",
            humantime::format_duration(crate::tokens::MAX_LEEWAY)
        ));
    }
    Ok(leeway)
}

pub(super) fn parse_ratio(raw: &str) -> Result<f64, String> {
    raw.trim()
        .parse::<f64>()
        .ok()
        .filter(|r| (0.0..=1.0).contains(r))
        .ok_or_else(|| "expected a number from 0 to 1".to_owned())
}
