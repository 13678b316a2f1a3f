//! Access tokens: EdDSA JWTs signed with the key ring, verified locally, and
//! refused once their session is revoked.

mod claims;
mod issuer;
pub mod keys;
mod principal;
pub mod revocation;
pub mod sealed;

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use jsonwebtoken::{Algorithm, Header, Validation};
use secrecy::SecretString;
use sha2::{Digest, Sha256};
use uuid::Uuid;

pub use claims::{Claims, TokenType};
pub use issuer::{keep_recording_issuer, record_issuer};
pub use keys::KeyRing;
pub use principal::{Principal, ServicePrincipal, UserPrincipal};
pub use revocation::RevocationList;

/// Tokens longer than this are refused before any parsing.
pub const MAX_TOKEN_LEN: usize = 4096;

/// Why a token is not accepted. Callers see one message for all of these.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("malformed token")]
    Malformed,
    #[error("unknown or retired signing key")]
    UnknownKey,
    #[error("bad signature or algorithm")]
    BadSignature,
    #[error("wrong issuer or audience")]
    WrongAudience,
    #[error("expired")]
    Expired,
    #[error("not yet valid")]
    NotYetValid,
    #[error("revoked")]
    Revoked,
    #[error("revocation state unknown")]
    RevocationUnknown,
    #[error("no signing key is active")]
    NoSigningKey,
}

/// What to put in a new token.
#[derive(Clone, Debug)]
pub struct NewToken {
    pub typ: TokenType,
    pub subject: Uuid,
    pub tenant: Option<Uuid>,
    pub session: Uuid,
    pub permissions: Vec<String>,
    pub lifetime: Duration,
    /// A service token's service key (its PostgREST role is named for it).
    pub service_key: Option<String>,
}

/// What a token for the upstream behind a gateway carries beside the
/// user's identity: the one request it was minted for.
#[derive(Clone, Debug)]
pub struct UpstreamGrant<'a> {
    /// The catalogue's service: the token's audience, so Portcullis itself
    /// (whose audience is its own) refuses it.
    pub service: &'a str,
    pub method: &'a str,
    pub path: &'a str,
    pub capability: &'a str,
    pub org_node_id: Uuid,
    pub lifetime: Duration,
}

/// The longest an upstream token may live.
pub const MAX_UPSTREAM_TOKEN_LIFETIME: Duration = Duration::from_secs(5 * 60);

/// A signed token, shown once to its holder.
pub struct IssuedToken {
    pub token: SecretString,
    pub expires_at: DateTime<Utc>,
    /// SHA-256 of the token: what the database keeps.
    pub hash: String,
}

/// The largest clock-skew leeway accepted in configuration. A revoked
/// session stays on the revocation list this long past its expiry, so a
/// token accepted inside the leeway is still refused once revoked.
pub const MAX_LEEWAY: Duration = Duration::from_secs(5 * 60);

#[derive(Clone, Debug)]
pub struct TokenSettings {
    pub issuer: String,
    pub audience: String,
    /// Clock skew tolerated on `exp` and `nbf`.
    pub leeway: Duration,
    /// The database role PostgREST switches to for a token's holder; no
    /// such claim when `None`.
    pub role_claim: Option<RoleClaim>,
}

impl Default for TokenSettings {
    fn default() -> Self {
        Self {
            issuer: "portcullis".into(),
            audience: "portcullis".into(),
            leeway: Duration::from_secs(30),
            role_claim: Some(RoleClaim::default()),
        }
    }
}

/// The claim PostgREST reads to choose the database role (its
/// `jwt-role-claim-key`): users get `user_role`, a service
/// `service_role_prefix` followed by its key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RoleClaim {
    pub name: String,
    pub user_role: String,
    pub service_role_prefix: String,
}

impl Default for RoleClaim {
    fn default() -> Self {
        Self {
            name: "role".into(),
            user_role: "api_user".into(),
            service_role_prefix: "api_service_".into(),
        }
    }
}

/// Claims Portcullis writes itself: a role claim may not be named so.
pub const RESERVED_CLAIMS: [&str; 15] = [
    "iss",
    "aud",
    "sub",
    "tid",
    "sid",
    "exp",
    "iat",
    "nbf",
    "jti",
    "typ",
    "perms",
    // An upstream token's (`issue_upstream`).
    "req_method",
    "req_path",
    "capability",
    "org_node_id",
];

