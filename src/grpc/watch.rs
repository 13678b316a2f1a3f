//! `Changes/Watch`: the change stream over gRPC. Parses the request, opens
//! the stream (`watch::Hub`), and turns each change into the API's own
//! message types.

use std::pin::Pin;
use std::sync::Arc;

use chrono::Utc;
use futures_util::{Stream, StreamExt};
use tonic::{Request, Response, Status};

use super::administration::convert;
use super::endpoint_catalogue::policy_message;
use super::fields::parse_uuid;
use super::request::{caller, request_id, timestamp};
use crate::proto::v1 as pb;
use crate::tokens::Tokens;
use crate::watch::{Change, Hub, Item, Kind, Start, Subscription};

pub struct ChangesService {
    hub: Arc<Hub>,
    tokens: Arc<Tokens>,
}

impl ChangesService {
    pub fn new(hub: Arc<Hub>, tokens: Arc<Tokens>) -> Self {
        Self { hub, tokens }
    }
}

type WatchStream = Pin<Box<dyn Stream<Item = Result<pb::WatchResponse, Status>> + Send>>;

#[tonic::async_trait]
impl pb::changes_server::Changes for ChangesService {
    type WatchStream = WatchStream;

    async fn watch(
        &self,
        request: Request<pb::WatchRequest>,
    ) -> Result<Response<WatchStream>, Status> {
        let principal = caller(&request)?;
        let request_id = request_id(&request);
        let body = request.into_inner();
        let tenant = match body.tenant_id.trim() {
            "" => None,
            id => Some(parse_uuid("tenant_id", id)?),
        };
        let kinds = Kind::parse_all(&body.kinds)?;
        let start = Start::parse(self.tokens.keys(), &body.resume_token, Utc::now())?;
        let subscription = Subscription::for_caller(&principal, tenant, kinds, start, request_id)?;
        let stream = self.hub.open(subscription).await?;
        Ok(Response::new(Box::pin(
            stream.map(|item| item.map(response).map_err(Status::from)),
        )))
    }
}

fn response(item: Item) -> pb::WatchResponse {
    match item {
        Item::Change { change, token } => pb::WatchResponse {
            token,
            event: Some(pb::watch_response::Event::Change(change_message(*change))),
        },
        Item::Checkpoint { token } => pb::WatchResponse {
            token,
            event: Some(pb::watch_response::Event::Checkpoint(pb::Checkpoint {})),
        },
    }
}

fn change_message(change: Change) -> pb::Change {
    let Change {
        position,
        event_id,
        committed_at,
        tenant_id,
        kind,
        action,
        entity_id,
        actor_kind,
        actor_id,
        request_id,
        before,
        after,
        effect,
    } = change;
    let text = |id: Option<uuid::Uuid>| id.map(|id| id.to_string()).unwrap_or_default();
    let row = |value: Option<serde_json::Value>| {
        value.and_then(|value| changed_row(&kind, value, event_id))
    };
    pb::Change {
        position,
        event_id: event_id.to_string(),
        committed_at: Some(timestamp(committed_at)),
        tenant_id: text(tenant_id),
        entity_id: entity_id.unwrap_or_default(),
        actor_id: text(actor_id),
        request_id: request_id.unwrap_or_default(),
        before: row(before),
        after: row(after),
        effect: Some(pb::AccessEffect {
            all_capabilities: effect.capabilities.is_none(),
            capabilities: effect.capabilities.unwrap_or_default(),
            subtree_root_id: text(effect.subtree_root_id),
            user_ids: effect.user_ids.iter().map(ToString::to_string).collect(),
            effective_from: effect.effective_from.map(timestamp),
            effective_until: effect.effective_until.map(timestamp),
        }),
        kind,
        action,
        actor_kind,
    }
}

/// The audit row's value as the API's message of its kind. A value that
/// does not read as one (never written by this version) is left out and
/// logged: the change itself is still delivered.
fn changed_row(kind: &str, value: serde_json::Value, event: uuid::Uuid) -> Option<pb::ChangedRow> {
    use pb::changed_row::Row;
    fn read<T: serde::de::DeserializeOwned>(
        value: serde_json::Value,
    ) -> Result<T, serde_json::Error> {
        serde_json::from_value(value)
    }
    let row = match kind {
        "assignment" => read(value).map(|v| Row::Assignment(convert::assignment(v))),
        "visibility_grant" => read(value).map(|v| Row::VisibilityGrant(convert::grant(v))),
        "org_node" => read(value).map(|v| Row::OrgNode(convert::node(v))),
        "role" => read(value).map(|v| Row::Role(convert::role(v))),
        "capability" => read(value).map(|v| Row::Capability(convert::capability(v))),
        "user" => read(value).map(|v| Row::User(convert::user(v))),
        "tenant" => read(value).map(|v| Row::Tenant(convert::tenant(v))),
        "endpoint_policy" => read(value).map(|v| Row::EndpointPolicy(policy_message(v))),
        _ => return None,
    };
    match row {
        Ok(row) => Some(pb::ChangedRow { row: Some(row) }),
        Err(error) => {
            tracing::warn!(%event, kind, %error, "an audit row's value does not read as its kind");
            None
        }
    }
}
