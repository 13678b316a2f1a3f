//! Consistency tokens: `ct1.` then a [sealed](crate::tokens::sealed) payload
//! naming a point in the primary's write-ahead log (and `cts1.`, made in SQL,
//! naming a transaction, and `ctw1.`, a change stream's, naming a point and
//! the position of a change in the stream). The prefix is the kind:
//! an engine with another clock (a distributed database's hybrid time, say)
//! would issue another kind, and a server refuses kinds it does not know.

use chrono::{DateTime, Utc};

use super::Lsn;
use crate::tokens::{KeyRing, sealed};

/// NEVER CHANGE without a new kind: tokens in clients' hands carry it.
const KIND: &str = "ct1.";
/// The kind `auth.consistency_token()` makes in SQL: it names a
/// transaction, which only the database can place in its log, so the
/// database checks and places it (`auth.consistency_token_point`).
pub const TRANSACTION_KIND: &str = "cts1.";
const DOMAIN: &[u8] = b"portcullis.consistency_token.v1:";
/// NEVER CHANGE without a new kind: the change stream's tokens, a point and
/// a position in the stream (`Watch` resumes after it).
const CHANGE_KIND: &str = "ctw1.";
const CHANGE_DOMAIN: &[u8] = b"portcullis.change_token.v1:";

/// The token for `lsn`; `None` only when no key is active.
pub fn encode(keys: &KeyRing, lsn: Lsn, now: DateTime<Utc>) -> Option<String> {
    sealed::seal(keys, DOMAIN, &lsn.0.to_be_bytes(), now).map(|sealed| format!("{KIND}{sealed}"))
}

/// The token of the current request's point so far ([`super::scope::token`]),
/// or empty: for a response field beside the header.
pub fn of_this_request(keys: &KeyRing, now: DateTime<Utc>) -> String {
    super::scope::token(|lsn| encode(keys, lsn, now)).unwrap_or_default()
}

/// The point `token` names (either kind this module makes), if this
/// service issued it with a key not yet retired at `now`.
pub fn decode(keys: &KeyRing, token: &str, now: DateTime<Utc>) -> Option<Lsn> {
    if token.starts_with(CHANGE_KIND) {
        return decode_change(keys, token, now).map(|(lsn, _)| lsn);
    }
    let sealed = token.strip_prefix(KIND)?;
    let payload: [u8; 8] = sealed::open(keys, DOMAIN, sealed, now)?.try_into().ok()?;
    Some(Lsn(u64::from_be_bytes(payload)))
}

/// A change stream's token: `lsn` is past the commit of the change at
/// `position` (and of every change before it).
pub fn encode_change(
    keys: &KeyRing,
    lsn: Lsn,
    position: u64,
    now: DateTime<Utc>,
) -> Option<String> {
    let mut payload = [0u8; 16];
    payload[..8].copy_from_slice(&lsn.0.to_be_bytes());
    payload[8..].copy_from_slice(&position.to_be_bytes());
    sealed::seal(keys, CHANGE_DOMAIN, &payload, now).map(|sealed| format!("{CHANGE_KIND}{sealed}"))
}

/// The point and the stream position a change stream's token names.
pub fn decode_change(keys: &KeyRing, token: &str, now: DateTime<Utc>) -> Option<(Lsn, u64)> {
    let sealed = token.strip_prefix(CHANGE_KIND)?;
    let payload: [u8; 16] = sealed::open(keys, CHANGE_DOMAIN, sealed, now)?
        .try_into()
        .ok()?;
    let (lsn, position) = payload.split_at(8);
    Some((
        Lsn(u64::from_be_bytes(lsn.try_into().ok()?)),
        u64::from_be_bytes(position.try_into().ok()?),
    ))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::disallowed_methods)]
mod tests {
    use super::*;
    use crate::tokens::sealed::test_ring;

    #[test]
    fn a_token_names_the_point_it_was_made_for() {
        let keys = test_ring();
        let token = encode(&keys, Lsn(0x16_B374_D848), Utc::now()).unwrap();
        assert!(token.starts_with("ct1."));
        assert_eq!(decode(&keys, &token, Utc::now()), Some(Lsn(0x16_B374_D848)));
    }

    #[test]
    fn a_tampered_foreign_or_unknown_kind_of_token_is_refused() {
        let keys = test_ring();
        let token = encode(&keys, Lsn(42), Utc::now()).unwrap();
        let forged = token.replace(
            &token[token.len() - 4..],
            if token.ends_with("AAAA") {
                "BBBB"
            } else {
                "AAAA"
            },
        );
        assert_eq!(decode(&keys, &forged, Utc::now()), None);
        assert_eq!(
            decode(&test_ring(), &token, Utc::now()),
            None,
            "another server's key"
        );
        assert_eq!(
            decode(&keys, &token.replacen("ct1.", "ct2.", 1), Utc::now()),
            None
        );
        assert_eq!(decode(&keys, "garbage", Utc::now()), None);
    }

    #[test]
    fn a_change_token_names_its_position_and_serves_as_a_consistency_token() {
        let keys = test_ring();
        let token = encode_change(&keys, Lsn(0x16_B374_D848), 4711, Utc::now()).unwrap();
        assert!(token.starts_with("ctw1."));
        assert_eq!(
            decode_change(&keys, &token, Utc::now()),
            Some((Lsn(0x16_B374_D848), 4711))
        );
        assert_eq!(decode(&keys, &token, Utc::now()), Some(Lsn(0x16_B374_D848)));
        let plain = encode(&keys, Lsn(42), Utc::now()).unwrap();
        assert_eq!(decode_change(&keys, &plain, Utc::now()), None);
        assert_eq!(
            decode_change(&keys, &plain.replacen("ct1.", "ctw1.", 1), Utc::now()),
            None,
            "another kind's payload under this kind's prefix"
        );
    }

    #[test]
    fn a_page_token_is_not_a_consistency_token() {
        let keys = test_ring();
        let page =
            crate::pagination::page_token::encode(&keys, uuid::Uuid::new_v4(), [0; 16], Utc::now())
                .unwrap();
        assert_eq!(decode(&keys, &format!("ct1.{page}"), Utc::now()), None);
    }
}
