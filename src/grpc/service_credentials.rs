//! `portcullis.v1.ServiceCredentials`.

use tonic::{Request, Response, Status};

use super::status::not_implemented;
use crate::proto::v1::service_credentials_server::ServiceCredentials;
use crate::proto::v1::*;

#[derive(Debug, Default)]
pub struct ServiceCredentialsService;

#[tonic::async_trait]
impl ServiceCredentials for ServiceCredentialsService {
    async fn exchange_service_credential(
        &self,
        _request: Request<ExchangeServiceCredentialRequest>,
    ) -> Result<Response<ExchangeServiceCredentialResponse>, Status> {
        Err(not_implemented(
            "ServiceCredentials/ExchangeServiceCredential",
        ))
    }

    async fn revoke_service_token(
        &self,
        _request: Request<RevokeServiceTokenRequest>,
    ) -> Result<Response<RevokeServiceTokenResponse>, Status> {
        Err(not_implemented("ServiceCredentials/RevokeServiceToken"))
    }
}
