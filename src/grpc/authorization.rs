//! `portcullis.v1.Authorization`.

use tonic::{Request, Response, Status};

use super::status::not_implemented;
use crate::proto::v1::authorization_server::Authorization;
use crate::proto::v1::*;

#[derive(Debug, Default)]
pub struct AuthorizationService;

#[tonic::async_trait]
impl Authorization for AuthorizationService {
    async fn check_capability(
        &self,
        _request: Request<CheckCapabilityRequest>,
    ) -> Result<Response<CheckCapabilityResponse>, Status> {
        Err(not_implemented("Authorization/CheckCapability"))
    }

    async fn check_capabilities(
        &self,
        _request: Request<CheckCapabilitiesRequest>,
    ) -> Result<Response<CheckCapabilitiesResponse>, Status> {
        Err(not_implemented("Authorization/CheckCapabilities"))
    }

    async fn list_visible_org_nodes(
        &self,
        _request: Request<ListVisibleOrgNodesRequest>,
    ) -> Result<Response<ListVisibleOrgNodesResponse>, Status> {
        Err(not_implemented("Authorization/ListVisibleOrgNodes"))
    }
}
