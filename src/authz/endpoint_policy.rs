//! An entry of the endpoint catalogue as the decision reads it (the
//! administration writes it, `admin::global::endpoints`).

use uuid::Uuid;

use crate::db::schema::auth::endpoint_policy as ep;
use crate::names::NodeSource;

/// One entry of the catalogue.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct EndpointPolicy {
    pub id: Uuid,
    pub service_key: String,
    pub method: String,
    pub route_pattern: String,
    pub capability: String,
    pub node_source: NodeSource,
}

/// An entry as stored: id, service, method, route, capability, node source.
pub type Row = (Uuid, String, String, String, String, String, String);

pub const COLUMNS: (
    ep::endpoint_id,
    ep::service_key,
    ep::method_code,
    ep::route_pattern,
    ep::capability,
    ep::node_source_code,
    ep::node_source_name,
) = (
    ep::endpoint_id,
    ep::service_key,
    ep::method_code,
    ep::route_pattern,
    ep::capability,
    ep::node_source_code,
    ep::node_source_name,
);

impl EndpointPolicy {
    pub fn from_row((id, service_key, method, route_pattern, capability, kind, name): Row) -> Self {
        let node_source = match kind.as_str() {
            "path" => NodeSource::Path(name),
            "header" => NodeSource::Header(name),
            _ => NodeSource::Field(name),
        };
        Self {
            id,
            service_key,
            method,
            route_pattern,
            capability,
            node_source,
        }
    }
}
