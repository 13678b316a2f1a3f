//! Verifying an ID token: signature by a key of its issuer, `iss`, `aud`,
//! `exp`/`nbf`/`iat` with the provider's leeway, and the `nonce` the client
//! sent when it asked for the token.

use chrono::{DateTime, Utc};
use jsonwebtoken::jwk::KeyAlgorithm;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use sha2::Digest;
use subtle::ConstantTimeEq;

use super::config::ProviderKind;
use super::{Federation, Provider};

/// ID tokens longer than this are refused before any parsing.
pub const MAX_ID_TOKEN_LEN: usize = 8192;
/// The schema's limit on `provider_subject_key`.
const MAX_SUBJECT_KEY_LEN: usize = 255;

/// Who a verified ID token says its holder is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FederatedIdentity {
    pub provider: ProviderKind,
    pub issuer: String,
    /// `provider_subject_key`: `sub` for Google, `<issuer> <sub>` otherwise.
    pub subject_key: String,
    pub email: Option<String>,
    pub email_verified: bool,
    /// The token's SHA-256, and until when (its expiry and the provider's
    /// leeway) it could be presented: what the replay check keeps.
    pub token_sha256: [u8; 32],
    pub usable_until: DateTime<Utc>,
}

/// Why an ID token is refused. Each says what to fix; none reveals
/// anything the token's holder does not already know.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum IdTokenError {
    #[error("not a well-formed JWT")]
    Malformed,
    #[error("issuer is not a trusted provider")]
    UnknownIssuer,
    #[error("algorithm {0} is not allowed for this issuer")]
    AlgorithmNotAllowed(String),
    #[error("signed with a key the issuer does not publish")]
    UnknownKey,
    #[error("bad signature")]
    BadSignature,
    #[error("audience is not a configured client id")]
    WrongAudience,
    #[error("expired")]
    Expired,
    #[error("not yet valid")]
    NotYetValid,
    #[error("a required claim is missing or invalid: {0}")]
    MissingClaim(&'static str),
    #[error("nonce does not match")]
    NonceMismatch,
    #[error("this issuer requires a nonce")]
    NonceRequired,
    #[error("the provider's keys cannot be fetched")]
    ProviderUnavailable,
}

impl IdTokenError {
    /// A short label for metrics and audit rows.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Malformed => "malformed",
            Self::UnknownIssuer => "unknown_issuer",
            Self::AlgorithmNotAllowed(_) => "algorithm_not_allowed",
            Self::UnknownKey => "unknown_key",
            Self::BadSignature => "bad_signature",
            Self::WrongAudience => "wrong_audience",
            Self::Expired => "expired",
            Self::NotYetValid => "not_yet_valid",
            Self::MissingClaim(_) => "missing_claim",
            Self::NonceMismatch => "nonce_mismatch",
            Self::NonceRequired => "nonce_required",
            Self::ProviderUnavailable => "provider_unavailable",
        }
    }
}

/// Only the issuer, read before the signature is checked to know whose
/// keys check it.
#[derive(Deserialize)]
struct Unverified {
    iss: String,
}

#[derive(Deserialize)]
struct IdClaims {
    sub: String,
    exp: i64,
    iat: i64,
    #[serde(default)]
    nbf: Option<i64>,
    #[serde(default)]
    nonce: Option<String>,
    #[serde(default)]
    email: Option<String>,
    #[serde(default)]
    email_verified: Option<Flag>,
}

/// `email_verified` is a JSON boolean, or the string `"true"` from some
/// providers.
#[derive(Deserialize)]
#[serde(untagged)]
enum Flag {
    Bool(bool),
    Text(String),
}

impl Flag {
    fn is_true(&self) -> bool {
        match self {
            Self::Bool(value) => *value,
            Self::Text(value) => value == "true",
        }
    }
}

