//! The flags of the gateway edges `serve` and `dev` share: the HTTP
//! listeners (`/forward-auth`, AuthZEN), how forward-auth reads its
//! gateway, the gateway decision, and Envoy's `Check`.

use std::net::SocketAddr;

use clap::Args;

use crate::authz::gatekeeper::GatewaySettings;
use crate::grpc::ext_authz::{ExtAuthzCallers, ExtAuthzSettings};
use crate::http::{ForwardAuthMode, ForwardAuthSettings};
use crate::names::ServiceKey;

#[derive(Debug, Args)]
pub struct GatewayArgs {
    /// Serve `/forward-auth`, the route API gateways call, on this address
    /// [default: off for serve, 127.0.0.1:8181 for dev].
    #[arg(long, env = "PORTCULLIS_FORWARD_AUTH_LISTEN")]
    forward_auth_listen: Option<SocketAddr>,
    /// The old name of --forward-auth-listen, accepted for one release.
    #[arg(
        long = "http-listen",
        env = "PORTCULLIS_HTTP_LISTEN",
        hide = true,
        conflicts_with = "forward_auth_listen"
    )]
    renamed_http_listen: Option<SocketAddr>,
    /// Serve the OpenID AuthZEN Authorization API (JSON over HTTP) on this
    /// address [default: off].
    #[arg(long, env = "PORTCULLIS_AUTHZEN_LISTEN")]
    pub authzen_listen: Option<SocketAddr>,
    /// The PDP's URL its discovery document names (required with
    /// --authzen-listen; dev: http:// and the listener's address).
    #[arg(long, env = "PORTCULLIS_AUTHZEN_BASE_URL")]
    pub authzen_base_url: Option<String>,
    /// Which gateway calls /forward-auth, and so where the original request
    /// is read: nginx (X-Original-Method, X-Original-URI), traefik
    /// (X-Forwarded-Method, X-Forwarded-Uri, X-Forwarded-Host) or envoy (the
    /// method and the path after /forward-auth). Only that one source is
    /// read. Required with --forward-auth-listen [dev: nginx].
    #[arg(long, env = "PORTCULLIS_FORWARD_AUTH_MODE", value_enum)]
    pub forward_auth_mode: Option<ForwardAuthMode>,
    /// The header naming the endpoint catalogue's service of a forward-auth
    /// request, read only without --forward-auth-host (with it, the host
    /// decides).
    #[arg(
        long,
        env = "PORTCULLIS_FORWARD_AUTH_SERVICE_HEADER",
        default_value = "x-auth-service"
    )]
    pub forward_auth_service_header: String,
    /// The service by the original host (as the mode reads it): HOST=SERVICE,
    /// repeated (or comma-separated in the variable). With it, no request
    /// header names the service.
    #[arg(long, env = "PORTCULLIS_FORWARD_AUTH_HOSTS", value_delimiter = ',', value_parser = parse_host_service)]
    pub forward_auth_host: Vec<(String, String)>,
    /// The header an nginx `auth_request` location sets to the original
    /// method.
    #[arg(
        long,
        env = "PORTCULLIS_FORWARD_AUTH_METHOD_HEADER",
        default_value = "x-original-method"
    )]
    pub forward_auth_method_header: String,
    /// The header an nginx `auth_request` location sets to the original URI.
    #[arg(
        long,
        env = "PORTCULLIS_FORWARD_AUTH_URI_HEADER",
        default_value = "x-original-uri"
    )]
    pub forward_auth_uri_header: String,
    /// Read the user token from this cookie instead of `Authorization: Bearer`.
    #[arg(long, env = "PORTCULLIS_FORWARD_AUTH_COOKIE")]
    pub forward_auth_cookie: Option<String>,
    /// Catalogue services whose upstream receives `X-Auth-Token` on an
    /// allowed request: a token for that one request (audience the service,
    /// the PostgREST role claim), repeated or comma-separated.
    #[arg(
        long,
        env = "PORTCULLIS_FORWARD_AUTH_UPSTREAM_TOKEN",
        value_delimiter = ',',
        value_parser = |raw: &str| ServiceKey::parse(raw).map_err(|e| e.to_string())
    )]
    pub forward_auth_upstream_token: Vec<ServiceKey>,
    /// How long an `X-Auth-Token` lives (at most 5m; never past the user's
    /// own token).
    #[arg(
        long,
        env = "PORTCULLIS_FORWARD_AUTH_UPSTREAM_TOKEN_LIFETIME",
        default_value = "60s",
        value_parser = parse_upstream_token_lifetime
    )]
    pub forward_auth_upstream_token_lifetime: humantime::Duration,
    /// For a gateway request no catalogue entry matches (forward-auth and
    /// Envoy's Check): the header naming the capability to check, set by the
    /// gateway's own route configuration (with --gateway-node-header).
    #[arg(
        long,
        env = "PORTCULLIS_GATEWAY_CAPABILITY_HEADER",
        requires = "gateway_node_header"
    )]
    pub gateway_capability_header: Option<String>,
    /// The header naming the org node for --gateway-capability-header.
    #[arg(
        long,
        env = "PORTCULLIS_GATEWAY_NODE_HEADER",
        requires = "gateway_capability_header"
    )]
    pub gateway_node_header: Option<String>,
    /// Who may call Envoy's `envoy.service.auth.v3.Authorization/Check`: a
    /// service token with authz.check, a client certificate (needs
    /// --tls-client-ca), or either.
    #[arg(
        long,
        env = "PORTCULLIS_EXT_AUTHZ_CALLERS",
        value_enum,
        default_value = "token"
    )]
    pub ext_authz_callers: ExtAuthzCallers,
    /// Have Envoy remove the user's `authorization` header on an allowed
    /// request.
    #[arg(long, env = "PORTCULLIS_EXT_AUTHZ_REMOVE_AUTHORIZATION")]
    pub ext_authz_remove_authorization: bool,
    /// Let Envoy's Check take the catalogue service from the original
    /// request (the --forward-auth-service-header, or the host through
    /// --forward-auth-host) when the route's context extension
    /// `portcullis_service` names none. Off: the route's configuration alone
    /// names it.
    #[arg(long, env = "PORTCULLIS_EXT_AUTHZ_SERVICE_FROM_REQUEST")]
    pub ext_authz_service_from_request: bool,
    /// Also send Envoy's upstream the old header names (x-portcullis-user,
    /// -tenant, -groups, -reason) beside x-auth-*; without it they are
    /// removed from the request. For one release.
    #[arg(long, env = "PORTCULLIS_EXT_AUTHZ_LEGACY_HEADERS")]
    pub ext_authz_legacy_headers: bool,
}

