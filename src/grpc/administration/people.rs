//! Users and invitations: parse, build the administrator, ask the domain.

use tonic::{Request, Response, Status};

use super::convert::{
    assignment, idempotency_key, invitation, invitee, optional_id, optional_uuid, page_size, time,
    user,
};
use secrecy::ExposeSecret;

use super::parse::{administrator, cursor};
use crate::admin::invitations::{self, NewInvitation};
use crate::admin::users;
use crate::grpc::fields::{parse_id, parse_uuid};
use crate::grpc::request::{client_address, request_id};
use crate::proto::v1 as pb;

use super::AdministrationService;

pub(super) async fn create_user(
    this: &AdministrationService,
    request: Request<pb::CreateUserRequest>,
) -> Result<Response<pb::User>, Status> {
    let admin = administrator(&request, &request.get_ref().tenant_id)?;
    let body = request.into_inner();
    let key = idempotency_key(&body.idempotency_key)?;
    let new = super::parse::new_user(&body)?;
    let created = users::create(&this.db, &this.passwords, &admin, new, key.as_ref()).await?;
    Ok(Response::new(user(created)))
}

pub(super) async fn list_users(
    this: &AdministrationService,
    request: Request<pb::ListUsersRequest>,
) -> Result<Response<pb::ListUsersResponse>, Status> {
    let admin = administrator(&request, &request.get_ref().tenant_id)?;
    let body = request.into_inner();
    let page_size = page_size(
        body.page_size,
        users::DEFAULT_PAGE_SIZE,
        users::MAX_PAGE_SIZE,
    )?;
    // The token is the last user id of the previous page: it positions
    // a read inside the caller's own tenant, nothing more.
    let after = optional_uuid("page_token", &body.page_token)?;
    let (page, next) = users::list(&this.db, &admin, page_size, after).await?;
    Ok(Response::new(pb::ListUsersResponse {
        users: page.into_iter().map(user).collect(),
        next_page_token: next.map(|id| id.to_string()).unwrap_or_default(),
    }))
}

pub(super) async fn create_invitation(
    this: &AdministrationService,
    request: Request<pb::CreateInvitationRequest>,
) -> Result<Response<pb::CreateInvitationResponse>, Status> {
    let admin = administrator(&request, &request.get_ref().tenant_id)?;
    let body = request.into_inner();
    let new = NewInvitation {
        destination: invitee(&body.email, &body.phone)?,
        role_id: parse_uuid("role_id", &body.role_id)?,
        org_node_id: parse_id("org_node_id", &body.org_node_id)?,
        expires_at: time("expires_at", body.expires_at)?,
    };
    let key = idempotency_key(&body.idempotency_key)?;
    let issued = invitations::create(&this.db, &admin, &new, key.as_ref()).await?;
    Ok(Response::new(pb::CreateInvitationResponse {
        invitation: Some(invitation(issued.invitation)),
        invite_token: issued
            .token
            .map(|token| token.expose_secret().to_owned())
            .unwrap_or_default(),
    }))
}

pub(super) async fn revoke_invitation(
    this: &AdministrationService,
    request: Request<pb::RevokeInvitationRequest>,
) -> Result<Response<pb::Invitation>, Status> {
    let admin = administrator(&request, &request.get_ref().tenant_id)?;
    let id = parse_uuid("invitation_id", &request.get_ref().invitation_id)?;
    let revoked = invitations::revoke(&this.db, &admin, id).await?;
    Ok(Response::new(invitation(revoked)))
}

pub(super) async fn list_invitations(
    this: &AdministrationService,
    request: Request<pb::ListInvitationsRequest>,
) -> Result<Response<pb::ListInvitationsResponse>, Status> {
    let admin = administrator(&request, &request.get_ref().tenant_id)?;
    let body = request.into_inner();
    let query = invitations::InvitationQuery {
        at_node: optional_id("org_node_id", &body.org_node_id)?,
        page_size: page_size(
            body.page_size,
            invitations::DEFAULT_PAGE_SIZE,
            invitations::MAX_PAGE_SIZE,
        )?,
        after: cursor(&body.page_token)?,
    };
    let (page, next) = invitations::list_pending(&this.db, &admin, query).await?;
    Ok(Response::new(pb::ListInvitationsResponse {
        invitations: page.into_iter().map(invitation).collect(),
        next_page_token: next.map(|c| c.encode()).unwrap_or_default(),
    }))
}

pub(super) async fn accept_invitation(
    this: &AdministrationService,
    request: Request<pb::AcceptInvitationRequest>,
) -> Result<Response<pb::AcceptInvitationResponse>, Status> {
    let request_id = request_id(&request);
    let client_address = client_address(&request, this.trusted_proxy_hops);
    let acceptance = super::parse::acceptance(request.into_inner(), request_id, client_address)?;
    let accepted = invitations::accept(
        &this.db,
        &this.passwords,
        &this.authn.throttle,
        acceptance,
        chrono::Utc::now(),
    )
    .await?;
    Ok(Response::new(pb::AcceptInvitationResponse {
        user: Some(user(accepted.user)),
        assignment: Some(assignment(accepted.assignment)),
    }))
}
