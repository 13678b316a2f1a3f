//! Keyset page tokens for listings ordered by a time and an id: a page
//! costs the same however deep it is.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{AdminError, Item};

/// Where the next page starts: just after the row at (`at`, `id`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cursor {
    pub at: DateTime<Utc>,
    pub id: Uuid,
}

impl Cursor {
    pub fn new(at: DateTime<Utc>, id: Uuid) -> Self {
        Self { at, id }
    }

    pub fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(format!("{}|{}", self.at.timestamp_micros(), self.id))
    }

    /// A cursor only positions a read inside the caller's own tenant, so it
    /// needs no MAC; a malformed one is refused.
    pub fn decode(token: &str) -> Result<Self, AdminError> {
        let malformed =
            || AdminError::Invalid(Item::PageToken, "not a token of this listing".into());
        let bytes = URL_SAFE_NO_PAD.decode(token).map_err(|_| malformed())?;
        let text = String::from_utf8(bytes).map_err(|_| malformed())?;
        let (micros, id) = text.split_once('|').ok_or_else(malformed)?;
        Ok(Self {
            at: micros
                .parse()
                .ok()
                .and_then(DateTime::from_timestamp_micros)
                .ok_or_else(malformed)?,
            id: Uuid::try_parse(id).map_err(|_| malformed())?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cursor_survives_its_round_trip_and_garbage_is_refused() {
        let cursor = Cursor::new(
            DateTime::from_timestamp_micros(1_795_000_000_123_456).unwrap(),
            Uuid::new_v4(),
        );
        assert_eq!(Cursor::decode(&cursor.encode()).unwrap(), cursor);
        for bad in ["", "!!", "bm90IGEgY3Vyc29y"] {
            assert!(Cursor::decode(bad).is_err(), "{bad}");
        }
    }
}
