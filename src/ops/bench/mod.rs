//! The benchmark harness: a deterministic data set, a load generator, the
//! pgbench floor, and `bench run`, which measures them side by side.

pub mod cpu;
pub mod dataset;
pub mod filtered;
mod floor;
pub mod forward_auth;
pub mod load;
pub mod manifest;
pub mod report_tables;
pub mod run;
pub mod seed;
