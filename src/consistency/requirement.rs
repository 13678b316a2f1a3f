//! What a read asks of its answer's freshness.

use std::time::Duration;

use chrono::{DateTime, Utc};

use super::{Lsn, headers, token};
use crate::tokens::KeyRing;

/// How fresh an answer must be; every part that is set must hold. A
/// replica qualifies when it has replayed past `at_least` and is behind
/// the primary by no more than `max_staleness`; `fully_consistent` asks for
/// the primary itself. The primary satisfies every requirement.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Requirement {
    pub fully_consistent: bool,
    pub at_least: Option<Lsn>,
    pub max_staleness: Option<Duration>,
}

/// A consistency header that cannot be honoured, naming the header.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{field}: {problem}")]
pub struct ConsistencyError {
    pub field: &'static str,
    pub problem: String,
}

impl ConsistencyError {
    fn new(field: &'static str, problem: impl Into<String>) -> Self {
        Self {
            field,
            problem: problem.into(),
        }
    }
}

/// A request's requirement as its headers give it, before the database
/// has placed the tokens that name a transaction
/// ([`token::TRANSACTION_KIND`], from `auth.consistency_token()`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stated {
    pub requirement: Requirement,
    /// Each with the header it came in.
    pub transactions: Vec<(&'static str, String)>,
}

impl Requirement {
    pub const FULLY_CONSISTENT: Self = Self {
        fully_consistent: true,
        at_least: None,
        max_staleness: None,
    };

    pub fn max_staleness(bound: Duration) -> Self {
        Self {
            max_staleness: Some(bound),
            ..Self::default()
        }
    }

    /// Both this and `other`.
    pub fn and(self, other: Self) -> Self {
        Self {
            fully_consistent: self.fully_consistent || other.fully_consistent,
            at_least: self.at_least.max(other.at_least),
            max_staleness: match (self.max_staleness, other.max_staleness) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            },
        }
    }

    /// The server's default (`--default-consistency`): `fully_consistent`
    /// or `max_staleness=<duration>`.
    pub fn parse_default(value: &str) -> Result<Self, String> {
        match value.trim() {
            "fully_consistent" => Ok(Self::FULLY_CONSISTENT),
            other => match other.strip_prefix("max_staleness=") {
                Some(bound) => humantime::parse_duration(bound)
                    .map(Self::max_staleness)
                    .map_err(|e| format!("max_staleness: {e}")),
                None => Err("give fully_consistent or max_staleness=<duration>".into()),
            },
        }
    }

    /// A request's requirement from its headers: `x-consistency` when given
    /// (else the server's `default`), and the token of `x-consistency-token`
    /// if any. Tokens this service issued are checked against `keys`.
    pub fn from_headers(
        consistency: Option<&str>,
        token_header: Option<&str>,
        default: Self,
        keys: &KeyRing,
        now: DateTime<Utc>,
    ) -> Result<Stated, ConsistencyError> {
        let mut stated = match consistency {
            Some(value) => Self::parse_header(value, keys, now)?,
            None => Stated {
                requirement: default,
                transactions: Vec::new(),
            },
        };
        if let Some(token) = token_header {
            stated.add_token(headers::TOKEN, token, keys, now)?;
        }
        Ok(stated)
    }

    /// `x-consistency`'s comma-separated parts.
    pub fn parse_header(
        value: &str,
        keys: &KeyRing,
        now: DateTime<Utc>,
    ) -> Result<Stated, ConsistencyError> {
        const FIELD: &str = headers::CONSISTENCY;
        let mut stated = Stated::default();
        for part in value.split(',').map(str::trim) {
            let (name, argument) = part.split_once('=').unwrap_or((part, ""));
            if name.trim() == "at_least_as_fresh" {
                stated.add_token(FIELD, argument, keys, now)?;
                continue;
            }
            stated.requirement = stated
                .requirement
                .and(match (name.trim(), argument.trim()) {
                    ("fully_consistent", "") => Self::FULLY_CONSISTENT,
                    ("max_staleness", bound) => {
                        let bound = humantime::parse_duration(bound).map_err(|e| {
                            ConsistencyError::new(
                                FIELD,
                                format!("max_staleness: {e} (say 500ms or 2s)"),
                            )
                        })?;
                        Self::max_staleness(bound)
                    }
                    _ => {
                        return Err(ConsistencyError::new(
                            FIELD,
                            format!(
                                "unknown requirement {part:?}: give fully_consistent, \
                             max_staleness=<duration> or at_least_as_fresh=<token>"
                            ),
                        ));
                    }
                });
        }
        Ok(stated)
    }
}