/// The token of an `Authorization: Bearer …` value (the scheme in any case).
pub fn bearer(authorization: &str) -> Option<&str> {
    authorization
        .split_once(' ')
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim())
}

/// A token that passed every check, with what it says.
#[derive(Clone, Debug)]
pub struct VerifiedToken {
    pub principal: Principal,
    pub claims: Claims,
}

/// How many verified signatures are remembered. Callers present the same
/// token on every request for its lifetime; an Ed25519 verification costs
/// tens of microseconds, a lookup well under one.
const VERIFIED_CACHE_ENTRIES: usize = 10_000;

/// Signs and verifies tokens. Shared by the server's services and layers.
pub struct Tokens {
    keys: KeyRing,
    settings: TokenSettings,
    revocations: Arc<RevocationList>,
    /// Token → (kid, claims) of signatures already verified. Only the
    /// signature check is skipped on a hit: time claims, the key's
    /// retirement and revocation are checked on every call.
    verified: quick_cache::sync::Cache<String, Arc<(String, Claims)>>,
}

impl Tokens {
    pub fn new(keys: KeyRing, settings: TokenSettings, revocations: Arc<RevocationList>) -> Self {
        Self {
            keys,
            settings,
            revocations,
            verified: quick_cache::sync::Cache::new(VERIFIED_CACHE_ENTRIES),
        }
    }

    /// The `iss` this service signs with.
    pub fn issuer(&self) -> &str {
        &self.settings.issuer
    }

    pub fn keys(&self) -> &KeyRing {
        &self.keys
    }

    pub fn revocations(&self) -> &Arc<RevocationList> {
        &self.revocations
    }

    pub fn issue(&self, new: &NewToken, now: DateTime<Utc>) -> Result<IssuedToken, TokenError> {
        let key = self.keys.signing_key(now).ok_or(TokenError::NoSigningKey)?;
        let lifetime =
            chrono::Duration::from_std(new.lifetime).map_err(|_| TokenError::Malformed)?;
        let expires_at = now + lifetime;
        let claims = Claims {
            iss: self.settings.issuer.clone(),
            aud: self.settings.audience.clone(),
            sub: new.subject.to_string(),
            tid: new.tenant.map(|t| t.to_string()),
            sid: new.session.to_string(),
            exp: expires_at.timestamp(),
            iat: now.timestamp(),
            nbf: now.timestamp(),
            jti: Uuid::new_v4().to_string(),
            typ: new.typ,
            perms: new.permissions.clone(),
            extra: self.extra_claims(new),
        };
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(key.kid().to_owned());
        let token = jsonwebtoken::encode(&header, &claims, key.encoding())
            .map_err(|_| TokenError::NoSigningKey)?;
        let hash = token_hash(&token);
        Ok(IssuedToken {
            token: SecretString::from(token),
            expires_at,
            hash,
        })
    }

    /// A short-lived token for the upstream of one allowed request: the
    /// user of `user` (same subject, tenant and session), the service as
    /// audience, the PostgREST role claim, and the request's method, path,
    /// capability and node. It never outlives the user's own token.
    pub fn issue_upstream(
        &self,
        user: &Claims,
        grant: &UpstreamGrant<'_>,
        now: DateTime<Utc>,
    ) -> Result<SecretString, TokenError> {
        let key = self.keys.signing_key(now).ok_or(TokenError::NoSigningKey)?;
        let lifetime = chrono::Duration::from_std(grant.lifetime.min(MAX_UPSTREAM_TOKEN_LIFETIME))
            .map_err(|_| TokenError::Malformed)?;
        let mut extra = serde_json::Map::new();
        if let Some(claim) = &self.settings.role_claim {
            extra.insert(claim.name.clone(), claim.user_role.clone().into());
        }
        for (name, value) in [
            ("req_method", grant.method.to_owned()),
            ("req_path", grant.path.to_owned()),
            ("capability", grant.capability.to_owned()),
            ("org_node_id", grant.org_node_id.to_string()),
        ] {
            extra.insert(name.into(), value.into());
        }
        let claims = Claims {
            iss: self.settings.issuer.clone(),
            aud: grant.service.to_owned(),
            sub: user.sub.clone(),
            tid: user.tid.clone(),
            sid: user.sid.clone(),
            exp: (now + lifetime).timestamp().min(user.exp),
            iat: now.timestamp(),
            nbf: now.timestamp(),
            jti: Uuid::new_v4().to_string(),
            typ: TokenType::User,
            perms: Vec::new(),
            extra,
        };
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(key.kid().to_owned());
        jsonwebtoken::encode(&header, &claims, key.encoding())
            .map(SecretString::from)
            .map_err(|_| TokenError::NoSigningKey)
    }

