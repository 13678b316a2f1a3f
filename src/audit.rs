//! Audit rows, written in the caller's transaction so a change and its
//! record commit or roll back together. Payloads never carry secrets.

use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use crate::db::DbError;
use crate::db::schema::audit::audit_events;

/// Who did it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Actor {
    User(Uuid),
    Service(Uuid),
    /// Operator tooling (CLI, seeding).
    System,
    /// Someone who has not authenticated (e.g. a failed exchange).
    Anonymous,
}

impl Actor {
    /// `actor_kind_code`, `actor_user_id`, `actor_svc_id`.
    fn columns(self) -> (&'static str, Option<Uuid>, Option<Uuid>) {
        match self {
            Self::User(id) => ("user", Some(id), None),
            Self::Service(id) => ("service", None, Some(id)),
            Self::System => ("system", None, None),
            Self::Anonymous => ("anonymous", None, None),
        }
    }
}

/// What an event is about: a row's id (`entity_id`), or a reference that
/// is not one, such as the login name of a failed login or a service key
/// (`entity_ref_text`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Entity {
    Id(Uuid),
    Ref(String),
}

/// One audit event. `action` is a dot-separated key such as
/// `service.credential_exchanged`.
#[derive(Clone, Debug)]
pub struct AuditEvent<'a> {
    pub tenant_id: Option<Uuid>,
    pub actor: Actor,
    pub action: &'a str,
    pub entity_kind: &'a str,
    pub entity: Option<Entity>,
    pub request_id: Option<&'a str>,
    pub payload: serde_json::Value,
}

/// Takes a shared connection so that the row can be pipelined with the
/// writes it records.
pub async fn record(conn: &AsyncPgConnection, event: AuditEvent<'_>) -> Result<(), DbError> {
    let (actor_kind, actor_user, actor_service) = event.actor.columns();
    let (entity_id, entity_ref) = match event.entity {
        Some(Entity::Id(id)) => (Some(id), None),
        Some(Entity::Ref(reference)) => (None, Some(reference)),
        None => (None, None),
    };
    diesel::insert_into(audit_events::table)
        .values((
            audit_events::tenant_id.eq(event.tenant_id),
            audit_events::actor_kind_code.eq(actor_kind),
            audit_events::actor_user_id.eq(actor_user),
            audit_events::actor_svc_id.eq(actor_service),
            audit_events::action_key.eq(event.action),
            audit_events::entity_kind_code.eq(event.entity_kind),
            audit_events::entity_id.eq(entity_id),
            audit_events::entity_ref_text.eq(entity_ref),
            audit_events::request_id.eq(event.request_id),
            audit_events::payload_json.eq(event.payload),
        ))
        .execute(&mut { conn })
        .await?;
    Ok(())
}
