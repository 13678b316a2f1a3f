//! The benchmark data set: its shape per profile, and the deterministic ids
//! that the generator (in SQL), the load generator and the pgbench floor
//! all derive the same way: `md5('bench/<kind>/<tenant>[/<index>]')::uuid` (slashes, not
//! colons: pgbench would read `:name` inside a literal as a variable).

use md5::{Digest, Md5};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Profile {
    /// 10 tenants × (11,111 nodes in a 5-level tree, 10,000 users, 20 roles,
    /// 2 assignments per user); 200 capabilities, 30 per role.
    Medium,
    /// One tenant of 1,000,000 nodes and 100,000 users.
    Large,
}

/// Sizes of a profile.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shape {
    pub tenants: u32,
    pub nodes_per_tenant: u32,
    pub users_per_tenant: u32,
    pub roles_per_tenant: u32,
    pub capabilities: u32,
    pub capabilities_per_role: u32,
    /// Users 0..n of each tenant get a password identity.
    pub password_users_per_tenant: u32,
}

impl Profile {
    pub fn shape(self) -> Shape {
        match self {
            Self::Medium => Shape {
                tenants: 10,
                nodes_per_tenant: 11_111,
                users_per_tenant: 10_000,
                roles_per_tenant: 20,
                capabilities: 200,
                capabilities_per_role: 30,
                password_users_per_tenant: 10,
            },
            Self::Large => Shape {
                tenants: 1,
                nodes_per_tenant: 1_000_000,
                users_per_tenant: 100_000,
                roles_per_tenant: 20,
                capabilities: 200,
                capabilities_per_role: 30,
                password_users_per_tenant: 10,
            },
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Medium => "medium",
            Self::Large => "large",
        }
    }
}

fn md5_uuid(text: &str) -> Uuid {
    let digest = Md5::digest(text.as_bytes());
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest);
    Uuid::from_bytes(bytes)
}

pub fn tenant_id(tenant: u32) -> Uuid {
    md5_uuid(&format!("bench/tenant/{tenant}"))
}

pub fn node_id(tenant: u32, node: u32) -> Uuid {
    md5_uuid(&format!("bench/node/{tenant}/{node}"))
}

pub fn user_id(tenant: u32, user: u32) -> Uuid {
    md5_uuid(&format!("bench/user/{tenant}/{user}"))
}

pub fn capability_key(capability: u32) -> String {
    format!("bench.cap_{capability}")
}

pub fn user_email(tenant: u32, user: u32) -> String {
    format!("bench-{user}@t{tenant}.example")
}

/// A password login of a bench user that has a password.
pub fn password_login(tenant: u32, user: u32) -> portcullis::proto::v1::AuthenticateRequest {
    use portcullis::proto::v1 as pb;
    pb::AuthenticateRequest {
        tenant_id: tenant_id(tenant).to_string(),
        method: Some(pb::authenticate_request::Method::Password(
            pb::PasswordCredentials {
                login: Some(pb::password_credentials::Login::Email(user_email(
                    tenant, user,
                ))),
                password: BENCH_PASSWORD.into(),
            },
        )),
    }
}

/// The password of every bench user that has one.
pub const BENCH_PASSWORD: &str = "bench-password-for-load";
pub const BENCH_SERVICE_KEY: &str = "bench-loader";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_match_postgres_md5_casts() {
        // SELECT md5('bench/tenant/0')::uuid
        assert_eq!(
            tenant_id(0).to_string(),
            format!("{:x}", Md5::digest(b"bench/tenant/0"))
                .chars()
                .enumerate()
                .flat_map(|(i, c)| if [8, 12, 16, 20].contains(&i) {
                    vec!['-', c]
                } else {
                    vec![c]
                })
                .collect::<String>()
        );
    }
}
