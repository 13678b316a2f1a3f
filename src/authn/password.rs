//! Argon2id password hashing, off the async runtime and bounded, so a login
//! storm queues behind a fixed number of hashing threads instead of
//! starving everything else.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use argon2::password_hash::{PasswordHash, PasswordHasher as _, PasswordVerifier as _, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use secrecy::{ExposeSecret, SecretString};
use tokio::sync::Semaphore;

/// Longer passwords are refused before any hashing (a multi-megabyte
/// "password" would otherwise be a cheap way to burn CPU).
pub const MAX_PASSWORD_BYTES: usize = 1024;
/// Shorter new passwords are refused.
pub const MIN_PASSWORD_CHARS: usize = 12;

/// Argon2id cost. Memory in KiB.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HashCost {
    pub memory_kib: u32,
    pub iterations: u32,
    pub parallelism: u32,
}

impl HashCost {
    /// OWASP's minimum for argon2id (m=19 MiB, t=2, p=1): the default, and
    /// the floor the CLI accepts.
    pub const OWASP: Self = Self {
        memory_kib: 19_456,
        iterations: 2,
        parallelism: 1,
    };

    /// Deliberately weak, for tests only: named so it cannot be picked by
    /// accident in configuration.
    pub const INSECURE_FAST_FOR_TESTS: Self = Self {
        memory_kib: 64,
        iterations: 1,
        parallelism: 1,
    };

    fn params(self) -> Result<Params, PasswordError> {
        Params::new(self.memory_kib, self.iterations, self.parallelism, None)
            .map_err(|e| PasswordError::Config(e.to_string()))
    }

    fn weaker_than(self, other: Self) -> bool {
        self.memory_kib < other.memory_kib
            || self.iterations < other.iterations
            || self.parallelism < other.parallelism
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    #[error("password hashing is busy; retry shortly")]
    Busy,
    #[error("invalid hashing configuration: {0}")]
    Config(String),
    #[error("hashing failed: {0}")]
    Hash(String),
}

/// The outcome of checking a password.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Verified {
    pub matches: bool,
    /// The stored hash is weaker than today's cost: store a new one.
    pub needs_rehash: bool,
}

/// Hashes and verifies passwords on a bounded set of blocking threads.
pub struct Passwords {
    cost: HashCost,
    permits: Arc<Semaphore>,
    waiting: AtomicUsize,
    queue_timeout: Duration,
    /// A hash of a random password, verified when there is no real hash so
    /// that an unknown user costs what a wrong password does.
    dummy_hash: String,
    verifications: AtomicU64,
}

impl Passwords {
    pub fn new(
        cost: HashCost,
        threads: usize,
        queue_timeout: Duration,
    ) -> Result<Self, PasswordError> {
        let dummy = SecretString::from(uuid::Uuid::new_v4().to_string());
        let dummy_hash = hash_blocking(cost, &dummy)?;
        Ok(Self {
            cost,
            permits: Arc::new(Semaphore::new(threads.max(1))),
            waiting: AtomicUsize::new(0),
            queue_timeout,
            dummy_hash,
            verifications: AtomicU64::new(0),
        })
    }

    pub fn cost(&self) -> HashCost {
        self.cost
    }

    /// How many verifications ran (a seam for tests: equal work for unknown
    /// users is counted, not timed).
    pub fn verifications(&self) -> u64 {
        self.verifications.load(Ordering::Relaxed)
    }

    /// Calls waiting for a hashing thread right now.
    pub fn queue_depth(&self) -> usize {
        self.waiting.load(Ordering::Relaxed)
    }

    pub async fn hash(&self, password: &SecretString) -> Result<String, PasswordError> {
        let cost = self.cost;
        let password = password.clone();
        self.run(move || hash_blocking(cost, &password)).await?
    }

