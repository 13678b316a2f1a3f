//! `portcullis.v1.Administration`: parse, build the administrator, ask the
//! domain.

use tonic::{Request, Response, Status};
use uuid::Uuid;

use super::authorization::parse_uuid;
use super::request::{caller, invalid, request_id};
use crate::admin::{Administrator, Label, NodeType, org};
use crate::db::Db;
use crate::proto::v1 as pb;
use crate::proto::v1::administration_server::Administration;

pub struct AdministrationService {
    db: Db,
}

impl AdministrationService {
    pub fn new(db: Db) -> Self {
        Self { db }
    }
}

/// The caller, acting in the request's tenant.
fn administrator<T>(request: &Request<T>, tenant_id: &str) -> Result<Administrator, Status> {
    let tenant = parse_uuid("tenant_id", tenant_id)?;
    Ok(Administrator::in_tenant(
        caller(request)?,
        tenant,
        request_id(request),
        "tenant_id",
    )?)
}

fn label(value: &str) -> Result<Label, Status> {
    Label::parse(value).map_err(|e| invalid("label", e))
}

fn optional_uuid(field: &str, value: &str) -> Result<Option<Uuid>, Status> {
    if value.is_empty() {
        return Ok(None);
    }
    parse_uuid(field, value).map(Some)
}

fn node(node: org::OrgNode) -> pb::OrgNode {
    pb::OrgNode {
        active: node.active(),
        org_node_id: node.id.to_string(),
        tenant_id: node.tenant_id.to_string(),
        parent_org_node_id: node.parent_id.map(|p| p.to_string()).unwrap_or_default(),
        node_type: node.node_type,
        label: node.label,
    }
}

#[tonic::async_trait]
impl Administration for AdministrationService {
    async fn create_org_node(
        &self,
        request: Request<pb::CreateOrgNodeRequest>,
    ) -> Result<Response<pb::OrgNode>, Status> {
        let admin = administrator(&request, &request.get_ref().tenant_id)?;
        let body = request.into_inner();
        let parent = optional_uuid("parent_org_node_id", &body.parent_org_node_id)?;
        let node_type = NodeType::parse(&body.node_type).map_err(|e| invalid("node_type", e))?;
        let label = label(&body.label)?;
        let created = org::create(&self.db, &admin, parent, &node_type, &label).await?;
        Ok(Response::new(node(created)))
    }

    async fn rename_org_node(
        &self,
        request: Request<pb::RenameOrgNodeRequest>,
    ) -> Result<Response<pb::OrgNode>, Status> {
        let admin = administrator(&request, &request.get_ref().tenant_id)?;
        let body = request.into_inner();
        let id = parse_uuid("org_node_id", &body.org_node_id)?;
        let label = label(&body.label)?;
        let renamed = org::rename(&self.db, &admin, id, &label).await?;
        Ok(Response::new(node(renamed)))
    }

    async fn move_org_node(
        &self,
        request: Request<pb::MoveOrgNodeRequest>,
    ) -> Result<Response<pb::OrgNode>, Status> {
        let admin = administrator(&request, &request.get_ref().tenant_id)?;
        let body = request.into_inner();
        let id = parse_uuid("org_node_id", &body.org_node_id)?;
        let parent = parse_uuid("new_parent_org_node_id", &body.new_parent_org_node_id)?;
        let moved = org::move_under(&self.db, &admin, id, parent).await?;
        Ok(Response::new(node(moved)))
    }

    async fn deactivate_org_node(
        &self,
        request: Request<pb::OrgNodeRef>,
    ) -> Result<Response<pb::OrgNode>, Status> {
        self.set_active(request, false).await
    }

    async fn reactivate_org_node(
        &self,
        request: Request<pb::OrgNodeRef>,
    ) -> Result<Response<pb::OrgNode>, Status> {
        self.set_active(request, true).await
    }

    async fn get_org_subtree(
        &self,
        request: Request<pb::GetOrgSubtreeRequest>,
    ) -> Result<Response<pb::GetOrgSubtreeResponse>, Status> {
        let admin = administrator(&request, &request.get_ref().tenant_id)?;
        let body = request.into_inner();
        let id = parse_uuid("org_node_id", &body.org_node_id)?;
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
}

impl AdministrationService {
    async fn set_active(
        &self,
        request: Request<pb::OrgNodeRef>,
        active: bool,
    ) -> Result<Response<pb::OrgNode>, Status> {
        let admin = administrator(&request, &request.get_ref().tenant_id)?;
        let id = parse_uuid("org_node_id", &request.get_ref().org_node_id)?;
        let changed = org::set_active(&self.db, &admin, id, active).await?;
        Ok(Response::new(node(changed)))
    }
}
