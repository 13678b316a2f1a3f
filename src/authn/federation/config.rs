//! How a provider is configured (one entry of the `--oidc-providers` file).

use std::path::PathBuf;
use std::time::Duration;

use jsonwebtoken::Algorithm;
use serde::Deserialize;
use url::Url;

/// Which `ident_provider_code` the provider's identities are stored under.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProviderKind {
    /// The seed's provider: the subject key is Google's `sub`.
    Google,
    /// Any other issuer: the subject key is `<issuer> <sub>`.
    Oidc,
}

impl ProviderKind {
    pub fn code(self) -> &'static str {
        match self {
            Self::Google => "google",
            Self::Oidc => "oidc",
        }
    }
}

/// The `iss` values Google's ID tokens carry.
const GOOGLE_ISSUERS: [&str; 2] = ["https://accounts.google.com", "accounts.google.com"];

/// Most clock skew a provider may be given.
const MAX_LEEWAY: Duration = Duration::from_secs(300);
/// Algorithms a provider may sign with: no shared secrets (`HS*`), no `none`.
const SUPPORTED: [Algorithm; 3] = [Algorithm::RS256, Algorithm::ES256, Algorithm::EdDSA];

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderConfig {
    /// The `iss` the provider's tokens carry, e.g. `https://accounts.google.com`.
    pub issuer: String,
    pub provider: ProviderKind,
    /// Accepted `aud` values: the OAuth client ids of your applications.
    pub audiences: Vec<String>,
    /// Where the provider publishes its keys (HTTPS; plain HTTP only to a
    /// loopback address). Fetched when first needed, again after
    /// `jwks_refresh_seconds`, and when a token names an unknown key.
    #[serde(default)]
    pub jwks_url: Option<Url>,
    /// Or a JWKS document on disk, read at start-up.
    #[serde(default)]
    pub jwks_file: Option<PathBuf>,
    /// Of `RS256`, `ES256`, `EdDSA`.
    #[serde(default = "default_algorithms")]
    pub algorithms: Vec<Algorithm>,
    #[serde(default = "default_leeway_seconds")]
    pub leeway_seconds: u64,
    /// Refuse tokens when the request gives no `nonce` to compare.
    #[serde(default)]
    pub require_nonce: bool,
    #[serde(default = "default_refresh_seconds")]
    pub jwks_refresh_seconds: u64,
}

fn default_algorithms() -> Vec<Algorithm> {
    vec![Algorithm::RS256]
}

fn default_leeway_seconds() -> u64 {
    60
}

fn default_refresh_seconds() -> u64 {
    3600
}

#[derive(Debug, thiserror::Error)]
pub enum FederationConfigError {
    #[error("cannot read {}: {error}", path.display())]
    Read {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("{}: {error}", path.display())]
    Parse {
        path: PathBuf,
        error: serde_json::Error,
    },
    #[error("provider {issuer:?}: {problem}")]
    Invalid { issuer: String, problem: String },
    #[error("issuer {0:?} is configured twice")]
    DuplicateIssuer(String),
    #[error("cannot build the HTTPS client for JWKS: {0}")]
    Client(String),
}

impl ProviderConfig {
    pub fn leeway(&self) -> Duration {
        Duration::from_secs(self.leeway_seconds)
    }

    pub fn jwks_refresh(&self) -> Duration {
        Duration::from_secs(self.jwks_refresh_seconds)
    }

    pub(super) fn validate(&self) -> Result<(), FederationConfigError> {
        let invalid = |problem: &str| FederationConfigError::Invalid {
            issuer: self.issuer.clone(),
            problem: problem.to_owned(),
        };
        // The issuer prefixes `oidc` subject keys: no spaces, so the key
        // stays unambiguous.
        if self.issuer.is_empty() || self.issuer.contains(char::is_whitespace) {
            return Err(invalid("issuer must be non-empty, without spaces"));
        }
        // Google's subjects are stored bare, so any other issuer's `sub`
        // would be taken for a Google account's.
        if self.provider == ProviderKind::Google && !GOOGLE_ISSUERS.contains(&self.issuer.as_str())
        {
            return Err(invalid(
                "provider `google` is only for Google's issuer (https://accounts.google.com); \
                 use provider `oidc` for any other",
            ));
        }
        if self.audiences.is_empty() || self.audiences.iter().any(String::is_empty) {
            return Err(invalid("give at least one audience (client id)"));
        }
        match (&self.jwks_url, &self.jwks_file) {
            (Some(url), None) => {
                let loopback = matches!(
                    url.host(),
                    Some(url::Host::Ipv4(ip)) if ip.is_loopback()
                ) || matches!(url.host(), Some(url::Host::Ipv6(ip)) if ip.is_loopback())
                    || url.host_str() == Some("localhost");
                if url.scheme() != "https" && !(url.scheme() == "http" && loopback) {
                    return Err(invalid(
                        "jwks_url must be https (http only to a loopback address)",
                    ));
                }
            }
            (None, Some(_)) => {}
            _ => return Err(invalid("give exactly one of jwks_url and jwks_file")),
        }
        if self.algorithms.is_empty() || self.algorithms.iter().any(|a| !SUPPORTED.contains(a)) {
            return Err(invalid("algorithms must be some of RS256, ES256, EdDSA"));
        }
        if self.leeway() > MAX_LEEWAY {
            return Err(invalid("leeway_seconds must be at most 300"));
        }
        if self.jwks_refresh_seconds < 60 {
            return Err(invalid("jwks_refresh_seconds must be at least 60"));
        }
        Ok(())
    }
}
