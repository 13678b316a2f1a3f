//! `portcullis.v1.Administration`: parse, build the administrator, ask the
//! domain.

mod activity;
pub(super) mod convert;
mod global_admin;
mod parse;
mod people;
mod preview;

use std::sync::Arc;

use tonic::{Request, Response, Status};

use convert::{
    assignment, capability_keys, grant, grant_scope, idempotency_key, label, list_filter, node,
    optional_id, role, time,
};

use super::fields::{parse_id, parse_uuid};
use super::request::invalid;
use crate::admin::assignments::{self, NewAssignment};
use crate::admin::grants::{self, NewGrant};
use crate::admin::{NodeType, RoleKey, org, roles};
use crate::authn::{AuthnSettings, Passwords};
use crate::db::Db;
use crate::proto::v1 as pb;
use crate::proto::v1::administration_server::Administration;
use parse::administrator;
use preview::answer_dry_run;

pub struct AdministrationService {
    db: Db,
    passwords: Arc<Passwords>,
    /// Throttles (invitation acceptances per client address) and the
    /// access-token lifetime (how long revoked sessions stay listed).
    authn: AuthnSettings,
    trusted_proxy_hops: usize,
}

impl AdministrationService {
    pub fn new(
        db: Db,
        passwords: Arc<Passwords>,
        authn: AuthnSettings,
        trusted_proxy_hops: usize,
    ) -> Self {
        Self {
            db,
            passwords,
            authn,
            trusted_proxy_hops,
        }
    }
}

#[tonic::async_trait]
impl Administration for AdministrationService {
    async fn create_org_node(
        &self,
        request: Request<pb::CreateOrgNodeRequest>,
    ) -> Result<Response<pb::OrgNode>, Status> {
        answer_dry_run!(self, request, create_org_node);
        let admin = administrator(&request, &request.get_ref().tenant_id)?;
        let body = request.into_inner();
        let parent = optional_id("parent_org_node_id", &body.parent_org_node_id)?;
        let node_type = NodeType::parse(&body.node_type).map_err(|e| invalid("node_type", e))?;
        let label = label(&body.label)?;
        let key = idempotency_key(&body.idempotency_key)?;
        let created =
            org::create(&self.db, &admin, parent, &node_type, &label, key.as_ref()).await?;
        Ok(Response::new(node(created)))
    }

    async fn rename_org_node(
        &self,
        request: Request<pb::RenameOrgNodeRequest>,
    ) -> Result<Response<pb::OrgNode>, Status> {
        answer_dry_run!(self, request, rename_org_node);
        let admin = administrator(&request, &request.get_ref().tenant_id)?;
        let body = request.into_inner();
        let id = parse_id("org_node_id", &body.org_node_id)?;
        let label = label(&body.label)?;
        let renamed = org::rename(&self.db, &admin, id, &label).await?;
        Ok(Response::new(node(renamed)))
    }

    async fn move_org_node(
        &self,
        request: Request<pb::MoveOrgNodeRequest>,
    ) -> Result<Response<pb::OrgNode>, Status> {
        answer_dry_run!(self, request, move_org_node);
        let admin = administrator(&request, &request.get_ref().tenant_id)?;
        let body = request.into_inner();
        let id = parse_id("org_node_id", &body.org_node_id)?;
        let parent = parse_id("new_parent_org_node_id", &body.new_parent_org_node_id)?;
        let moved = org::move_under(&self.db, &admin, id, parent).await?;
        Ok(Response::new(node(moved)))
    }

    async fn deactivate_org_node(
        &self,
        request: Request<pb::OrgNodeRef>,
    ) -> Result<Response<pb::OrgNode>, Status> {
        answer_dry_run!(self, request, deactivate_org_node);
        self.set_active(request, false).await
    }

    async fn reactivate_org_node(
        &self,
        request: Request<pb::OrgNodeRef>,
    ) -> Result<Response<pb::OrgNode>, Status> {
        answer_dry_run!(self, request, reactivate_org_node);
        self.set_active(request, true).await
    }

