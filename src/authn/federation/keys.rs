//! A provider's signing keys (its JWKS): read once from a file, or fetched
//! over HTTPS and kept, refreshed when old or when a token names a key not
//! yet seen (providers publish a new key before signing with it).

use std::sync::Arc;
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::{Jwk, JwkSet};
use tokio::sync::{Mutex, RwLock};
use url::Url;

use super::config::{FederationConfigError, ProviderConfig};
use super::id_token::IdTokenError;

/// A key set larger than this is refused (Google's is about 2 KiB).
const MAX_JWKS_BYTES: usize = 256 * 1024;
/// The set is fetched again for an unknown `kid`, or after a failed
/// refresh, at most this often.
const MIN_REFETCH_INTERVAL: Duration = Duration::from_secs(30);
const MIN_RETRY_INTERVAL: Duration = Duration::from_secs(2);
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);

pub(super) enum ProviderKeys {
    Fixed(JwkSet),
    Remote(Box<RemoteKeys>),
}

pub(super) struct RemoteKeys {
    client: reqwest::Client,
    url: Url,
    refresh: Duration,
    state: RwLock<Fetched>,
    /// One fetch at a time; the others wait for its result.
    fetching: Mutex<FetchLog>,
}

#[derive(Default)]
struct Fetched {
    set: Option<Arc<JwkSet>>,
    at: Option<Instant>,
}

impl ProviderKeys {
    pub(super) fn new(config: &ProviderConfig) -> Result<Self, FederationConfigError> {
        let invalid = |problem: String| FederationConfigError::Invalid {
            issuer: config.issuer.clone(),
            problem,
        };
        if let Some(path) = &config.jwks_file {
            let text = std::fs::read_to_string(path)
                .map_err(|e| invalid(format!("cannot read {}: {e}", path.display())))?;
            let set: JwkSet = serde_json::from_str(&text)
                .map_err(|e| invalid(format!("{} is not a JWKS: {e}", path.display())))?;
            return Ok(Self::Fixed(set));
        }
        let url = config
            .jwks_url
            .clone()
            .ok_or_else(|| invalid("no jwks_url or jwks_file".into()))?;
        let client = crate::tls::http_client()
            .timeout(FETCH_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| FederationConfigError::Client(e.to_string()))?;
        Ok(Self::Remote(Box::new(RemoteKeys {
            client,
            url,
            refresh: config.jwks_refresh(),
            state: RwLock::default(),
            fetching: Mutex::default(),
        })))
    }

    /// The key a token's header names (`kid`; without one, the set's only
    /// key).
    pub(super) async fn find(&self, kid: Option<&str>) -> Result<Jwk, IdTokenError> {
        match self {
            Self::Fixed(set) => pick(set, kid),
            Self::Remote(remote) => remote.find(kid).await,
        }
    }
}

fn pick(set: &JwkSet, kid: Option<&str>) -> Result<Jwk, IdTokenError> {
    match kid {
        Some(kid) => set.find(kid).cloned(),
        None if set.keys.len() == 1 => set.keys.first().cloned(),
        None => None,
    }
    .ok_or(IdTokenError::UnknownKey)
}

impl RemoteKeys {
    async fn find(&self, kid: Option<&str>) -> Result<Jwk, IdTokenError> {
        let (set, fresh) = self.current().await;
        let why = match &set {
            None => Why::Missing,
            Some(_) if !fresh => Why::Stale,
            Some(set) => match pick(set, kid) {
                Ok(key) => return Ok(key),
                Err(_) => Why::UnknownKey,
            },
        };
        // When the provider cannot be reached, a key we already hold still
        // verifies (its tokens are no less genuine for the outage).
        match self.fetch(why).await.or(set) {
            Some(set) => pick(&set, kid),
            None => Err(IdTokenError::ProviderUnavailable),
        }
    }

    async fn current(&self) -> (Option<Arc<JwkSet>>, bool) {
        let state = self.state.read().await;
        let fresh = state.at.is_some_and(|at| at.elapsed() < self.refresh);
        (state.set.clone(), fresh)
    }

    /// Fetches the set again, unless `why` was answered while we waited
    /// or was tried too recently; the set to use, if any.
    async fn fetch(&self, why: Why) -> Option<Arc<JwkSet>> {
        let mut log = self.fetching.lock().await;
        let (set, fresh) = self.current().await;
        let recent = |at: Option<Instant>, within| at.is_some_and(|at| at.elapsed() < within);
        let skip = match why {
            Why::Missing => set.is_some() || recent(log.last_attempt, MIN_RETRY_INTERVAL),
            Why::Stale => fresh || recent(log.last_attempt, MIN_REFETCH_INTERVAL),
            Why::UnknownKey => recent(log.last_for_unknown_key, MIN_REFETCH_INTERVAL),
        };
        if skip {
            return set;
        }
        log.last_attempt = Some(Instant::now());
        if why == Why::UnknownKey {
            log.last_for_unknown_key = log.last_attempt;
        }
        match self.download().await {
            Ok(fetched) => {
                let fetched = Arc::new(fetched);
                *self.state.write().await = Fetched {
                    set: Some(fetched.clone()),
                    at: Some(Instant::now()),
                };
                Some(fetched)
            }
            Err(problem) => {
                tracing::warn!(url = %self.url, %problem, "cannot fetch an OpenID provider's keys");
                set
            }
        }
    }

    async fn download(&self) -> Result<JwkSet, String> {
        let mut response = self
            .client
            .get(self.url.clone())
            .send()
            .await
            .map_err(|e| e.to_string())?;
        if !response.status().is_success() {
            return Err(format!("answered {}", response.status()));
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| e.to_string())? {
            if body.len() + chunk.len() > MAX_JWKS_BYTES {
                return Err(format!("key set larger than {MAX_JWKS_BYTES} bytes"));
            }
            body.extend_from_slice(&chunk);
        }
        serde_json::from_slice(&body).map_err(|e| format!("not a JWKS: {e}"))
    }
}

/// Why the set is fetched: each is limited differently.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Why {
    /// None held yet: tried again every couple of seconds while it fails.
    Missing,
    /// Held longer than the refresh interval.
    Stale,
    /// A token names a key not in the set: at most every 30 s, so tokens
    /// naming made-up keys cannot make us hammer the provider.
    UnknownKey,
}

#[derive(Default)]
struct FetchLog {
    last_attempt: Option<Instant>,
    last_for_unknown_key: Option<Instant>,
}