impl GatewayArgs {
    /// Where `/forward-auth` listens, under its name or its old one.
    pub fn forward_auth_listen(&self) -> Option<SocketAddr> {
        self.forward_auth_listen.or(self.renamed_http_listen)
    }

    /// Says so in the log when a renamed flag was used.
    pub fn warn_of_renamed_flags(&self) {
        if self.renamed_http_listen.is_some() {
            tracing::warn!(
                "--http-listen (PORTCULLIS_HTTP_LISTEN) is now --forward-auth-listen \
                 (PORTCULLIS_FORWARD_AUTH_LISTEN); the old name goes in the next release"
            );
        }
    }

    pub fn forward_auth(&self) -> ForwardAuthSettings {
        ForwardAuthSettings {
            mode: self.forward_auth_mode.unwrap_or_default(),
            method_header: self.forward_auth_method_header.to_ascii_lowercase(),
            uri_header: self.forward_auth_uri_header.to_ascii_lowercase(),
            token_cookie: self.forward_auth_cookie.clone(),
        }
    }

    pub fn gateway(&self) -> GatewaySettings {
        GatewaySettings {
            service_header: self.forward_auth_service_header.to_ascii_lowercase(),
            services_by_host: self.forward_auth_host.iter().cloned().collect(),
            upstream_token_services: self
                .forward_auth_upstream_token
                .iter()
                .map(|service| service.as_str().to_owned())
                .collect(),
            upstream_token_lifetime: self.forward_auth_upstream_token_lifetime.into(),
            capability_header: self
                .gateway_capability_header
                .as_ref()
                .map(|h| h.to_ascii_lowercase()),
            node_header: self
                .gateway_node_header
                .as_ref()
                .map(|h| h.to_ascii_lowercase()),
        }
    }

    pub fn ext_authz(&self) -> ExtAuthzSettings {
        ExtAuthzSettings {
            callers: self.ext_authz_callers,
            remove_authorization: self.ext_authz_remove_authorization,
            service_from_request: self.ext_authz_service_from_request,
            legacy_headers: self.ext_authz_legacy_headers,
        }
    }
}

/// `HOST=SERVICE`.
fn parse_host_service(raw: &str) -> Result<(String, String), String> {
    let (host, service) = raw
        .split_once('=')
        .ok_or_else(|| format!("`{raw}` is not HOST=SERVICE"))?;
    crate::names::ServiceKey::parse(service.trim())
        .map_err(|e| format!("service `{service}` {e}"))?;
    Ok((host.trim().to_ascii_lowercase(), service.trim().to_owned()))
}

fn parse_upstream_token_lifetime(raw: &str) -> Result<humantime::Duration, String> {
    let lifetime: humantime::Duration = raw.parse().map_err(|e| format!("{e}"))?;
    let most = crate::tokens::MAX_UPSTREAM_TOKEN_LIFETIME;
    if lifetime.is_zero() || *lifetime > most {
        return Err(format!(
            "more than 0s and at most {}",
            humantime::format_duration(most)
        ));
    }
    Ok(lifetime)
}
