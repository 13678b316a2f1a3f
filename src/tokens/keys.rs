//! Ed25519 signing keys: loaded from PKCS#8 PEM files, the newest active key
//! signs, every key verifies until it retires, all are published as JWKS.

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, NaiveDateTime, Utc};
use ed25519_dalek::SigningKey;
use ed25519_dalek::pkcs8::{DecodePrivateKey, EncodePrivateKey, spki::der::pem::LineEnding};
use jsonwebtoken::{DecodingKey, EncodingKey};
use sha2::{Digest, Sha256};

/// Key files are named for the moment the key starts signing, so every
/// replica agrees on which key is newest without reading file times.
const FILE_PREFIX: &str = "ed25519-";
const FILE_SUFFIX: &str = ".pem";
const FILE_TIME_FORMAT: &str = "%Y%m%dT%H%M%SZ";

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("cannot read signing keys from {path}: {cause}")]
    Io {
        path: PathBuf,
        cause: std::io::Error,
    },
    #[error(
        "{path}: key files must be named {FILE_PREFIX}<UTC time as YYYYMMDDTHHMMSSZ>{FILE_SUFFIX}, as `portcullis keys generate` writes them"
    )]
    BadName { path: PathBuf },
    #[error("{path}: not an Ed25519 PKCS#8 PEM private key")]
    BadKey { path: PathBuf },
    #[error("no signing key in {dir}: create one with `portcullis keys generate --dir {dir}`")]
    Empty { dir: PathBuf },
}

/// One key of the ring. The private half never leaves this struct.
#[derive(Clone)]
pub struct RingKey {
    kid: String,
    activates_at: DateTime<Utc>,
    public_x: String,
    encoding: EncodingKey,
    decoding: DecodingKey,
    /// Key for MACs of opaque tokens this server hands out (page tokens),
    /// derived from the private key so every replica holding it agrees.
    mac_key: [u8; 32],
}

impl std::fmt::Debug for RingKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RingKey")
            .field("kid", &self.kid)
            .field("activates_at", &self.activates_at)
            .finish_non_exhaustive()
    }
}

impl RingKey {
    fn new(key: &SigningKey, activates_at: DateTime<Utc>) -> Option<Self> {
        let public = key.verifying_key().to_bytes();
        let public_x = URL_SAFE_NO_PAD.encode(public);
        let der = key.to_pkcs8_der().ok()?;
        let mut mac = Sha256::new();
        mac.update(b"portcullis.mac_key.v1:");
        mac.update(key.to_bytes());
        Some(Self {
            kid: thumbprint(&public_x),
            activates_at,
            encoding: EncodingKey::from_ed_der(der.as_bytes()),
            decoding: DecodingKey::from_ed_der(&public),
            public_x,
            mac_key: mac.finalize().into(),
        })
    }

    pub fn kid(&self) -> &str {
        &self.kid
    }

    pub(crate) fn encoding(&self) -> &EncodingKey {
        &self.encoding
    }

    pub(crate) fn decoding(&self) -> &DecodingKey {
        &self.decoding
    }

    pub(crate) fn mac_key(&self) -> &[u8; 32] {
        &self.mac_key
    }
}

/// A key as published to callers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PublishedKey {
    pub kid: String,
    /// Raw public key, base64url without padding (the JWK `x`).
    pub public_key: String,
    /// When the key stops verifying; `None` while nothing newer is active.
    pub not_after: Option<DateTime<Utc>>,
}

/// The keys a server signs and verifies with.
#[derive(Clone, Debug)]
pub struct KeyRing {
    /// Sorted by activation time, oldest first.
    keys: Vec<RingKey>,
    /// How long a key keeps verifying after a newer one starts signing: the
    /// longest token lifetime, so no token outlives its key.
    retirement_grace: Duration,
}

