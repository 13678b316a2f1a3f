//! Opaque strings only this service (and its replicas) can make:
//! `kid.payload.tag`, base64url, the tag an HMAC-SHA256 of the payload under
//! a key every replica derives from the signing key, separated by a domain
//! per kind of string so one kind never passes for another.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::KeyRing;

type HmacSha256 = Hmac<Sha256>;

const TAG_LEN: usize = 16;

fn mac(key: &[u8; 32], domain: &[u8], kid: &str, payload: &[u8]) -> Option<HmacSha256> {
    let mut mac = HmacSha256::new_from_slice(key).ok()?;
    mac.update(domain);
    mac.update(kid.as_bytes());
    mac.update(b".");
    mac.update(payload);
    Some(mac)
}

/// `payload` sealed under the newest signing key; `None` only when no key is
/// active (a server that cannot sign anything).
pub fn seal(keys: &KeyRing, domain: &[u8], payload: &[u8], now: DateTime<Utc>) -> Option<String> {
    let key = keys.signing_key(now)?;
    let tag = mac(key.mac_key(), domain, key.kid(), payload)?
        .finalize()
        .into_bytes();
    Some(format!(
        "{}.{}.{}",
        key.kid(),
        URL_SAFE_NO_PAD.encode(payload),
        URL_SAFE_NO_PAD.encode(&tag[..TAG_LEN])
    ))
}

/// The payload of `sealed`, if this service sealed it for `domain` with a key
/// not yet retired at `now`.
pub fn open(keys: &KeyRing, domain: &[u8], sealed: &str, now: DateTime<Utc>) -> Option<Vec<u8>> {
    if sealed.len() > 200 {
        return None;
    }
    let mut parts = sealed.split('.');
    let (kid, payload, tag) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    let key = keys.verifying_key(kid, now)?;
    let payload = URL_SAFE_NO_PAD.decode(payload).ok()?;
    let tag = URL_SAFE_NO_PAD.decode(tag).ok()?;
    if tag.len() != TAG_LEN {
        return None;
    }
    mac(key.mac_key(), domain, kid, &payload)?
        .verify_truncated_left(&tag)
        .ok()?;
    Some(payload)
}

/// A key ring of one fresh key, active since an hour ago: for unit tests.
#[cfg(test)]
#[allow(clippy::disallowed_methods)]
pub(crate) fn test_ring() -> KeyRing {
    KeyRing::ephemeral(
        Utc::now() - chrono::Duration::hours(1),
        std::time::Duration::from_secs(60),
    )
}