    async fn get_org_subtree(
        &self,
        request: Request<pb::GetOrgSubtreeRequest>,
    ) -> Result<Response<pb::GetOrgSubtreeResponse>, Status> {
        let admin = administrator(&request, &request.get_ref().tenant_id)?;
        let body = request.into_inner();
        let id = parse_id("org_node_id", &body.org_node_id)?;
        let max_nodes = match body.max_nodes {
            0 => org::DEFAULT_SUBTREE_NODES,
            n if n > org::MAX_SUBTREE_NODES => {
                return Err(invalid(
                    "max_nodes",
                    format!("must be at most {}", org::MAX_SUBTREE_NODES),
                ));
            }
            n => n,
        };
        let (nodes, truncated) = org::subtree(&self.db, &admin, id, max_nodes).await?;
        Ok(Response::new(pb::GetOrgSubtreeResponse {
            nodes: nodes.into_iter().map(node).collect(),
            truncated,
        }))
    }

    async fn create_role(
        &self,
        request: Request<pb::CreateRoleRequest>,
    ) -> Result<Response<pb::Role>, Status> {
        answer_dry_run!(self, request, create_role);
        let admin = administrator(&request, &request.get_ref().tenant_id)?;
        let body = request.into_inner();
        let key = RoleKey::parse(&body.key).map_err(|e| invalid("key", e))?;
        let label = label(&body.label)?;
        let granted = capability_keys(&body.capabilities)?;
        let once = idempotency_key(&body.idempotency_key)?;
        let created =
            roles::create(&self.db, &admin, &key, &label, &granted, once.as_ref()).await?;
        Ok(Response::new(role(created)))
    }

    async fn rename_role(
        &self,
        request: Request<pb::RenameRoleRequest>,
    ) -> Result<Response<pb::Role>, Status> {
        answer_dry_run!(self, request, rename_role);
        let admin = administrator(&request, &request.get_ref().tenant_id)?;
        let body = request.into_inner();
        let id = parse_uuid("role_id", &body.role_id)?;
        let label = label(&body.label)?;
        let renamed = roles::rename(&self.db, &admin, id, &label).await?;
        Ok(Response::new(role(renamed)))
    }

    async fn set_role_capabilities(
        &self,
        request: Request<pb::SetRoleCapabilitiesRequest>,
    ) -> Result<Response<pb::Role>, Status> {
        answer_dry_run!(self, request, set_role_capabilities);
        let admin = administrator(&request, &request.get_ref().tenant_id)?;
        let body = request.into_inner();
        let id = parse_uuid("role_id", &body.role_id)?;
        let granted = capability_keys(&body.capabilities)?;
        let changed = roles::set_capabilities(&self.db, &admin, id, &granted).await?;
        Ok(Response::new(role(changed)))
    }

    async fn list_roles(
        &self,
        request: Request<pb::ListRolesRequest>,
    ) -> Result<Response<pb::ListRolesResponse>, Status> {
        let admin = administrator(&request, &request.get_ref().tenant_id)?;
        let listed = roles::list(&self.db, &admin).await?;
        Ok(Response::new(pb::ListRolesResponse {
            roles: listed.into_iter().map(role).collect(),
        }))
    }

    async fn assign_role(
        &self,
        request: Request<pb::AssignRoleRequest>,
    ) -> Result<Response<pb::Assignment>, Status> {
        answer_dry_run!(self, request, assign_role);
        let admin = administrator(&request, &request.get_ref().tenant_id)?;
        let body = request.into_inner();
        let new = NewAssignment {
            user_id: parse_id("user_id", &body.user_id)?,
            role_id: parse_uuid("role_id", &body.role_id)?,
            org_node_id: parse_id("org_node_id", &body.org_node_id)?,
            start_utc: time("start_utc", body.start_utc)?,
            end_utc: time("end_utc", body.end_utc)?,
        };
        let key = idempotency_key(&body.idempotency_key)?;
        let created = assignments::assign(&self.db, &admin, &new, key.as_ref()).await?;
        Ok(Response::new(assignment(created)))
    }

