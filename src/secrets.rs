//! High-entropy secrets that name their row: service secrets
//! (`pcs_<secret id>_<random>`), refresh tokens (`prt_<session id>_<random>`)
//! and invite tokens (`pci_<invitation id>_<random>`).
//! 256 random bits, shown once, stored as a hash; checking one is a
//! primary-key lookup and a constant-time comparison, never a scan.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use uuid::Uuid;

/// What a secret is for. NEVER CHANGE a prefix: secrets already handed out
/// carry it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SecretKind {
    ServiceSecret,
    RefreshToken,
    InviteToken,
}

impl SecretKind {
    fn prefix(self) -> &'static str {
        match self {
            Self::ServiceSecret => "pcs_",
            Self::RefreshToken => "prt_",
            Self::InviteToken => "pci_",
        }
    }
}

const PREFIX_LEN: usize = 4;
const ID_LEN: usize = 32; // simple (hex) UUID
const RANDOM_BYTES: usize = 32;
const RANDOM_LEN: usize = 43; // base64url of 32 bytes, unpadded
pub const SECRET_LEN: usize = PREFIX_LEN + ID_LEN + 1 + RANDOM_LEN;

/// A secret as presented by a caller: well-formed, not yet checked.
pub struct PresentedSecret {
    kind: SecretKind,
    id: Uuid,
    whole: SecretString,
}

impl std::fmt::Debug for PresentedSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PresentedSecret")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl PresentedSecret {
    /// `None` when the string cannot be a secret of this kind.
    pub fn parse(kind: SecretKind, raw: &str) -> Option<Self> {
        if raw.len() != SECRET_LEN || !raw.is_ascii() {
            return None;
        }
        let rest = raw.strip_prefix(kind.prefix())?;
        let (id, random) = rest.split_at(ID_LEN);
        let random = random.strip_prefix('_')?;
        if id
            .bytes()
            .any(|b| !b.is_ascii_hexdigit() || b.is_ascii_uppercase())
        {
            return None;
        }
        if URL_SAFE_NO_PAD.decode(random).ok()?.len() != RANDOM_BYTES {
            return None;
        }
        Some(Self {
            kind,
            id: Uuid::try_parse(id).ok()?,
            whole: SecretString::from(raw.to_owned()),
        })
    }

    /// The id of the row the secret names.
    pub fn id(&self) -> Uuid {
        self.id
    }

    /// What the database keeps for this secret.
    pub fn hash(&self) -> String {
        hash(self.kind, self.whole.expose_secret())
    }

    /// Whether this secret hashes to `stored`, in constant time.
    pub fn matches(&self, stored: &str) -> bool {
        self.hash().as_bytes().ct_eq(stored.as_bytes()).into()
    }
}

/// A freshly generated secret: its id, the string to show once, its hash.
pub struct NewSecret {
    pub id: Uuid,
    pub shown_once: SecretString,
    pub hash: String,
}

/// A new secret naming the row `id`.
pub fn generate(kind: SecretKind, id: Uuid) -> NewSecret {
    let mut random = [0u8; RANDOM_BYTES];
    rand::rngs::OsRng.fill_bytes(&mut random);
    let whole = format!(
        "{}{}_{}",
        kind.prefix(),
        id.simple(),
        URL_SAFE_NO_PAD.encode(random)
    );
    NewSecret {
        id,
        hash: hash(kind, &whole),
        shown_once: SecretString::from(whole),
    }
}

/// What the database keeps (lower-case hex, as the `*_hash_text` columns
/// require). A fast hash is right here: the input carries 256 random bits,
/// so there is nothing to brute-force.
fn hash(kind: SecretKind, whole: &str) -> String {
    let mut hasher = Sha256::new();
    hasher.update(b"portcullis.secret.v1:");
    hasher.update(kind.prefix().as_bytes());
    hasher.update(whole.as_bytes());
    format!("{:x}", hasher.finalize())
}

/// A hash no secret has, so an unknown secret id costs the same comparison.
pub fn unmatched_hash() -> String {
    "0".repeat(64)
}

#[cfg(test)]
mod tests {
    use super::*;

    const KIND: SecretKind = SecretKind::ServiceSecret;

    fn new() -> NewSecret {
        generate(KIND, Uuid::new_v4())
    }

    #[test]
    fn a_generated_secret_parses_and_matches_its_hash() {
        let new = new();
        let presented = PresentedSecret::parse(KIND, new.shown_once.expose_secret()).unwrap();
        assert_eq!(presented.id(), new.id);
        assert!(presented.matches(&new.hash));
        assert!(!presented.matches(&self::new().hash));
    }

    #[test]
    fn malformed_secrets_do_not_parse() {
        let good = new().shown_once.expose_secret().to_owned();
        assert!(PresentedSecret::parse(KIND, "").is_none());
        assert!(PresentedSecret::parse(KIND, &good[1..]).is_none());
        assert!(PresentedSecret::parse(KIND, &good.replacen("pcs_", "pcx_", 1)).is_none());
        assert!(PresentedSecret::parse(KIND, &good.to_uppercase()).is_none());
        assert!(PresentedSecret::parse(KIND, &format!("{good}x")).is_none());
    }

    #[test]
    fn a_secret_of_one_kind_is_not_one_of_another() {
        let good = new().shown_once.expose_secret().to_owned();
        assert!(PresentedSecret::parse(SecretKind::RefreshToken, &good).is_none());
    }

    #[test]
    fn debug_does_not_show_the_secret() {
        let new = new();
        let presented = PresentedSecret::parse(KIND, new.shown_once.expose_secret()).unwrap();
        let shown = format!("{presented:?} {:?}", new.shown_once);
        assert!(!shown.contains(&new.shown_once.expose_secret()[PREFIX_LEN + ID_LEN + 1..]));
    }
}
