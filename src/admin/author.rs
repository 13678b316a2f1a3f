//! The author of an audit row: tenant, actor, request.

use uuid::Uuid;

use super::AdminError;
use crate::audit::{Actor, Entity};

/// Whom an audit row names for a change: the tenant (none for global rows
/// such as the catalogue), the actor and the request.
#[derive(Clone, Copy, Debug)]
pub(super) struct Author<'a> {
    pub tenant_id: Option<Uuid>,
    pub actor: Actor,
    pub request_id: Option<&'a str>,
}

impl Author<'_> {
    pub(super) async fn record_change<T: serde::Serialize>(
        &self,
        conn: &mut diesel_async::AsyncPgConnection,
        action: &str,
        entity: (&str, Uuid),
        before: Option<&T>,
        after: &T,
    ) -> Result<(), AdminError> {
        crate::audit::record(
            conn,
            crate::audit::AuditEvent {
                tenant_id: self.tenant_id,
                actor: self.actor,
                action,
                entity_kind: entity.0,
                entity: Some(Entity::Id(entity.1)),
                request_id: self.request_id,
                payload: serde_json::json!({ "before": before, "after": after }),
            },
        )
        .await?;
        Ok(())
    }
}