impl Federation {
    /// Verifies `token` at `now`; `nonce` is what the client sent to the
    /// provider when it asked for the token, if it sent one.
    pub async fn verify(
        &self,
        token: &str,
        nonce: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<FederatedIdentity, IdTokenError> {
        if token.len() > MAX_ID_TOKEN_LEN {
            return Err(IdTokenError::Malformed);
        }
        let header = jsonwebtoken::decode_header(token).map_err(|_| IdTokenError::Malformed)?;
        let unverified: Unverified = jsonwebtoken::dangerous::insecure_decode_claims(token)
            .map_err(|_| IdTokenError::MissingClaim("iss"))?;
        let provider = self
            .providers
            .get(&unverified.iss)
            .ok_or(IdTokenError::UnknownIssuer)?;
        let config = &provider.config;
        if !config.algorithms.contains(&header.alg) {
            return Err(IdTokenError::AlgorithmNotAllowed(format!(
                "{:?}",
                header.alg
            )));
        }
        let jwk = provider.keys.find(header.kid.as_deref()).await?;
        // A key published for one algorithm verifies no other.
        if jwk
            .common
            .key_algorithm
            .is_some_and(|declared| algorithm_of(declared) != Some(header.alg))
        {
            return Err(IdTokenError::BadSignature);
        }
        let key = DecodingKey::from_jwk(&jwk).map_err(|_| IdTokenError::UnknownKey)?;
        if key.family() != header.alg.family() {
            return Err(IdTokenError::BadSignature);
        }
        let claims = decode(provider, token, &key, header.alg)?;
        check_times(&claims, config.leeway(), now)?;
        match (nonce, &claims.nonce) {
            (Some(expected), Some(actual)) => {
                if !bool::from(expected.as_bytes().ct_eq(actual.as_bytes())) {
                    return Err(IdTokenError::NonceMismatch);
                }
            }
            (Some(_), None) => return Err(IdTokenError::NonceMismatch),
            (None, _) if config.require_nonce => return Err(IdTokenError::NonceRequired),
            (None, _) => {}
        }
        if claims.sub.is_empty() || claims.sub.chars().any(char::is_control) {
            return Err(IdTokenError::MissingClaim("sub"));
        }
        let subject_key = match config.provider {
            ProviderKind::Google => claims.sub,
            ProviderKind::Oidc => format!("{} {}", config.issuer, claims.sub),
        };
        if subject_key.len() > MAX_SUBJECT_KEY_LEN {
            return Err(IdTokenError::MissingClaim("sub"));
        }
        let usable_until = DateTime::<Utc>::from_timestamp(
            claims.exp.saturating_add(config.leeway().as_secs() as i64),
            0,
        )
        .ok_or(IdTokenError::MissingClaim("exp"))?;
        Ok(FederatedIdentity {
            token_sha256: sha2::Sha256::digest(token.as_bytes()).into(),
            usable_until,
            provider: config.provider,
            issuer: config.issuer.clone(),
            subject_key,
            email_verified: claims.email.is_some()
                && claims.email_verified.as_ref().is_some_and(Flag::is_true),
            email: claims.email,
        })
    }
}

/// The signing algorithm a JWK's `alg` names, among those we accept.
fn algorithm_of(declared: KeyAlgorithm) -> Option<Algorithm> {
    match declared {
        KeyAlgorithm::RS256 => Some(Algorithm::RS256),
        KeyAlgorithm::ES256 => Some(Algorithm::ES256),
        KeyAlgorithm::EdDSA => Some(Algorithm::EdDSA),
        _ => None,
    }
}

fn decode(
    provider: &Provider,
    token: &str,
    key: &DecodingKey,
    alg: Algorithm,
) -> Result<IdClaims, IdTokenError> {
    let config = &provider.config;
    let mut validation = Validation::new(alg);
    // Times are checked against the `now` we were given.
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.set_required_spec_claims(&["exp", "iat", "iss", "aud", "sub"]);
    validation.set_issuer(&[&config.issuer]);
    validation.set_audience(&config.audiences);
    use jsonwebtoken::errors::ErrorKind;
    jsonwebtoken::decode::<IdClaims>(token, key, &validation)
        .map(|data| data.claims)
        .map_err(|error| match error.kind() {
            ErrorKind::InvalidSignature | ErrorKind::InvalidAlgorithm => IdTokenError::BadSignature,
            ErrorKind::InvalidAudience => IdTokenError::WrongAudience,
            ErrorKind::InvalidIssuer => IdTokenError::UnknownIssuer,
            ErrorKind::MissingRequiredClaim(claim) => {
                IdTokenError::MissingClaim(match claim.as_str() {
                    "exp" => "exp",
                    "iat" => "iat",
                    "aud" => "aud",
                    "sub" => "sub",
                    _ => "iss",
                })
            }
            _ => IdTokenError::Malformed,
        })
}

fn check_times(
    claims: &IdClaims,
    leeway: std::time::Duration,
    now: DateTime<Utc>,
) -> Result<(), IdTokenError> {
    let (now, leeway) = (now.timestamp(), leeway.as_secs() as i64);
    if claims.exp.saturating_add(leeway) <= now {
        return Err(IdTokenError::Expired);
    }
    if claims.nbf.unwrap_or(i64::MIN).saturating_sub(leeway) > now
        || claims.iat.saturating_sub(leeway) > now
    {
        return Err(IdTokenError::NotYetValid);
    }
    Ok(())
}
