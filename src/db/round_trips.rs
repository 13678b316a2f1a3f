//! Round trips to PostgreSQL, counted where this process sends: each time
//! a connection flushes what it wrote. Statements pipelined together leave
//! in one flush and count once; a statement awaited before the next is
//! sent counts once each. Exported as `portcullis_db_round_trips_total`;
//! the bench divides it by the requests of a window.

use std::sync::atomic::{AtomicU64, Ordering};

static SENT: AtomicU64 = AtomicU64::new(0);

/// One more flush of written messages, on any connection.
pub(super) fn sent() {
    SENT.fetch_add(1, Ordering::Relaxed);
}

/// Flushes of written messages since the process started, on every
/// connection of every pool.
pub fn total() -> u64 {
    SENT.load(Ordering::Relaxed)
}
