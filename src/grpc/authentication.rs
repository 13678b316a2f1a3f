//! `portcullis.v1.Authentication`. Login and sessions come with the user
//! authentication issue; token verification and signing keys are here.

use std::sync::Arc;

use chrono::{TimeZone, Utc};
use tonic::{Request, Response, Status};

use super::request::{caller, invalid, timestamp};
use super::status::not_implemented;
use crate::proto::v1::authentication_server::Authentication;
use crate::proto::v1::*;
use crate::tokens::{MAX_TOKEN_LEN, Tokens};

pub struct AuthenticationService {
    tokens: Arc<Tokens>,
}

impl AuthenticationService {
    pub fn new(tokens: Arc<Tokens>) -> Self {
        Self { tokens }
    }
}

#[tonic::async_trait]
impl Authentication for AuthenticationService {
    async fn authenticate(
        &self,
        _request: Request<AuthenticateRequest>,
    ) -> Result<Response<AuthenticateResponse>, Status> {
        Err(not_implemented("Authentication/Authenticate"))
    }

    async fn request_otp(
        &self,
        _request: Request<RequestOtpRequest>,
    ) -> Result<Response<RequestOtpResponse>, Status> {
        Err(not_implemented("Authentication/RequestOtp"))
    }

    async fn refresh_session(
        &self,
        _request: Request<RefreshSessionRequest>,
    ) -> Result<Response<AuthenticateResponse>, Status> {
        Err(not_implemented("Authentication/RefreshSession"))
    }

    async fn revoke_session(
        &self,
        _request: Request<RevokeSessionRequest>,
    ) -> Result<Response<RevokeSessionResponse>, Status> {
        Err(not_implemented("Authentication/RevokeSession"))
    }

    async fn reset_password(
        &self,
        _request: Request<ResetPasswordRequest>,
    ) -> Result<Response<ResetPasswordResponse>, Status> {
        Err(not_implemented("Authentication/ResetPassword"))
    }

    /// Introspection: an unusable token is `active = false`, not an error.
    async fn verify_token(
        &self,
        request: Request<VerifyTokenRequest>,
    ) -> Result<Response<VerifyTokenResponse>, Status> {
        let caller = caller(&request)?;
        let token = request.into_inner().token;
        if token.is_empty() {
            return Err(invalid("token", "is required"));
        }
        if token.len() > MAX_TOKEN_LEN {
            return Err(invalid(
                "token",
                format!("is longer than {MAX_TOKEN_LEN} characters"),
            ));
        }
        let Ok(verified) = self.tokens.verify(&token, Utc::now()) else {
            return Ok(Response::new(VerifyTokenResponse::default()));
        };
        // A tenant-bound caller may not learn about other tenants' tokens.
        let in_reach = match verified.principal.tenant_id() {
            Some(tenant) => caller.may_act_in(tenant),
            None => caller.tenant_id().is_none(),
        };
        if !in_reach {
            return Err(Status::permission_denied(
                "the token belongs to another tenant",
            ));
        }
        let claims = verified.claims;
        Ok(Response::new(VerifyTokenResponse {
            active: true,
            token_type: match claims.typ {
                crate::tokens::TokenType::User => TokenType::User,
                crate::tokens::TokenType::Service => TokenType::Service,
            } as i32,
            subject_id: claims.sub,
            tenant_id: claims.tid.unwrap_or_default(),
            session_id: claims.sid,
            permissions: claims.perms,
            expires_at: Utc.timestamp_opt(claims.exp, 0).single().map(timestamp),
        }))
    }

    async fn get_signing_keys(
        &self,
        _request: Request<GetSigningKeysRequest>,
    ) -> Result<Response<GetSigningKeysResponse>, Status> {
        let now = Utc::now();
        let keys = self.tokens.keys();
        Ok(Response::new(GetSigningKeysResponse {
            jwks_json: keys.jwks_json(now),
            keys: keys
                .published(now)
                .into_iter()
                .map(|k| SigningKey {
                    kid: k.kid,
                    public_key: k.public_key,
                    not_after: k.not_after.map(timestamp),
                })
                .collect(),
        }))
    }
}
