//! `portcullis.v1.Authentication`.

use tonic::{Request, Response, Status};

use super::status::not_implemented;
use crate::proto::v1::authentication_server::Authentication;
use crate::proto::v1::*;

#[derive(Debug, Default)]
pub struct AuthenticationService;

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

    async fn verify_token(
        &self,
        _request: Request<VerifyTokenRequest>,
    ) -> Result<Response<VerifyTokenResponse>, Status> {
        Err(not_implemented("Authentication/VerifyToken"))
    }

    async fn get_signing_keys(
        &self,
        _request: Request<GetSigningKeysRequest>,
    ) -> Result<Response<GetSigningKeysResponse>, Status> {
        Err(not_implemented("Authentication/GetSigningKeys"))
    }
}