    async fn end_assignment(
        &self,
        request: Request<pb::EndAssignmentRequest>,
    ) -> Result<Response<pb::Assignment>, Status> {
        answer_dry_run!(self, request, end_assignment);
        let admin = administrator(&request, &request.get_ref().tenant_id)?;
        let body = request.into_inner();
        let id = parse_uuid("assignment_id", &body.assignment_id)?;
        let at = time("end_utc", body.end_utc)?;
        let ended = assignments::end(&self.db, &admin, id, at).await?;
        Ok(Response::new(assignment(ended)))
    }

    async fn list_assignments(
        &self,
        request: Request<pb::ListAssignmentsRequest>,
    ) -> Result<Response<pb::ListAssignmentsResponse>, Status> {
        let admin = administrator(&request, &request.get_ref().tenant_id)?;
        let body = request.into_inner();
        let filter = list_filter(&body.user_id, &body.org_node_id)?;
        let listed = assignments::list(&self.db, &admin, filter).await?;
        Ok(Response::new(pb::ListAssignmentsResponse {
            assignments: listed.into_iter().map(assignment).collect(),
        }))
    }

    async fn grant_visibility(
        &self,
        request: Request<pb::GrantVisibilityRequest>,
    ) -> Result<Response<pb::VisibilityGrant>, Status> {
        answer_dry_run!(self, request, grant_visibility);
        let admin = administrator(&request, &request.get_ref().tenant_id)?;
        let body = request.into_inner();
        let new = NewGrant {
            user_id: parse_id("user_id", &body.user_id)?,
            org_node_id: parse_id("org_node_id", &body.org_node_id)?,
            scope: grant_scope(body.scope)?,
            start_utc: time("start_utc", body.start_utc)?,
            end_utc: time("end_utc", body.end_utc)?,
        };
        let key = idempotency_key(&body.idempotency_key)?;
        let created = grants::grant(&self.db, &admin, &new, key.as_ref()).await?;
        Ok(Response::new(grant(created)))
    }

    async fn revoke_visibility(
        &self,
        request: Request<pb::RevokeVisibilityRequest>,
    ) -> Result<Response<pb::VisibilityGrant>, Status> {
        answer_dry_run!(self, request, revoke_visibility);
        let admin = administrator(&request, &request.get_ref().tenant_id)?;
        let id = parse_uuid("grant_id", &request.get_ref().grant_id)?;
        let revoked = grants::revoke(&self.db, &admin, id).await?;
        Ok(Response::new(grant(revoked)))
    }

    async fn list_visibility_grants(
        &self,
        request: Request<pb::ListVisibilityGrantsRequest>,
    ) -> Result<Response<pb::ListVisibilityGrantsResponse>, Status> {
        let admin = administrator(&request, &request.get_ref().tenant_id)?;
        let body = request.into_inner();
        let filter = list_filter(&body.user_id, &body.org_node_id)?;
        let listed = grants::list(&self.db, &admin, filter).await?;
        Ok(Response::new(pb::ListVisibilityGrantsResponse {
            grants: listed.into_iter().map(grant).collect(),
        }))
    }

    async fn create_user(
        &self,
        request: Request<pb::CreateUserRequest>,
    ) -> Result<Response<pb::User>, Status> {
        answer_dry_run!(self, request, create_user);
        people::create_user(self, request).await
    }

    async fn deactivate_user(
        &self,
        request: Request<pb::UserRef>,
    ) -> Result<Response<pb::User>, Status> {
        self.set_user_active(request, false).await
    }

    async fn reactivate_user(
        &self,
        request: Request<pb::UserRef>,
    ) -> Result<Response<pb::User>, Status> {
        self.set_user_active(request, true).await
    }

    async fn list_users(
        &self,
        request: Request<pb::ListUsersRequest>,
    ) -> Result<Response<pb::ListUsersResponse>, Status> {
        people::list_users(self, request).await
    }

    async fn create_invitation(
        &self,
        request: Request<pb::CreateInvitationRequest>,
    ) -> Result<Response<pb::CreateInvitationResponse>, Status> {
        answer_dry_run!(self, request, create_invitation);
        people::create_invitation(self, request).await
    }

    async fn revoke_invitation(
        &self,
        request: Request<pb::RevokeInvitationRequest>,
    ) -> Result<Response<pb::Invitation>, Status> {
        answer_dry_run!(self, request, revoke_invitation);
        people::revoke_invitation(self, request).await
    }