impl KeyRing {
    /// Loads every `ed25519-*.pem` in `dir`.
    pub fn load_dir(dir: &Path, retirement_grace: Duration) -> Result<Self, KeyError> {
        let io = |cause| KeyError::Io {
            path: dir.to_path_buf(),
            cause,
        };
        let mut keys = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(io)? {
            let path = entry.map_err(io)?.path();
            let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
                continue;
            };
            if !name.ends_with(FILE_SUFFIX) {
                continue;
            }
            let activates_at =
                parse_file_time(name).ok_or_else(|| KeyError::BadName { path: path.clone() })?;
            let pem = std::fs::read_to_string(&path).map_err(|cause| KeyError::Io {
                path: path.clone(),
                cause,
            })?;
            warn_if_readable_by_others(&path);
            let signing = SigningKey::from_pkcs8_pem(&pem)
                .map_err(|_| KeyError::BadKey { path: path.clone() })?;
            keys.push(RingKey::new(&signing, activates_at).ok_or(KeyError::BadKey { path })?);
        }
        if keys.is_empty() {
            return Err(KeyError::Empty {
                dir: dir.to_path_buf(),
            });
        }
        Ok(Self::from_keys(keys, retirement_grace))
    }

    /// A single key that lives only in memory: for `dev` and tests.
    pub fn ephemeral(now: DateTime<Utc>, retirement_grace: Duration) -> Self {
        let signing = SigningKey::generate(&mut rand::rngs::OsRng);
        Self::from_keys(
            RingKey::new(&signing, now).into_iter().collect(),
            retirement_grace,
        )
    }

    /// Several in-memory keys activating at the given times: for tests of rotation.
    pub fn ephemeral_many(activations: &[DateTime<Utc>], retirement_grace: Duration) -> Self {
        let keys = activations
            .iter()
            .filter_map(|at| RingKey::new(&SigningKey::generate(&mut rand::rngs::OsRng), *at))
            .collect();
        Self::from_keys(keys, retirement_grace)
    }

    fn from_keys(mut keys: Vec<RingKey>, retirement_grace: Duration) -> Self {
        keys.sort_by_key(|k| k.activates_at);
        Self {
            keys,
            retirement_grace,
        }
    }

    /// The newest key already active at `now`.
    pub fn signing_key(&self, now: DateTime<Utc>) -> Option<&RingKey> {
        self.keys.iter().rev().find(|k| k.activates_at <= now)
    }

    /// The key named `kid`, if it has not retired by `now`.
    pub fn verifying_key(&self, kid: &str, now: DateTime<Utc>) -> Option<&RingKey> {
        let index = self.keys.iter().position(|k| k.kid == kid)?;
        match self.not_after(index, now) {
            Some(end) if end <= now => None,
            _ => Some(&self.keys[index]),
        }
    }

    /// When the key at `index` retires: the grace period after the next key
    /// that is already active started signing.
    fn not_after(&self, index: usize, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let successor = self
            .keys
            .get(index + 1..)?
            .iter()
            .find(|k| k.activates_at <= now)?;
        let grace = chrono::Duration::from_std(self.retirement_grace).ok()?;
        Some(successor.activates_at + grace)
    }

    /// Every key that verifies at `now` (current, retiring and not yet active).
    pub fn published(&self, now: DateTime<Utc>) -> Vec<PublishedKey> {
        (0..self.keys.len())
            .filter_map(|index| {
                let not_after = self.not_after(index, now);
                if not_after.is_some_and(|end| end <= now) {
                    return None;
                }
                let key = &self.keys[index];
                Some(PublishedKey {
                    kid: key.kid.clone(),
                    public_key: key.public_x.clone(),
                    not_after,
                })
            })
            .collect()
    }

    /// RFC 7517 JWK set of [`Self::published`].
    pub fn jwks_json(&self, now: DateTime<Utc>) -> String {
        let keys: Vec<serde_json::Value> = self
            .published(now)
            .into_iter()
            .map(|k| {
                serde_json::json!({
                    "kty": "OKP",
                    "crv": "Ed25519",
                    "alg": "EdDSA",
                    "use": "sig",
                    "kid": k.kid,
                    "x": k.public_key,
                })
            })
            .collect();
        serde_json::json!({ "keys": keys }).to_string()
    }
}

/// RFC 7638 thumbprint of an Ed25519 JWK: stable, derived from the key alone.
fn thumbprint(x: &str) -> String {
    let canonical = format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{x}"}}"#);
    URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes()))
}

fn parse_file_time(name: &str) -> Option<DateTime<Utc>> {
    let stamp = name.strip_prefix(FILE_PREFIX)?.strip_suffix(FILE_SUFFIX)?;
    NaiveDateTime::parse_from_str(stamp, FILE_TIME_FORMAT)
        .ok()
        .map(|t| t.and_utc())
}

fn warn_if_readable_by_others(path: &Path) {
    if let Ok(meta) = std::fs::metadata(path)
        && meta.permissions().mode() & 0o077 != 0
    {
        tracing::warn!(path = %path.display(), "signing key file is readable by group or others; chmod 600 it");
    }
}

