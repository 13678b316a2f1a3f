//! The endpoint catalogue's messages, read and written the same way by
//! `Administration` (which changes it) and `Authorization` (which decides
//! by it).

use tonic::Status;

use super::request::invalid;
use crate::admin::global::{EndpointPolicy, EndpointRule};
use crate::authz::CapabilityKey;
use crate::names::{HttpMethod, NodeSource, RoutePattern, ServiceKey};
use crate::proto::v1 as pb;

pub fn policy_message(policy: EndpointPolicy) -> pb::EndpointPolicy {
    pb::EndpointPolicy {
        endpoint_id: policy.id.to_string(),
        service_key: policy.service_key,
        method: policy.method,
        route_pattern: policy.route_pattern,
        capability: policy.capability,
        node_source: Some(pb::NodeSource {
            kind: policy.node_source.kind().to_owned(),
            name: policy.node_source.name().to_owned(),
        }),
    }
}

/// What a create or update request says the entry is; each refusal names
/// its field.
pub fn parse_rule(
    service_key: &str,
    method: &str,
    route_pattern: &str,
    capability: &str,
    node_source: Option<&pb::NodeSource>,
) -> Result<EndpointRule, Status> {
    let route = RoutePattern::parse(route_pattern).map_err(|e| invalid("route_pattern", e))?;
    let node_source = node_source.ok_or_else(|| invalid("node_source", "is required"))?;
    Ok(EndpointRule {
        service_key: ServiceKey::parse(service_key).map_err(|e| invalid("service_key", e))?,
        method: HttpMethod::parse(method).map_err(|e| invalid("method", e))?,
        node_source: NodeSource::parse(&node_source.kind, &node_source.name, &route).map_err(
            |e| match node_source.kind.as_str() {
                "path" | "header" | "field" => invalid("node_source.name", e),
                _ => invalid("node_source.kind", e),
            },
        )?,
        route,
        capability: CapabilityKey::parse(capability).map_err(|e| invalid("capability", e))?,
    })
}
