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
    fn parts(self) -> (&'static str, Option<String>) {
        match self {
            Self::User(id) => ("user", Some(id.to_string())),
            Self::Service(id) => ("service", Some(id.to_string())),
            Self::System => ("system", None),
            Self::Anonymous => ("anonymous", None),
        }
    }
}

/// One audit event. `action` is a dot-separated key such as
/// `service.credential_exchanged`.
#[derive(Clone, Debug)]
pub struct AuditEvent<'a> {
    pub tenant_id: Option<Uuid>,
    pub actor: Actor,
    pub action: &'a str,
    pub entity_kind: &'a str,
    pub entity_id: Option<String>,
    pub request_id: Option<&'a str>,
    pub payload: serde_json::Value,
}

pub async fn record(conn: &mut AsyncPgConnection, event: AuditEvent<'_>) -> Result<(), DbError> {
    let (actor_kind, actor_id) = event.actor.parts();
    diesel::insert_into(audit_events::table)
        .values((
            audit_events::tenant_id.eq(event.tenant_id),
            audit_events::actor_kind.eq(actor_kind),
            audit_events::actor_id.eq(actor_id),
            audit_events::action.eq(event.action),
            audit_events::entity_kind.eq(event.entity_kind),
            audit_events::entity_id.eq(event.entity_id),
            audit_events::request_id.eq(event.request_id),
            audit_events::payload.eq(event.payload),
        ))
        .execute(conn)
        .await?;
    Ok(())
}
