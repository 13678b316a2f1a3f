//! The global administration's RPCs (tenants, the capability and endpoint
//! catalogues) and the audit trail: parse, build the administrator, ask
//! the domain.

use tonic::{Request, Response, Status};

use super::convert::{audit_event, capability, idempotency_key, page_size, tenant, time};

use super::parse::{administrator, cursor, global_administrator};
use crate::admin::Label;
use crate::admin::audit_trail;
use crate::admin::global::{self, TenantChange, TenantSlug};
use crate::authz::CapabilityKey;
use crate::grpc::endpoint_catalogue::{parse_rule, policy_message};
use crate::grpc::fields::{parse_id, parse_uuid};
use crate::grpc::request::{caller, invalid};
use crate::names::ServiceKey;
use crate::proto::v1 as pb;

use super::AdministrationService;

pub(super) async fn create_tenant(
    this: &AdministrationService,
    request: Request<pb::CreateTenantRequest>,
) -> Result<Response<pb::Tenant>, Status> {
    let admin = global_administrator(&request)?;
    let body = request.into_inner();
    let slug = TenantSlug::parse(&body.slug).map_err(|e| invalid("slug", e))?;
    let name = Label::parse(&body.name).map_err(|e| invalid("name", e))?;
    let once = idempotency_key(&body.idempotency_key)?;
    let created = global::create_tenant(&this.db, &admin, &slug, &name, once.as_ref()).await?;
    Ok(Response::new(tenant(created)))
}

pub(super) async fn rename_tenant(
    this: &AdministrationService,
    request: Request<pb::RenameTenantRequest>,
) -> Result<Response<pb::Tenant>, Status> {
    let admin = global_administrator(&request)?;
    let body = request.into_inner();
    let id = parse_id("tenant_id", &body.tenant_id)?;
    let name = Label::parse(&body.name).map_err(|e| invalid("name", e))?;
    let renamed = global::change_tenant(
        &this.db,
        &admin,
        id,
        TenantChange::Name(&name),
        this.authn.access_lifetime,
    )
    .await?;
    Ok(Response::new(tenant(renamed)))
}

pub(super) async fn create_capability(
    this: &AdministrationService,
    request: Request<pb::CreateCapabilityRequest>,
) -> Result<Response<pb::CapabilityDefinition>, Status> {
    let admin = global_administrator(&request)?;
    let body = request.into_inner();
    let key = CapabilityKey::parse(&body.key).map_err(|e| invalid("key", e))?;
    let once = idempotency_key(&body.idempotency_key)?;
    let created =
        global::create_capability(&this.db, &admin, &key, &body.description, once.as_ref()).await?;
    Ok(Response::new(capability(created)))
}

pub(super) async fn list_capabilities(
    this: &AdministrationService,
    request: Request<pb::ListCapabilitiesRequest>,
) -> Result<Response<pb::ListCapabilitiesResponse>, Status> {
    let ctx = caller(&request)?.rls_context();
    let listed = global::list_capabilities(&this.db, &ctx).await?;
    Ok(Response::new(pb::ListCapabilitiesResponse {
        capabilities: listed.into_iter().map(capability).collect(),
    }))
}

pub(super) async fn create_endpoint_policy(
    this: &AdministrationService,
    request: Request<pb::CreateEndpointPolicyRequest>,
) -> Result<Response<pb::EndpointPolicy>, Status> {
    let admin = global_administrator(&request)?;
    let body = request.into_inner();
    let rule = parse_rule(
        &body.service_key,
        &body.method,
        &body.route_pattern,
        &body.capability,
        body.node_source.as_ref(),
    )?;
    let created = global::create_endpoint_policy(&this.db, &admin, &rule).await?;
    Ok(Response::new(policy_message(created)))
}

pub(super) async fn update_endpoint_policy(
    this: &AdministrationService,
    request: Request<pb::UpdateEndpointPolicyRequest>,
) -> Result<Response<pb::EndpointPolicy>, Status> {
    let admin = global_administrator(&request)?;
    let body = request.into_inner();
    let id = parse_uuid("endpoint_id", &body.endpoint_id)?;
    let rule = parse_rule(
        &body.service_key,
        &body.method,
        &body.route_pattern,
        &body.capability,
        body.node_source.as_ref(),
    )?;
    let updated = global::update_endpoint_policy(&this.db, &admin, id, &rule).await?;
    Ok(Response::new(policy_message(updated)))
}

pub(super) async fn delete_endpoint_policy(
    this: &AdministrationService,
    request: Request<pb::EndpointPolicyRef>,
) -> Result<Response<pb::EndpointPolicy>, Status> {
    let admin = global_administrator(&request)?;
    let id = parse_uuid("endpoint_id", &request.get_ref().endpoint_id)?;
    let deleted = global::delete_endpoint_policy(&this.db, &admin, id).await?;
    Ok(Response::new(policy_message(deleted)))
}

pub(super) async fn list_endpoint_policies(
    this: &AdministrationService,
    request: Request<pb::ListEndpointPoliciesRequest>,
) -> Result<Response<pb::ListEndpointPoliciesResponse>, Status> {
    let ctx = caller(&request)?.rls_context();
    let service = match request.get_ref().service_key.as_str() {
        "" => None,
        key => Some(ServiceKey::parse(key).map_err(|e| invalid("service_key", e))?),
    };
    let listed = global::list_endpoint_policies(&this.db, &ctx, service.as_ref()).await?;
    Ok(Response::new(pb::ListEndpointPoliciesResponse {
        policies: listed.into_iter().map(policy_message).collect(),
    }))
}

pub(super) async fn list_audit_events(
    this: &AdministrationService,
    request: Request<pb::ListAuditEventsRequest>,
) -> Result<Response<pb::ListAuditEventsResponse>, Status> {
    let admin = administrator(&request, &request.get_ref().tenant_id)?;
    let body = request.into_inner();
    let page_size = page_size(
        body.page_size,
        audit_trail::DEFAULT_PAGE_SIZE,
        audit_trail::MAX_PAGE_SIZE,
    )?;
    let after = cursor(&body.page_token)?;
    let query = audit_trail::AuditQuery {
        since: time("since", body.since)?,
        until: time("until", body.until)?,
        page_size,
        after,
    };
    let (events, next) = audit_trail::list(&this.db, &admin, query).await?;
    Ok(Response::new(pb::ListAuditEventsResponse {
        events: events.into_iter().map(audit_event).collect(),
        next_page_token: next.map(|c| c.encode()).unwrap_or_default(),
    }))
}
