//! Transport: tonic services. Each file parses requests, calls the domain and
//! maps its errors through [`status`]; no business logic lives here.

pub mod authentication;
pub mod authorization;
pub mod health;
pub mod service_credentials;
pub mod status;