impl Stated {
    /// A token from `field`: a point this service issued, checked here, or
    /// a transaction's, for the database to place.
    fn add_token(
        &mut self,
        field: &'static str,
        value: &str,
        keys: &KeyRing,
        now: DateTime<Utc>,
    ) -> Result<(), ConsistencyError> {
        let value = value.trim();
        if value.starts_with(token::TRANSACTION_KIND) {
            self.transactions.push((field, value.to_owned()));
            return Ok(());
        }
        let point = token::decode(keys, value, now).ok_or_else(|| not_issued(field))?;
        self.requirement.at_least = self.requirement.at_least.max(Some(point));
        Ok(())
    }
}

/// The error for a token this service did not issue, naming its header.
pub fn not_issued(field: &'static str) -> ConsistencyError {
    ConsistencyError::new(
        field,
        "not a consistency token this service issued (or its key has retired)",
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::disallowed_methods)]
mod tests {
    use super::*;
    use crate::tokens::sealed::test_ring;

    #[test]
    fn requirements_in_one_header_all_hold() {
        let keys = test_ring();
        let token = token::encode(&keys, Lsn(7), Utc::now()).unwrap();
        let parsed = Requirement::parse_header(
            &format!("max_staleness=2s, at_least_as_fresh={token}"),
            &keys,
            Utc::now(),
        )
        .unwrap()
        .requirement;
        assert_eq!(
            parsed,
            Requirement {
                fully_consistent: false,
                at_least: Some(Lsn(7)),
                max_staleness: Some(Duration::from_secs(2)),
            }
        );
    }

    #[test]
    fn a_token_alone_keeps_the_servers_default_bound() {
        let keys = test_ring();
        let token = token::encode(&keys, Lsn(9), Utc::now()).unwrap();
        let default = Requirement::max_staleness(Duration::from_secs(1));
        let parsed = Requirement::from_headers(None, Some(&token), default, &keys, Utc::now())
            .unwrap()
            .requirement;
        assert_eq!(parsed.at_least, Some(Lsn(9)));
        assert_eq!(parsed.max_staleness, Some(Duration::from_secs(1)));
    }

    #[test]
    fn a_transactions_token_is_left_for_the_database_to_place() {
        let keys = test_ring();
        let stated = Requirement::parse_header(
            "max_staleness=2s, at_least_as_fresh=cts1.k1.1234.abcd",
            &keys,
            Utc::now(),
        )
        .unwrap();
        assert_eq!(
            stated.transactions,
            vec![("x-consistency", "cts1.k1.1234.abcd".to_owned())]
        );
        assert_eq!(stated.requirement.at_least, None);
    }

    #[test]
    fn a_bad_requirement_names_its_header() {
        let keys = test_ring();
        let error = Requirement::parse_header("eventually", &keys, Utc::now()).unwrap_err();
        assert_eq!(error.field, "x-consistency");
        let error = Requirement::from_headers(
            None,
            Some("ct1.forged"),
            Requirement::default(),
            &keys,
            Utc::now(),
        )
        .unwrap_err();
        assert_eq!(error.field, "x-consistency-token");
        assert!(Requirement::parse_header("max_staleness=soon", &keys, Utc::now()).is_err());
    }

    #[test]
    fn the_default_is_the_primary_or_a_bound() {
        assert_eq!(
            Requirement::parse_default("fully_consistent"),
            Ok(Requirement::FULLY_CONSISTENT)
        );
        assert_eq!(
            Requirement::parse_default("max_staleness=250ms"),
            Ok(Requirement::max_staleness(Duration::from_millis(250)))
        );
        assert!(Requirement::parse_default("whenever").is_err());
    }
}
