//! Argon2id password hashing, off the async runtime and bounded, so a login
//! storm queues behind a fixed number of hashing threads instead of
//! starving everything else.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use argon2::password_hash::{PasswordHash, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use secrecy::{ExposeSecret, SecretString};

use super::fair_queue::FairQueue;

pub use crate::names::{MAX_PASSWORD_BYTES, MIN_PASSWORD_CHARS};

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

type Job = Box<dyn FnOnce() + Send>;

/// Hashes and verifies passwords on a fixed set of dedicated threads.
/// Dedicated, not tokio's blocking pool: each argon2 call allocates its
/// memory cost (19 MiB), and the allocator keeps that per thread; a few
/// long-lived threads keep the resident size flat, a churning pool of
/// short-lived ones does not.
pub struct Passwords {
    cost: HashCost,
    jobs: std::sync::mpsc::Sender<Job>,
    /// One permit per thread, handed out round-robin by client address.
    permits: Arc<FairQueue>,
    waiting: AtomicUsize,
    queue_timeout: Duration,
    /// A hash of a random password, verified when there is no real hash so
    /// that an unknown user costs what a wrong password does.
    dummy_hash: String,
    verifications: AtomicU64,
    hashings: AtomicU64,
}

impl Passwords {
    pub fn new(
        cost: HashCost,
        threads: usize,
        queue_timeout: Duration,
    ) -> Result<Self, PasswordError> {
        let dummy = SecretString::from(uuid::Uuid::new_v4().to_string());
        // On a thread of its own, so its working memory goes with it.
        let dummy_hash =
            std::thread::scope(|scope| scope.spawn(|| hash_blocking(cost, &dummy)).join())
                .map_err(|_| PasswordError::Hash("the dummy hash panicked".into()))??;
        let threads = threads.max(1);
        let (jobs, queue) = std::sync::mpsc::channel::<Job>();
        let queue = Arc::new(std::sync::Mutex::new(queue));
        for index in 0..threads {
            let queue = queue.clone();
            std::thread::Builder::new()
                .name(format!("password-hashing-{index}"))
                .spawn(move || {
                    loop {
                        let job = match queue.lock() {
                            Ok(receiver) => receiver.recv(),
                            Err(_) => return,
                        };
                        match job {
                            Ok(job) => job(),
                            // Every sender is gone: the hasher was dropped.
                            Err(_) => return,
                        }
                    }
                })
                .map_err(|e| {
                    PasswordError::Config(format!("cannot start a hashing thread: {e}"))
                })?;
        }
        Ok(Self {
            cost,
            jobs,
            permits: FairQueue::new(threads),
            waiting: AtomicUsize::new(0),
            queue_timeout,
            dummy_hash,
            verifications: AtomicU64::new(0),
            hashings: AtomicU64::new(0),
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

    /// How many new hashes were computed (a seam for tests: refused
    /// requests must not reach the hashing threads).
    pub fn hashings(&self) -> u64 {
        self.hashings.load(Ordering::Relaxed)
    }

    /// Calls waiting for a hashing thread right now.
    pub fn queue_depth(&self) -> usize {
        self.waiting.load(Ordering::Relaxed)
    }

    pub async fn hash(&self, password: &SecretString) -> Result<String, PasswordError> {
        self.hash_for(None, password).await
    }

    /// [`Self::hash`] in the turn of the client `address`.
    pub async fn hash_for(
        &self,
        address: Option<&str>,
        password: &SecretString,
    ) -> Result<String, PasswordError> {
        let cost = self.cost;
        let password = password.clone();
        self.hashings.fetch_add(1, Ordering::Relaxed);
        self.run(address, move || hash_blocking(cost, &password))
            .await?
    }

    /// Verifies `password` against `stored` (a PHC string), or against the
    /// dummy hash when there is none: the work is the same either way.
    pub async fn verify(
        &self,
        password: &SecretString,
        stored: Option<&str>,
    ) -> Result<Verified, PasswordError> {
        self.verify_for(None, password, stored).await
    }

    /// [`Self::verify`] in the turn of the client `address`.
    pub async fn verify_for(
        &self,
        address: Option<&str>,
        password: &SecretString,
        stored: Option<&str>,
    ) -> Result<Verified, PasswordError> {
        let has_real = stored.is_some();
        let stored = stored.unwrap_or(&self.dummy_hash).to_owned();
        let password = password.clone();
        let cost = self.cost;
        self.verifications.fetch_add(1, Ordering::Relaxed);
        let verified = self
            .run(address, move || verify_blocking(cost, &password, &stored))
            .await?;
        Ok(Verified {
            matches: verified.matches && has_real,
            needs_rehash: verified.needs_rehash && has_real,
        })
    }

    async fn run<T: Send + 'static>(
        &self,
        address: Option<&str>,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, PasswordError> {
        self.waiting.fetch_add(1, Ordering::Relaxed);
        let permit = tokio::time::timeout(self.queue_timeout, self.permits.acquire(address)).await;
        self.waiting.fetch_sub(1, Ordering::Relaxed);
        let permit = permit
            .map_err(|_| PasswordError::Busy)?
            .ok_or(PasswordError::Busy)?;
        let span = tracing::info_span!("password_hashing");
        let (done, result) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move || {
            let out = span.in_scope(work);
            drop(permit);
            let _ = done.send(out);
        });
        self.jobs
            .send(job)
            .map_err(|_| PasswordError::Hash("the hashing threads are gone".into()))?;
        result
            .await
            .map_err(|_| PasswordError::Hash("a hashing thread dropped its job".into()))
    }
}

thread_local! {
    /// Each hashing thread's argon2 working memory, allocated once and
    /// reused: allocating the memory cost anew on every call makes the
    /// allocator hoard it.
    static BLOCKS: std::cell::RefCell<Vec<argon2::Block>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Argon2id of `password` with `salt` and `params` into `out`.
fn compute(
    params: Params,
    password: &[u8],
    salt: &[u8],
    out: &mut [u8],
) -> Result<(), argon2::Error> {
    BLOCKS.with(|blocks| {
        let mut blocks = blocks.borrow_mut();
        let needed = params.block_count();
        if blocks.len() < needed {
            blocks.resize(needed, argon2::Block::default());
        }
        Argon2::new(Algorithm::Argon2id, Version::V0x13, params).hash_password_into_with_memory(
            password,
            salt,
            out,
            &mut blocks[..needed],
        )
    })
}

fn hash_blocking(cost: HashCost, password: &SecretString) -> Result<String, PasswordError> {
    let params = cost.params()?;
    let salt = SaltString::generate(&mut rand::rngs::OsRng);
    let mut salt_bytes = [0u8; 64];
    let salt_bytes = salt
        .decode_b64(&mut salt_bytes)
        .map_err(|e| PasswordError::Hash(e.to_string()))?;
    let mut out = [0u8; 32];
    compute(
        params.clone(),
        password.expose_secret().as_bytes(),
        salt_bytes,
        &mut out,
    )
    .map_err(|e| PasswordError::Hash(e.to_string()))?;
    let hash = PasswordHash {
        algorithm: argon2::ARGON2ID_IDENT,
        version: Some(Version::V0x13.into()),
        params: argon2::password_hash::ParamsString::try_from(&params)
            .map_err(|e| PasswordError::Hash(e.to_string()))?,
        salt: Some(salt.as_salt()),
        hash: Some(
            argon2::password_hash::Output::new(&out)
                .map_err(|e| PasswordError::Hash(e.to_string()))?,
        ),
    };
    Ok(hash.to_string())
}

fn verify_blocking(cost: HashCost, password: &SecretString, stored: &str) -> Verified {
    let mismatch = Verified {
        matches: false,
        needs_rehash: false,
    };
    // A stored hash we cannot parse or use counts as a mismatch, never a pass.
    let Ok(parsed) = PasswordHash::new(stored) else {
        return mismatch;
    };
    let (Ok(params), Some(salt), Some(expected)) =
        (Params::try_from(&parsed), parsed.salt, parsed.hash)
    else {
        return mismatch;
    };
    let weak_algorithm = parsed.algorithm != argon2::ARGON2ID_IDENT;
    let mut salt_bytes = [0u8; 64];
    let Ok(salt_bytes) = salt.decode_b64(&mut salt_bytes) else {
        return mismatch;
    };
    let mut out = vec![0u8; expected.len()];
    if weak_algorithm
        || compute(
            params.clone(),
            password.expose_secret().as_bytes(),
            salt_bytes,
            &mut out,
        )
        .is_err()
    {
        return mismatch;
    }
    // `Output` compares in constant time.
    let matches =
        argon2::password_hash::Output::new(&out).is_ok_and(|computed| computed == expected);
    let stored_cost = HashCost {
        memory_kib: params.m_cost(),
        iterations: params.t_cost(),
        parallelism: params.p_cost(),
    };
    Verified {
        matches,
        needs_rehash: matches && stored_cost.weaker_than(cost),
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