    async fn list_invitations(
        &self,
        request: Request<pb::ListInvitationsRequest>,
    ) -> Result<Response<pb::ListInvitationsResponse>, Status> {
        people::list_invitations(self, request).await
    }

    async fn accept_invitation(
        &self,
        request: Request<pb::AcceptInvitationRequest>,
    ) -> Result<Response<pb::AcceptInvitationResponse>, Status> {
        people::accept_invitation(self, request).await
    }

    async fn create_tenant(
        &self,
        request: Request<pb::CreateTenantRequest>,
    ) -> Result<Response<pb::Tenant>, Status> {
        answer_dry_run!(self, request, create_tenant);
        global_admin::create_tenant(self, request).await
    }

    async fn rename_tenant(
        &self,
        request: Request<pb::RenameTenantRequest>,
    ) -> Result<Response<pb::Tenant>, Status> {
        answer_dry_run!(self, request, rename_tenant);
        global_admin::rename_tenant(self, request).await
    }

    async fn suspend_tenant(
        &self,
        request: Request<pb::TenantRef>,
    ) -> Result<Response<pb::Tenant>, Status> {
        answer_dry_run!(self, request, suspend_tenant);
        self.set_tenant_active(request, false).await
    }

    async fn reactivate_tenant(
        &self,
        request: Request<pb::TenantRef>,
    ) -> Result<Response<pb::Tenant>, Status> {
        answer_dry_run!(self, request, reactivate_tenant);
        self.set_tenant_active(request, true).await
    }

    async fn set_federated_email_linking(
        &self,
        request: Request<pb::SetFederatedEmailLinkingRequest>,
    ) -> Result<Response<pb::Tenant>, Status> {
        answer_dry_run!(self, request, set_federated_email_linking);
        AdministrationService::set_federated_email_linking(self, request).await
    }

    async fn create_capability(
        &self,
        request: Request<pb::CreateCapabilityRequest>,
    ) -> Result<Response<pb::CapabilityDefinition>, Status> {
        answer_dry_run!(self, request, create_capability);
        global_admin::create_capability(self, request).await
    }

    async fn list_capabilities(
        &self,
        request: Request<pb::ListCapabilitiesRequest>,
    ) -> Result<Response<pb::ListCapabilitiesResponse>, Status> {
        global_admin::list_capabilities(self, request).await
    }

    async fn create_endpoint_policy(
        &self,
        request: Request<pb::CreateEndpointPolicyRequest>,
    ) -> Result<Response<pb::EndpointPolicy>, Status> {
        answer_dry_run!(self, request, create_endpoint_policy);
        global_admin::create_endpoint_policy(self, request).await
    }

    async fn update_endpoint_policy(
        &self,
        request: Request<pb::UpdateEndpointPolicyRequest>,
    ) -> Result<Response<pb::EndpointPolicy>, Status> {
        answer_dry_run!(self, request, update_endpoint_policy);
        global_admin::update_endpoint_policy(self, request).await
    }

    async fn delete_endpoint_policy(
        &self,
        request: Request<pb::EndpointPolicyRef>,
    ) -> Result<Response<pb::EndpointPolicy>, Status> {
        answer_dry_run!(self, request, delete_endpoint_policy);
        global_admin::delete_endpoint_policy(self, request).await
    }

    async fn list_endpoint_policies(
        &self,
        request: Request<pb::ListEndpointPoliciesRequest>,
    ) -> Result<Response<pb::ListEndpointPoliciesResponse>, Status> {
        global_admin::list_endpoint_policies(self, request).await
    }

    async fn preview_changes(
        &self,
        request: Request<pb::PreviewChangesRequest>,
    ) -> Result<Response<pb::PreviewChangesResponse>, Status> {
        AdministrationService::preview_changes(self, request).await
    }

    async fn list_audit_events(
        &self,
        request: Request<pb::ListAuditEventsRequest>,
    ) -> Result<Response<pb::ListAuditEventsResponse>, Status> {
        global_admin::list_audit_events(self, request).await
    }
}
