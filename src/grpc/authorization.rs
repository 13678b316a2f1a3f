//! `portcullis.v1.Authorization`: parse, resolve the subject, ask the domain.

use std::sync::Arc;

use chrono::Utc;
use tonic::{Request, Response, Status};

use std::collections::HashMap;

use super::endpoint_catalogue::policy_message;
use super::fields::{id_text, parse_id, token_field};
use super::request::{caller, invalid, request_id};
use crate::admin::NodeType;
use crate::authz::{
    self, CapabilityKey, Check, Decision, EndpointCatalogue, EndpointDecision, EndpointRequest,
    GrantExplanation, HoldersQuery, ListingQuery, Reason, Scope, SubjectRef,
};
use crate::db::Db;
use crate::db::RlsContext;
use crate::names::{HttpMethod, ServiceKey, TenantId};
use crate::proto::v1 as pb;
use crate::proto::v1::authorization_server::Authorization;
use crate::tokens::Tokens;

/// Longest request path CheckEndpoint matches.
const MAX_PATH_LEN: usize = 2048;

pub struct AuthorizationService {
    db: Db,
    tokens: Arc<Tokens>,
    max_batch_checks: usize,
    catalogue: Arc<EndpointCatalogue>,
}

impl AuthorizationService {
    /// The token of what this request read so far, for its answer's body.
    fn consistency_token(&self) -> String {
        crate::consistency::token::of_this_request(self.tokens.keys(), Utc::now())
    }

    pub fn new(
        db: Db,
        tokens: Arc<Tokens>,
        max_batch_checks: usize,
        catalogue: Arc<EndpointCatalogue>,
    ) -> Self {
        Self {
            db,
            tokens,
            max_batch_checks,
            catalogue,
        }
    }

    /// The subject named by the request, after checking the caller may ask.
    fn subject<T>(
        &self,
        request: &Request<T>,
        subject: Option<&pb::Subject>,
    ) -> Result<authz::Subject, Status> {
        let caller = caller(request)?;
        let subject = parse_subject(subject)?;
        Ok(authz::resolve_subject(
            &self.tokens,
            &caller,
            subject,
            Utc::now(),
        )?)
    }
}

fn parse_subject(subject: Option<&pb::Subject>) -> Result<SubjectRef<'_>, Status> {
    match subject.and_then(|s| s.kind.as_ref()) {
        None => Err(invalid("subject", "give access_token or user")),
        Some(pb::subject::Kind::AccessToken(token)) => Ok(SubjectRef::AccessToken(token_field(
            "subject.access_token",
            token,
        )?)),
        Some(pb::subject::Kind::User(user)) => Ok(SubjectRef::User(authz::Subject {
            tenant_id: parse_id("subject.user.tenant_id", &user.tenant_id)?,
            user_id: parse_id("subject.user.user_id", &user.user_id)?,
        })),
    }
}

fn parse_check(prefix: &str, capability: &str, org_node_id: &str) -> Result<Check, Status> {
    Ok(Check {
        capability: CapabilityKey::parse(capability)
            .map_err(|e| invalid(&format!("{prefix}capability"), e))?,
        org_node_id: parse_id(&format!("{prefix}org_node_id"), org_node_id)?,
    })
}

fn reason(reason: Reason) -> pb::DecisionReason {
    match reason {
        Reason::Allowed => pb::DecisionReason::Allowed,
        Reason::NoMatchingAssignment => pb::DecisionReason::NoMatchingAssignment,
        Reason::UnknownCapability => pb::DecisionReason::UnknownCapability,
        Reason::UnknownOrgNode => pb::DecisionReason::UnknownOrgNode,
        Reason::NodeInactive => pb::DecisionReason::NodeInactive,
        Reason::UserInactive => pb::DecisionReason::UserInactive,
        Reason::TenantSuspended => pb::DecisionReason::TenantSuspended,
        Reason::UnknownUser => pb::DecisionReason::UnknownUser,
    }
}

fn response(decision: Decision) -> pb::CheckCapabilityResponse {
    let outcome = if decision.allowed() {
        "allowed"
    } else {
        "denied"
    };
    crate::metrics::decision("grpc_check", outcome, decision.reason.as_str());
    pb::CheckCapabilityResponse {
        allowed: decision.allowed(),
        reason: reason(decision.reason) as i32,
        grants: decision.grants.into_iter().map(grant).collect(),
        consistency_token: String::new(),
    }
}

fn grant(g: GrantExplanation) -> pb::Grant {
    pb::Grant {
        assignment_id: id_text(g.assignment_id),
        role_id: id_text(g.role_id),
        role_label: g.role_label,
        org_node_id: id_text(g.org_node_id),
        depth: g.depth,
    }
}

