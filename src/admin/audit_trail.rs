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

pub const DEFAULT_PAGE_SIZE: u32 = 100;
pub const MAX_PAGE_SIZE: u32 = 1000;

#[derive(Clone, Debug, PartialEq, Queryable, Selectable)]
#[diesel(table_name = audit_events)]
pub struct Event {
    pub id: Uuid,
    pub occurred_at: DateTime<Utc>,
    pub tenant_id: Option<Uuid>,
    pub actor_kind: String,
    pub actor_id: Option<String>,
    pub action: String,
    pub entity_kind: String,
    pub entity_id: Option<String>,
    pub request_id: Option<String>,
    pub payload: serde_json::Value,
}

pub struct Query {
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
    pub page_size: u32,
    pub after: Option<Cursor>,
}

/// One page, newest first, and the cursor of the next one if there is more.
pub async fn list(
    db: &Db,
    admin: &Administrator,
    query: Query,
) -> Result<(Vec<Event>, Option<Cursor>), AdminError> {
    let tenant = admin.tenant_id;
    let size = i64::from(query.page_size.clamp(1, MAX_PAGE_SIZE));
    db.read(&admin.context(), |conn| {
        async move {
            let mut select = audit_events::table
                .filter(audit_events::tenant_id.eq(tenant))
                .order((audit_events::occurred_at.desc(), audit_events::id.desc()))
                .limit(size + 1)
                .select(Event::as_select())
                .into_boxed();
            if let Some(since) = query.since {
                select = select.filter(audit_events::occurred_at.ge(since));
            }
            if let Some(until) = query.until {
                select = select.filter(audit_events::occurred_at.lt(until));
            }
            if let Some(after) = query.after {
                select = select.filter(
                    audit_events::occurred_at
                        .lt(after.at)
                        .or(audit_events::occurred_at
                            .eq(after.at)
                            .and(audit_events::id.lt(after.id))),
                );
            }
            let mut events: Vec<Event> = select.load(conn).await?;
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
