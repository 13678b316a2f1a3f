//! One test binary (one link step) for the whole suite; each module is a
//! specification of one area. Every test runs against real PostgreSQL in a
//! database of its own.

// Tests choose their times, often from the clock.
#![allow(clippy::disallowed_methods)]
// A failed expectation in a test or its harness should panic loudly.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

mod api;
mod database;
mod gateways;
mod operations;
mod reference;
