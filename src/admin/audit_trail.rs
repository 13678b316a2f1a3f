//! Reading the audit trail: a tenant's events, newest first, in keyset
//! pages (`occurred_at`, `id`), so a page costs the same however deep.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use scoped_futures::ScopedFutureExt;
use uuid::Uuid;

use super::{AdminError, Administrator, Cursor};
use crate::db::Db;
use crate::db::schema::audit::audit_events;

pub use crate::pagination::{DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE};

#[derive(Clone, Debug, PartialEq)]
pub struct Event {
    pub id: Uuid,
    pub occurred_at: DateTime<Utc>,
    pub tenant_id: Option<Uuid>,
    pub actor_kind: String,
    /// The user's or the service's id.
    pub actor_id: Option<Uuid>,
    pub action: String,
    pub entity_kind: String,
    /// The entity's id, or the reference it was recorded by.
    pub entity_id: Option<String>,
    pub request_id: Option<String>,
    pub payload: serde_json::Value,
}

/// An audit row as stored: the seed's columns and the product's (read by
/// the change stream too).
#[derive(Queryable, Selectable)]
#[diesel(table_name = audit_events)]
pub(crate) struct EventRow {
    audit_id: Uuid,
    occurred_utc: DateTime<Utc>,
    tenant_id: Option<Uuid>,
    actor_kind_code: String,
    actor_user_id: Option<Uuid>,
    actor_svc_id: Option<Uuid>,
    action_key: String,
    entity_kind_code: String,
    entity_id: Option<Uuid>,
    entity_ref_text: Option<String>,
    request_id: Option<String>,
    payload_json: serde_json::Value,
}

impl From<EventRow> for Event {
    fn from(row: EventRow) -> Self {
        Self {
            id: row.audit_id,
            occurred_at: row.occurred_utc,
            tenant_id: row.tenant_id,
            actor_kind: row.actor_kind_code,
            actor_id: row.actor_user_id.or(row.actor_svc_id),
            action: row.action_key,
            entity_kind: row.entity_kind_code,
            entity_id: row
                .entity_id
                .map(|id| id.to_string())
                .or(row.entity_ref_text),
            request_id: row.request_id,
            payload: row.payload_json,
        }
    }
}

pub struct AuditQuery {
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
    pub page_size: u32,
    pub after: Option<Cursor>,
}

/// One page, newest first, and the cursor of the next one if there is more.
pub async fn list(
    db: &Db,
    admin: &Administrator,
    query: AuditQuery,
) -> Result<(Vec<Event>, Option<Cursor>), AdminError> {
    let tenant = admin.tenant_id;
    let size = i64::from(query.page_size.clamp(1, MAX_PAGE_SIZE));
    db.read(&admin.context(), |conn| {
        async move {
            let mut select = audit_events::table
                .filter(audit_events::tenant_id.eq(tenant))
                .order((
                    audit_events::occurred_utc.desc(),
                    audit_events::audit_id.desc(),
                ))
                .limit(size + 1)
                .select(EventRow::as_select())
                .into_boxed();
            if let Some(since) = query.since {
                select = select.filter(audit_events::occurred_utc.ge(since));
            }
            if let Some(until) = query.until {
                select = select.filter(audit_events::occurred_utc.lt(until));
            }
            if let Some(after) = query.after {
                select = select.filter(
                    audit_events::occurred_utc
                        .lt(after.at)
                        .or(audit_events::occurred_utc
                            .eq(after.at)
                            .and(audit_events::audit_id.lt(after.id))),
                );
            }
            let mut events: Vec<Event> = select
                .load::<EventRow>(conn)
                .await?
                .into_iter()
                .map(Event::from)
                .collect();
            let more = events.len() as i64 > size;
            events.truncate(size as usize);
            let next = more
                .then(|| events.last())
                .flatten()
                .map(|last| Cursor::new(last.occurred_at, last.id));
            Ok((events, next))
        }
        .scope_boxed()
    })
    .await
}
