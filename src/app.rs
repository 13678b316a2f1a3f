//! The application root: everything a request can reach, assembled once by
//! the command that serves (`serve`, `dev`) or by a test, then handed to
//! [`crate::server::serve`].

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::authn::{Authenticator, AuthnSettings, Federation, OtpDelivery, Passwords};
use crate::authz::gatekeeper::GatewaySettings;
use crate::db::Db;
use crate::grpc::ext_authz::ExtAuthzSettings;
use crate::http::ForwardAuthSettings;
use crate::tls::ServerTls;
use crate::tokens::{KeyRing, RevocationList, TokenSettings, Tokens};

/// The application: the database door, the token service, the hashing
/// pool, where codes go, the OpenID providers trusted, and the settings
/// every request runs under.
pub struct App {
    pub db: Db,
    pub tokens: Arc<Tokens>,
    pub passwords: Arc<Passwords>,
    pub delivery: Arc<dyn OtpDelivery>,
    pub federation: Arc<Federation>,
    pub settings: Settings,
}

#[derive(Clone, Debug, Default)]
pub struct Settings {
    pub authn: AuthnSettings,
    pub server: ServerSettings,
}

#[derive(Clone, Debug)]
pub struct ServerSettings {
    /// How often the database is probed for the health service.
    pub health_interval: Duration,
    /// How long in-flight calls may run on after a shutdown signal.
    pub shutdown_grace: Duration,
    /// Lifetime of the tokens `ExchangeServiceCredential` issues.
    pub service_token_lifetime: Duration,
    /// How often the revoked-session list is refreshed from the database.
    pub revocation_poll_interval: Duration,
    /// Most checks one `CheckCapabilities` call may carry.
    pub max_batch_checks: usize,
    /// Take the client address from `x-forwarded-for` rather than the peer.
    pub trust_forwarded_for: bool,
    /// With `trust_forwarded_for`: how many proxies append to the header;
    /// the entry the outermost of them appended is the client.
    pub trusted_proxy_hops: usize,
    /// Where to serve Prometheus metrics (`GET /metrics`); off when `None`.
    pub metrics_listen: Option<SocketAddr>,
    /// Serve gRPC over TLS (and require client certificates if it says so);
    /// plaintext when `None`.
    pub tls: Option<ServerTls>,
    /// Where to serve the HTTP routes gateways call (`/forward-auth`); off
    /// when `None`.
    pub forward_auth_listen: Option<SocketAddr>,
    pub gateway: GatewaySettings,
    /// How `/forward-auth` reads the gateway's request.
    pub forward_auth: ForwardAuthSettings,
    /// Where to serve the AuthZEN API; off when `None`.
    pub authzen_listen: Option<SocketAddr>,
    /// The AuthZEN PDP's own URL in its discovery document.
    pub authzen_base_url: Option<String>,
    /// Who may call Envoy's `Check`, and what it tells the upstream.
    pub ext_authz: ExtAuthzSettings,
    /// The change stream (`Watch`).
    pub watch: crate::watch::WatchSettings,
}

impl Default for ServerSettings {
    fn default() -> Self {
        Self {
            health_interval: Duration::from_secs(2),
            shutdown_grace: Duration::from_secs(30),
            service_token_lifetime: Duration::from_secs(600),
            revocation_poll_interval: Duration::from_secs(1),
            max_batch_checks: 1000,
            trust_forwarded_for: false,
            trusted_proxy_hops: 1,
            metrics_listen: None,
            tls: None,
            forward_auth_listen: None,
            gateway: GatewaySettings::default(),
            forward_auth: ForwardAuthSettings::default(),
            authzen_listen: None,
            authzen_base_url: None,
            ext_authz: ExtAuthzSettings::default(),
            watch: crate::watch::WatchSettings::default(),
        }
    }
}

impl ServerSettings {
    /// Refuses settings under which an edge would trust what a client
    /// chose: discovery that names the request's `Host`, or a capability
    /// and node named by headers Traefik copies from the client.
    pub fn check(&self) -> Result<(), String> {
        if self.authzen_listen.is_some() && self.authzen_base_url.is_none() {
            return Err(
                "the AuthZEN listener needs --authzen-base-url: discovery names that URL, \
                        never the request's Host"
                    .into(),
            );
        }
        let gateway = &self.gateway;
        if self.forward_auth.mode == crate::http::ForwardAuthMode::Traefik
            && (gateway.capability_header.is_some() || gateway.node_header.is_some())
        {
            return Err(
                "--gateway-capability-header and --gateway-node-header cannot be used \
                        with --forward-auth-mode traefik: Traefik copies every client header \
                        into its auth request and cannot set them itself"
                    .into(),
            );
        }
        Ok(())
    }

    /// Proxies trusted to append the client address to `x-forwarded-for`
    /// (0: the TCP peer is the client). Client addresses count login
    /// failures, so the header is trusted only when told.
    pub fn proxy_hops(&self) -> usize {
        if self.trust_forwarded_for {
            self.trusted_proxy_hops
        } else {
            0
        }
    }
}

impl App {
    /// Assembles the application over `db`: tokens signed with `keys`
    /// (their revocation list starts empty; the server keeps it in sync).
    pub fn assemble(
        db: Db,
        keys: KeyRing,
        token_settings: TokenSettings,
        passwords: Passwords,
        delivery: Arc<dyn OtpDelivery>,
        federation: Federation,
        settings: Settings,
    ) -> Self {
        Self {
            db,
            tokens: Arc::new(Tokens::new(
                keys,
                token_settings,
                Arc::new(RevocationList::default()),
            )),
            passwords: Arc::new(passwords),
            delivery,
            federation: Arc::new(federation),
            settings,
        }
    }

    /// Authentication's share of the application.
    pub fn authenticator(&self) -> Authenticator {
        Authenticator {
            db: self.db.clone(),
            tokens: self.tokens.clone(),
            passwords: self.passwords.clone(),
            delivery: self.delivery.clone(),
            federation: self.federation.clone(),
            settings: self.settings.authn.clone(),
        }
    }
}
