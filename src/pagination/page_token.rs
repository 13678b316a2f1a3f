//! Opaque page tokens (`ListVisibleOrgNodes`, the holders, the searches):
//! the keyset cursor (the last id of the page), bound to the subject and filters of the query that
//! made it, and MACed with a key every replica derives from the signing key,
//! so a tampered or foreign token is refused and any replica accepts a
//! genuine one.

use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::tokens::KeyRing;
use crate::tokens::sealed;

/// NEVER CHANGE without a new version: tokens in clients' hands carry it.
const DOMAIN: &[u8] = b"portcullis.page_token.v1:";

/// What a page token is bound to: everything that selects the listing.
pub fn binding(parts: &[&[u8]]) -> [u8; 16] {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update((part.len() as u64).to_be_bytes());
        hasher.update(part);
    }
    let digest = hasher.finalize();
    let mut out = [0u8; 16];
    out.copy_from_slice(&digest[..16]);
    out
}

/// `None` only when no key is active (a server that cannot sign anything).
pub fn encode(
    keys: &KeyRing,
    after: Uuid,
    bound_to: [u8; 16],
    now: DateTime<Utc>,
) -> Option<String> {
    let mut payload = Vec::with_capacity(32);
    payload.extend_from_slice(after.as_bytes());
    payload.extend_from_slice(&bound_to);
    sealed::seal(keys, DOMAIN, &payload, now)
}

/// The cursor in `token`, if the token is genuine and bound to `bound_to`.
pub fn decode(keys: &KeyRing, token: &str, bound_to: [u8; 16], now: DateTime<Utc>) -> Option<Uuid> {
    let payload = sealed::open(keys, DOMAIN, token, now)?;
    if payload.len() != 32 || payload[16..] != bound_to {
        return None;
    }
    Uuid::from_slice(&payload[..16]).ok()
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)]
mod tests {
    use super::*;
    use crate::tokens::sealed::test_ring;

    #[test]
    fn a_token_round_trips_for_the_same_binding() {
        let keys = test_ring();
        let after = Uuid::new_v4();
        let bound = binding(&[b"tenant", b"user"]);
        let token = encode(&keys, after, bound, Utc::now()).unwrap();
        assert_eq!(decode(&keys, &token, bound, Utc::now()), Some(after));
    }

    #[test]
    fn a_token_of_another_query_or_subject_is_refused() {
        let keys = test_ring();
        let token = encode(&keys, Uuid::new_v4(), binding(&[b"a"]), Utc::now()).unwrap();
        assert_eq!(decode(&keys, &token, binding(&[b"b"]), Utc::now()), None);
    }

    #[test]
    fn a_tampered_token_is_refused() {
        let keys = test_ring();
        let bound = binding(&[b"a"]);
        let token = encode(&keys, Uuid::new_v4(), bound, Utc::now()).unwrap();
        let (head, tail) = token.split_at(token.len() / 2);
        let flipped = if tail.starts_with('A') { 'B' } else { 'A' };
        let tampered = format!("{head}{flipped}{}", &tail[1..]);
        assert_eq!(decode(&keys, &tampered, bound, Utc::now()), None);
        assert_eq!(decode(&keys, "garbage", bound, Utc::now()), None);
        assert_eq!(
            decode(&test_ring(), &token, bound, Utc::now()),
            None,
            "another server's key"
        );
    }
}
