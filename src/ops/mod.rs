//! Operator tools: they never serve a request. Provisioning roles and
//! databases, migrations, finding or starting a PostgreSQL cluster, the
//! demo data. (The benchmark's load generator is a binary of its own,
//! `tests/load`.) They connect as the owner or a superuser
//! through [`admin::AdminConnection`]; requests go through [`crate::db`].

// Operator tools run at the edge, like the command line.
#![allow(clippy::disallowed_methods)]

pub mod admin;
pub mod cluster;
pub mod migrate;
pub mod provision;
pub mod replicated;
pub mod seed;
