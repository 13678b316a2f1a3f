//! What a Portcullis access token says.

use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenType {
    User,
    Service,
}

/// JWT claims. `sub` is the user or service id, `tid` its tenant (absent
/// for a service that may act in any tenant), `sid` the session the token
/// belongs to (revocation works per session).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    pub iss: String,
    pub aud: String,
    pub sub: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tid: Option<String>,
    pub sid: String,
    pub exp: i64,
    pub iat: i64,
    pub nbf: i64,
    pub jti: String,
    pub typ: TokenType,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub perms: Vec<String>,
    /// Claims for other verifiers, such as PostgREST's role claim.
    #[serde(flatten, default)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}