/// Writes a new key that starts signing at `activates_at`, readable by its
/// owner only. Returns its path and kid.
pub fn generate_key_file(
    dir: &Path,
    activates_at: DateTime<Utc>,
) -> Result<(PathBuf, String), KeyError> {
    std::fs::create_dir_all(dir).map_err(|cause| KeyError::Io {
        path: dir.to_path_buf(),
        cause,
    })?;
    let path = dir.join(format!(
        "{FILE_PREFIX}{}{FILE_SUFFIX}",
        activates_at.format(FILE_TIME_FORMAT)
    ));
    let signing = SigningKey::generate(&mut rand::rngs::OsRng);
    let pem = signing
        .to_pkcs8_pem(LineEnding::LF)
        .map_err(|_| KeyError::BadKey { path: path.clone() })?;
    let io = |cause| KeyError::Io {
        path: path.clone(),
        cause,
    };
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .map_err(io)?;
    file.write_all(pem.as_bytes()).map_err(io)?;
    file.sync_all().map_err(io)?;
    let kid = RingKey::new(&signing, activates_at)
        .map(|k| k.kid)
        .ok_or_else(|| KeyError::BadKey { path: path.clone() })?;
    Ok((path, kid))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    const GRACE: Duration = Duration::from_secs(600);

    fn at(hour: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 1, 1, hour, 0, 0).unwrap()
    }

    #[test]
    fn the_newest_active_key_signs_and_a_future_key_waits() {
        let ring = KeyRing::ephemeral_many(&[at(1), at(2), at(4)], GRACE);
        let kids: Vec<String> = ring.keys.iter().map(|k| k.kid.clone()).collect();
        assert_eq!(ring.signing_key(at(3)).unwrap().kid, kids[1]);
        assert_eq!(ring.signing_key(at(5)).unwrap().kid, kids[2]);
        assert!(ring.signing_key(at(0)).is_none());
        // The future key is already published, so replicas can verify it
        // before anyone signs with it.
        assert_eq!(ring.published(at(3)).len(), 2);
        assert!(ring.verifying_key(&kids[2], at(3)).is_some());
    }

    #[test]
    fn a_superseded_key_verifies_until_the_grace_period_ends() {
        let ring = KeyRing::ephemeral_many(&[at(1), at(2)], GRACE);
        let old = ring.keys[0].kid.clone();
        let retires = at(2) + chrono::Duration::from_std(GRACE).unwrap();
        assert!(
            ring.verifying_key(&old, retires - chrono::Duration::seconds(1))
                .is_some()
        );
        assert!(ring.verifying_key(&old, retires).is_none());
        let published = ring.published(at(2));
        assert_eq!(published[0].not_after, Some(retires));
        assert_eq!(published[1].not_after, None);
        assert_eq!(ring.published(retires).len(), 1);
    }

    #[test]
    fn generated_key_files_are_private_and_load_back() {
        let dir = tempfile::tempdir().unwrap();
        let (path, kid) = generate_key_file(dir.path(), at(1)).unwrap();
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let (_, newer) = generate_key_file(dir.path(), at(2)).unwrap();
        let ring = KeyRing::load_dir(dir.path(), GRACE).unwrap();
        assert_eq!(ring.signing_key(at(3)).unwrap().kid, newer);
        assert!(ring.verifying_key(&kid, at(2)).is_some());
        let jwks: serde_json::Value = serde_json::from_str(&ring.jwks_json(at(2))).unwrap();
        assert_eq!(jwks["keys"].as_array().unwrap().len(), 2);
    }

    #[test]
    fn a_badly_named_or_broken_key_file_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("mykey.pem"), "x").unwrap();
        let error = KeyRing::load_dir(dir.path(), GRACE)
            .unwrap_err()
            .to_string();
        assert!(error.contains("mykey.pem"), "{error}");

        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("ed25519-20260101T000000Z.pem"), "not a key").unwrap();
        let error = KeyRing::load_dir(dir.path(), GRACE)
            .unwrap_err()
            .to_string();
        assert!(error.contains("not an Ed25519"), "{error}");

        let empty = tempfile::tempdir().unwrap();
        assert!(matches!(
            KeyRing::load_dir(empty.path(), GRACE),
            Err(KeyError::Empty { .. })
        ));
    }

    #[test]
    fn the_kid_is_the_rfc7638_thumbprint() {
        // RFC 8037 appendix A.3 example key.
        assert_eq!(
            thumbprint("11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"),
            "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"
        );
    }
}