fn access(access: authz::Access) -> pb::NodeAccess {
    let source = match access {
        authz::Access::Assignment {
            assignment_id,
            role_id,
            role_label,
            org_node_id,
        } => pb::node_access::Source::Assignment(pb::AssignmentAccess {
            assignment_id: id_text(assignment_id),
            role_id: id_text(role_id),
            role_label,
            org_node_id: id_text(org_node_id),
        }),
        authz::Access::Grant {
            grant_id,
            scope,
            org_node_id,
        } => pb::node_access::Source::Grant(pb::GrantAccess {
            grant_id: id_text(grant_id),
            scope: match scope {
                authz::GrantScope::Read => pb::VisibilityScope::Read,
                authz::GrantScope::Analyze => pb::VisibilityScope::Analyze,
            } as i32,
            org_node_id: id_text(org_node_id),
        }),
    };
    pb::NodeAccess {
        source: Some(source),
    }
}

#[tonic::async_trait]
impl Authorization for AuthorizationService {
    async fn check_endpoint(
        &self,
        request: Request<pb::CheckEndpointRequest>,
    ) -> Result<Response<pb::CheckEndpointResponse>, Status> {
        let body = request.get_ref();
        let service = ServiceKey::parse(&body.service).map_err(|e| invalid("service", e))?;
        let method = HttpMethod::parse(&body.method).map_err(|e| invalid("method", e))?;
        if method == HttpMethod::Any {
            return Err(invalid("method", "must be the request's own method"));
        }
        let path = body.path.split(['?', '#']).next().unwrap_or_default();
        if !path.starts_with('/') || path.len() > MAX_PATH_LEN {
            return Err(invalid(
                "path",
                format!("must start with / and be at most {MAX_PATH_LEN} characters"),
            ));
        }
        let headers: HashMap<String, String> = body
            .headers
            .iter()
            .map(|(name, value)| (name.to_ascii_lowercase(), value.clone()))
            .collect();
        let subject = self.subject(&request, body.subject.as_ref())?;
        let request_id = request_id(&request);
        let endpoint = EndpointRequest {
            service: service.as_str(),
            method,
            path,
            headers: &headers,
            fields: &body.fields,
        };
        let decided = authz::check_endpoint(
            &self.db,
            &self.catalogue,
            subject,
            &endpoint,
            false,
            request_id.as_deref(),
        )
        .await?;
        let answer = match decided {
            EndpointDecision::NoMatchingEndpoint => pb::CheckEndpointResponse {
                allowed: false,
                reason: pb::DecisionReason::NoMatchingEndpoint as i32,
                policy: None,
                org_node_id: String::new(),
            },
            EndpointDecision::OrgNodeNotGiven(policy) => pb::CheckEndpointResponse {
                allowed: false,
                reason: pb::DecisionReason::OrgNodeNotGiven as i32,
                policy: Some(policy_message(policy)),
                org_node_id: String::new(),
            },
            EndpointDecision::Decided {
                policy,
                org_node_id,
                decision,
                ..
            } => pb::CheckEndpointResponse {
                allowed: decision.allowed(),
                reason: reason(decision.reason) as i32,
                policy: Some(policy_message(policy)),
                org_node_id: id_text(org_node_id.get()),
            },
        };
        let label = pb::DecisionReason::try_from(answer.reason)
            .map(|r| r.as_str_name())
            .unwrap_or("UNSPECIFIED");
        let outcome = if answer.allowed { "allowed" } else { "denied" };
        crate::metrics::decision("grpc_endpoint", outcome, &label.to_ascii_lowercase());
        tracing::Span::current().record("decision", label);
        Ok(Response::new(answer))
    }

    async fn check_capability(
        &self,
        request: Request<pb::CheckCapabilityRequest>,
    ) -> Result<Response<pb::CheckCapabilityResponse>, Status> {
        let body = request.get_ref();
        let check = parse_check("", &body.capability, &body.org_node_id)?;
        let subject = self.subject(&request, body.subject.as_ref())?;
        let request_id = request_id(&request);
        let mut decisions = authz::check(
            &self.db,
            subject,
            std::slice::from_ref(&check),
            body.explain,
            request_id.as_deref(),
        )
        .await?;
        let decision = decisions
            .pop()
            .ok_or_else(|| Status::internal("internal error"))?;
        tracing::Span::current().record("decision", decision.reason.as_str());
        Ok(Response::new(pb::CheckCapabilityResponse {
            consistency_token: self.consistency_token(),
            ..response(decision)
        }))
    }

