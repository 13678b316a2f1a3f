//! Consistency tokens: `ct1.` then a [sealed](crate::tokens::sealed) payload
//! naming a point in the primary's write-ahead log (and `cts1.`, made in SQL,
//! naming a transaction). The prefix is the kind:
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

/// The token for `lsn`; `None` only when no key is active.
pub fn encode(keys: &KeyRing, lsn: Lsn, now: DateTime<Utc>) -> Option<String> {
    sealed::seal(keys, DOMAIN, &lsn.0.to_be_bytes(), now).map(|sealed| format!("{KIND}{sealed}"))
}

/// The token of the current request's point so far ([`super::scope::token`]),
/// or empty: for a response field beside the header.
pub fn of_this_request(keys: &KeyRing, now: DateTime<Utc>) -> String {
    super::scope::token(|lsn| encode(keys, lsn, now)).unwrap_or_default()
}

/// The point `token` names, if this service issued it with a key not yet
/// retired at `now`.
pub fn decode(keys: &KeyRing, token: &str, now: DateTime<Utc>) -> Option<Lsn> {
    let sealed = token.strip_prefix(KIND)?;
    let payload: [u8; 8] = sealed::open(keys, DOMAIN, sealed, now)?.try_into().ok()?;
    Some(Lsn(u64::from_be_bytes(payload)))
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
    fn a_page_token_is_not_a_consistency_token() {
        let keys = test_ring();
        let page =
            crate::pagination::page_token::encode(&keys, uuid::Uuid::new_v4(), [0; 16], Utc::now())
                .unwrap();
        assert_eq!(decode(&keys, &format!("ct1.{page}"), Utc::now()), None);
    }
}