    fn extra_claims(&self, new: &NewToken) -> serde_json::Map<String, serde_json::Value> {
        let mut extra = serde_json::Map::new();
        if let Some(claim) = &self.settings.role_claim {
            let role = match (new.typ, &new.service_key) {
                (TokenType::User, _) => Some(claim.user_role.clone()),
                (TokenType::Service, Some(key)) => {
                    Some(format!("{}{key}", claim.service_role_prefix))
                }
                (TokenType::Service, None) => None,
            };
            if let Some(role) = role {
                extra.insert(claim.name.clone(), role.into());
            }
        }
        extra
    }

    /// Signature, issuer, audience, time claims (with leeway) and revocation.
    pub fn verify(&self, token: &str, now: DateTime<Utc>) -> Result<VerifiedToken, TokenError> {
        let claims = self.verify_signature(token, now)?;
        let leeway = self.settings.leeway.as_secs() as i64;
        if claims.exp + leeway <= now.timestamp() {
            return Err(TokenError::Expired);
        }
        if claims.nbf - leeway > now.timestamp() {
            return Err(TokenError::NotYetValid);
        }
        let principal = Principal::from_claims(&claims)?;
        match self.revocations.is_revoked(principal.session_id()) {
            Ok(false) => Ok(VerifiedToken { principal, claims }),
            Ok(true) => Err(TokenError::Revoked),
            Err(_) => Err(TokenError::RevocationUnknown),
        }
    }

    /// Signature, issuer and audience only: whose session a token names,
    /// even once expired (for revocation by token).
    pub fn verify_signature(&self, token: &str, now: DateTime<Utc>) -> Result<Claims, TokenError> {
        if token.is_empty() || token.len() > MAX_TOKEN_LEN {
            return Err(TokenError::Malformed);
        }
        if let Some(hit) = self.verified.get(token) {
            let (kid, claims) = &*hit;
            return match self.keys.verifying_key(kid, now) {
                Some(_) => Ok(claims.clone()),
                None => Err(TokenError::UnknownKey),
            };
        }
        let (kid, claims) = self.verify_signature_uncached(token, now)?;
        self.verified
            .insert(token.to_owned(), Arc::new((kid, claims.clone())));
        Ok(claims)
    }

    fn verify_signature_uncached(
        &self,
        token: &str,
        now: DateTime<Utc>,
    ) -> Result<(String, Claims), TokenError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| TokenError::Malformed)?;
        if header.alg != Algorithm::EdDSA {
            return Err(TokenError::BadSignature);
        }
        let kid = header.kid.ok_or(TokenError::UnknownKey)?;
        let key = self
            .keys
            .verifying_key(&kid, now)
            .ok_or(TokenError::UnknownKey)?;
        // Time claims are checked against the `now` we were given, not the
        // library's clock.
        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.set_required_spec_claims(&["exp", "nbf", "iat", "sub", "iss", "aud"]);
        validation.set_issuer(&[&self.settings.issuer]);
        validation.set_audience(&[&self.settings.audience]);
        match jsonwebtoken::decode::<Claims>(token, key.decoding(), &validation) {
            Ok(data) => Ok((kid, data.claims)),
            Err(error) => Err(match error.kind() {
                jsonwebtoken::errors::ErrorKind::InvalidSignature
                | jsonwebtoken::errors::ErrorKind::InvalidAlgorithm => TokenError::BadSignature,
                jsonwebtoken::errors::ErrorKind::InvalidIssuer
                | jsonwebtoken::errors::ErrorKind::InvalidAudience => TokenError::WrongAudience,
                _ => TokenError::Malformed,
            }),
        }
    }
}

/// SHA-256 of a token string in lower-case hex, as stored in the database.
pub fn token_hash(token: &str) -> String {
    format!("{:x}", Sha256::digest(token.as_bytes()))
}