    /// Verifies `password` against `stored` (a PHC string), or against the
    /// dummy hash when there is none: the work is the same either way.
    pub async fn verify(
        &self,
        password: &SecretString,
        stored: Option<&str>,
    ) -> Result<Verified, PasswordError> {
        let has_real = stored.is_some();
        let stored = stored.unwrap_or(&self.dummy_hash).to_owned();
        let password = password.clone();
        let cost = self.cost;
        self.verifications.fetch_add(1, Ordering::Relaxed);
        let verified = self
            .run(move || verify_blocking(cost, &password, &stored))
            .await?;
        Ok(Verified {
            matches: verified.matches && has_real,
            needs_rehash: verified.needs_rehash && has_real,
        })
    }

    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, PasswordError> {
        self.waiting.fetch_add(1, Ordering::Relaxed);
        let permit =
            tokio::time::timeout(self.queue_timeout, self.permits.clone().acquire_owned()).await;
        self.waiting.fetch_sub(1, Ordering::Relaxed);
        let permit = permit
            .map_err(|_| PasswordError::Busy)?
            .map_err(|_| PasswordError::Busy)?;
        let span = tracing::debug_span!("password_hashing");
        tokio::task::spawn_blocking(move || {
            let out = span.in_scope(work);
            drop(permit);
            out
        })
        .await
        .map_err(|e| PasswordError::Hash(e.to_string()))
    }
}

fn argon2(cost: HashCost) -> Result<Argon2<'static>, PasswordError> {
    Ok(Argon2::new(
        Algorithm::Argon2id,
        Version::V0x13,
        cost.params()?,
    ))
}

fn hash_blocking(cost: HashCost, password: &SecretString) -> Result<String, PasswordError> {
    let salt = SaltString::generate(&mut rand::rngs::OsRng);
    argon2(cost)?
        .hash_password(password.expose_secret().as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(|e| PasswordError::Hash(e.to_string()))
}

fn verify_blocking(cost: HashCost, password: &SecretString, stored: &str) -> Verified {
    // A stored hash we cannot parse counts as a mismatch, never a pass.
    let Ok(parsed) = PasswordHash::new(stored) else {
        return Verified {
            matches: false,
            needs_rehash: false,
        };
    };
    let Ok(verifier) = argon2(cost) else {
        return Verified {
            matches: false,
            needs_rehash: false,
        };
    };
    let matches = verifier
        .verify_password(password.expose_secret().as_bytes(), &parsed)
        .is_ok();
    let stored_cost = Params::try_from(&parsed).ok().map(|p| HashCost {
        memory_kib: p.m_cost(),
        iterations: p.t_cost(),
        parallelism: p.p_cost(),
    });
    let weak_algorithm = parsed.algorithm.as_str() != "argon2id";
    Verified {
        matches,
        needs_rehash: matches
            && (weak_algorithm || stored_cost.is_none_or(|c| c.weaker_than(cost))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hasher(cost: HashCost) -> Passwords {
        Passwords::new(cost, 1, Duration::from_secs(5)).unwrap()
    }

    #[tokio::test]
    async fn a_hash_verifies_its_password_only() {
        let h = hasher(HashCost::INSECURE_FAST_FOR_TESTS);
        let password = SecretString::from("correct horse battery staple");
        let stored = h.hash(&password).await.unwrap();
        assert!(stored.starts_with("$argon2id$"));
        assert!(h.verify(&password, Some(&stored)).await.unwrap().matches);
        let wrong = SecretString::from("correct horse battery staplE");
        assert!(!h.verify(&wrong, Some(&stored)).await.unwrap().matches);
    }

    #[tokio::test]
    async fn no_stored_hash_costs_one_verification_and_never_matches() {
        let h = hasher(HashCost::INSECURE_FAST_FOR_TESTS);
        let before = h.verifications();
        let verified = h
            .verify(&SecretString::from("anything"), None)
            .await
            .unwrap();
        assert!(!verified.matches);
        assert_eq!(h.verifications(), before + 1);
    }

    #[tokio::test]
    async fn a_hash_made_with_a_lower_cost_asks_for_a_rehash() {
        let weak = hasher(HashCost::INSECURE_FAST_FOR_TESTS);
        let password = SecretString::from("correct horse battery staple");
        let stored = weak.hash(&password).await.unwrap();
        let stronger = hasher(HashCost {
            memory_kib: 128,
            ..HashCost::INSECURE_FAST_FOR_TESTS
        });
        let verified = stronger.verify(&password, Some(&stored)).await.unwrap();
        assert!(verified.matches && verified.needs_rehash);
        assert!(
            !weak
                .verify(&password, Some(&stored))
                .await
                .unwrap()
                .needs_rehash
        );
    }

    #[tokio::test]
    async fn a_garbage_stored_hash_is_a_mismatch() {
        let h = hasher(HashCost::INSECURE_FAST_FOR_TESTS);
        let verified = h
            .verify(&SecretString::from("x"), Some("not a phc string"))
            .await
            .unwrap();
        assert!(!verified.matches);
    }
}
