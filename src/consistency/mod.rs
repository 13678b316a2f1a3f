//! How fresh an answer must be, and how fresh it was.
//!
//! Every write a request makes ends at a point in the primary's write-ahead
//! log ([`Lsn`]); the request's answer carries that point as an opaque,
//! MACed [token](token). A later read that presents the token is answered by
//! a replica that has replayed past it, or by the primary: never by one that
//! cannot prove it has (the "new enemy" problem). A read may instead bound
//! its staleness, or ask for the primary outright ([`Requirement`]). The
//! edges parse the requirement and report what an answer was evaluated at
//! ([`layer`]); the database door routes by it (`db::replicas`).

pub mod layer;
mod requirement;
mod resolve;
pub mod scope;
pub mod token;

pub use requirement::{ConsistencyError, Requirement, Stated};
pub use resolve::resolve;

/// A position in the primary's write-ahead log, as PostgreSQL's `pg_lsn`
/// (a byte offset), ordered as the log is.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Lsn(pub u64);

impl std::fmt::Display for Lsn {
    /// PostgreSQL's own notation, `16/B374D848`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:X}/{:X}", self.0 >> 32, self.0 & 0xFFFF_FFFF)
    }
}

/// The headers of the consistency protocol, on every edge.
pub mod headers {
    /// Request: `fully_consistent`, `max_staleness=<duration>` and/or
    /// `at_least_as_fresh=<token>`, comma-separated; all must hold.
    pub const CONSISTENCY: &str = "x-consistency";
    /// Request: a token the answer must be at least as fresh as. Response:
    /// the point the answer reflects (a write's commit, or what a read was
    /// evaluated at), to present on a later request.
    pub const TOKEN: &str = "x-consistency-token";
    /// Response, for an answer from a replica: how far behind the primary
    /// it may have been, at most (`250ms`).
    pub const STALENESS: &str = "x-consistency-staleness";
    /// Response: `primary` or the replica (`replica-1`, …) that answered.
    pub const SERVED_BY: &str = "x-consistency-served-by";
}