    async fn check_capabilities(
        &self,
        request: Request<pb::CheckCapabilitiesRequest>,
    ) -> Result<Response<pb::CheckCapabilitiesResponse>, Status> {
        let body = request.get_ref();
        if body.checks.len() > self.max_batch_checks {
            return Err(invalid(
                "checks",
                format!("at most {} checks per call", self.max_batch_checks),
            ));
        }
        let checks = body
            .checks
            .iter()
            .enumerate()
            .map(|(i, c)| parse_check(&format!("checks[{i}]."), &c.capability, &c.org_node_id))
            .collect::<Result<Vec<_>, _>>()?;
        let subject = self.subject(&request, body.subject.as_ref())?;
        let request_id = request_id(&request);
        let decisions = authz::check(
            &self.db,
            subject,
            &checks,
            body.explain,
            request_id.as_deref(),
        )
        .await?;
        Ok(Response::new(pb::CheckCapabilitiesResponse {
            results: decisions.into_iter().map(response).collect(),
            consistency_token: self.consistency_token(),
        }))
    }

    async fn list_users_with_capability(
        &self,
        request: Request<pb::ListUsersWithCapabilityRequest>,
    ) -> Result<Response<pb::ListUsersWithCapabilityResponse>, Status> {
        let body = request.get_ref();
        let tenant_id: TenantId = parse_id("tenant_id", &body.tenant_id)?;
        let query = HoldersQuery {
            tenant_id,
            capability: CapabilityKey::parse(&body.capability)
                .map_err(|e| invalid("capability", e))?,
            org_node_id: parse_id("org_node_id", &body.org_node_id)?,
            page_size: match body.page_size {
                0 => authz::DEFAULT_PAGE_SIZE,
                size => size.min(authz::MAX_PAGE_SIZE),
            },
            page_token: Some(body.page_token.clone()).filter(|t| !t.is_empty()),
        };
        let caller = caller(&request)?;
        authz::may_ask_about_tenant(&caller, tenant_id, "tenant_id")?;
        let context = RlsContext::anonymous()
            .with_service(caller.actor().1)
            .with_request_id(request_id(&request).as_deref());
        let holders =
            authz::list_holders(&self.db, self.tokens.keys(), context, &query, Utc::now()).await?;
        Ok(Response::new(pb::ListUsersWithCapabilityResponse {
            consistency_token: self.consistency_token(),
            users: holders
                .users
                .into_iter()
                .map(|holder| pb::UserWithCapability {
                    user_id: id_text(holder.user_id),
                    grants: holder.grants.into_iter().map(grant).collect(),
                })
                .collect(),
            next_page_token: holders.next_page_token.unwrap_or_default(),
        }))
    }

    async fn list_visible_org_nodes(
        &self,
        request: Request<pb::ListVisibleOrgNodesRequest>,
    ) -> Result<Response<pb::ListVisibleOrgNodesResponse>, Status> {
        let body = request.get_ref();
        let scope = match pb::VisibilityScope::try_from(body.scope) {
            Ok(pb::VisibilityScope::Any) => Scope::Any,
            Ok(pb::VisibilityScope::Read) => Scope::Read,
            Ok(pb::VisibilityScope::Analyze) => Scope::Analyze,
            Err(_) => return Err(invalid("scope", "unknown value")),
        };
        // The same rule as the nodes' own type (`NodeType::parse`).
        let node_type = match body.node_type.as_str() {
            "" => None,
            value => Some(
                NodeType::parse(value)
                    .map_err(|e| invalid("node_type", e))?
                    .as_str()
                    .to_owned(),
            ),
        };
        let under = match body.under_org_node_id.as_str() {
            "" => None,
            value => Some(parse_id("under_org_node_id", value)?),
        };
        let page_size = match body.page_size {
            0 => authz::DEFAULT_PAGE_SIZE,
            // Larger pages are served at the maximum (AIP-158).
            size => size.min(authz::MAX_PAGE_SIZE),
        };
        let page_token = match body.page_token.as_str() {
            "" => None,
            token => Some(token.to_owned()),
        };
        let subject = self.subject(&request, body.subject.as_ref())?;
        let request_id = request_id(&request);
        let listing = authz::list_visible(
            &self.db,
            self.tokens.keys(),
            subject,
            &ListingQuery {
                scope,
                node_type,
                under,
                page_size,
                page_token,
            },
            request_id.as_deref(),
            Utc::now(),
        )
        .await?;
        Ok(Response::new(pb::ListVisibleOrgNodesResponse {
            consistency_token: self.consistency_token(),
            nodes: listing
                .nodes
                .into_iter()
                .map(|node| pb::VisibleOrgNode {
                    org_node_id: id_text(node.id),
                    parent_org_node_id: node.parent_id.map(id_text).unwrap_or_default(),
                    node_type: node.node_type,
                    label: node.label,
                    access: node.access.into_iter().map(access).collect(),
                })
                .collect(),
            next_page_token: listing.next_page_token.unwrap_or_default(),
        }))
    }
}
