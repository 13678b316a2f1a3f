//! Federated login: OpenID Connect ID tokens from the providers this
//! service is configured to trust (Google, or any issuer), verified against
//! their published keys, then matched to a user of the tenant.

mod config;
mod id_token;
mod keys;
mod login;

use std::collections::HashMap;

pub use config::{FederationConfigError, ProviderConfig, ProviderKind};
pub use id_token::{FederatedIdentity, IdTokenError, MAX_ID_TOKEN_LEN};
pub use login::Unlinked;

use keys::ProviderKeys;

/// The trusted providers, by issuer.
#[derive(Default)]
pub struct Federation {
    providers: HashMap<String, Provider>,
}

struct Provider {
    config: ProviderConfig,
    keys: ProviderKeys,
}

impl Federation {
    /// No provider: every ID token is refused as from an unknown issuer.
    pub fn none() -> Self {
        Self::default()
    }

    /// The providers of `configs`, checked (issuers unique, keys readable
    /// when they come from a file).
    pub fn new(configs: Vec<ProviderConfig>) -> Result<Self, FederationConfigError> {
        let mut providers = HashMap::new();
        for config in configs {
            config.validate()?;
            let keys = ProviderKeys::new(&config)?;
            let issuer = config.issuer.clone();
            if providers
                .insert(issuer.clone(), Provider { config, keys })
                .is_some()
            {
                return Err(FederationConfigError::DuplicateIssuer(issuer));
            }
        }
        Ok(Self { providers })
    }

    /// The providers listed in the JSON file at `path` (an array of
    /// [`ProviderConfig`]).
    pub fn load(path: &std::path::Path) -> Result<Self, FederationConfigError> {
        let text = std::fs::read_to_string(path).map_err(|error| FederationConfigError::Read {
            path: path.to_owned(),
            error,
        })?;
        let configs: Vec<ProviderConfig> =
            serde_json::from_str(&text).map_err(|error| FederationConfigError::Parse {
                path: path.to_owned(),
                error,
            })?;
        Self::new(configs)
    }

    /// The issuers trusted, sorted (for logs and `dev`).
    pub fn issuers(&self) -> Vec<&str> {
        let mut issuers: Vec<&str> = self.providers.keys().map(String::as_str).collect();
        issuers.sort_unstable();
        issuers
    }
}
