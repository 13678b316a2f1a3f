//! Deactivating and reactivating tenants, users and org nodes: one
//! handler each, for both directions; and a tenant's federated linking.

use tonic::{Request, Response, Status};

use super::AdministrationService;
use super::convert::{node, tenant, user};
use super::parse::{administrator, global_administrator};
use crate::admin::global::{self, TenantChange};
use crate::admin::{org, users};
use crate::grpc::fields::parse_id;
use crate::proto::v1 as pb;

impl AdministrationService {
    pub(super) async fn set_tenant_active(
        &self,
        request: Request<pb::TenantRef>,
        active: bool,
    ) -> Result<Response<pb::Tenant>, Status> {
        let admin = global_administrator(&request)?;
        let id = parse_id("tenant_id", &request.get_ref().tenant_id)?;
        let changed = global::change_tenant(
            &self.db,
            &admin,
            id,
            TenantChange::Active(active),
            self.authn.access_lifetime,
        )
        .await?;
        Ok(Response::new(tenant(changed)))
    }

    pub(super) async fn set_federated_email_linking(
        &self,
        request: Request<pb::SetFederatedEmailLinkingRequest>,
    ) -> Result<Response<pb::Tenant>, Status> {
        let admin = global_administrator(&request)?;
        let body = request.get_ref();
        let id = parse_id("tenant_id", &body.tenant_id)?;
        let changed = global::change_tenant(
            &self.db,
            &admin,
            id,
            TenantChange::FederatedEmailLinking(body.allowed),
            self.authn.access_lifetime,
        )
        .await?;
        Ok(Response::new(tenant(changed)))
    }

    pub(super) async fn set_user_active(
        &self,
        request: Request<pb::UserRef>,
        active: bool,
    ) -> Result<Response<pb::User>, Status> {
        let admin = administrator(&request, &request.get_ref().tenant_id)?;
        let id = parse_id("user_id", &request.get_ref().user_id)?;
        let changed =
            users::set_active(&self.db, &admin, id, active, self.authn.access_lifetime).await?;
        Ok(Response::new(user(changed)))
    }

    pub(super) async fn set_active(
        &self,
        request: Request<pb::OrgNodeRef>,
        active: bool,
    ) -> Result<Response<pb::OrgNode>, Status> {
        let admin = administrator(&request, &request.get_ref().tenant_id)?;
        let id = parse_id("org_node_id", &request.get_ref().org_node_id)?;
        let changed = org::set_active(&self.db, &admin, id, active).await?;
        Ok(Response::new(node(changed)))
    }
}
