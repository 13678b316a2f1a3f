//! Who can do this here: the users who hold a capability at a node right
//! now (SpiceDB's LookupSubjects, OpenFGA's ListUsers), each with the
//! assignments that give it. Exactly the users `CheckCapability` would
//! allow: active users of an active tenant, an assignment in force at the
//! node or above it whose role holds the capability, and no inactive node
//! on the way up. Keyset-paged by user id, complete across pages.

use chrono::{DateTime, Utc};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use scoped_futures::ScopedFutureExt;
use uuid::Uuid;

use super::queries::{HoldersPage, KnownCapabilityAndNode};
use super::{AuthzError, CapabilityKey, GrantExplanation, MAX_PAGE_SIZE};
use crate::db::{Db, RlsContext};
use crate::names::{OrgNodeId, TenantId};
use crate::pagination::page_token;
use crate::tokens::KeyRing;

/// Which holders, and which page of them.
#[derive(Clone, Debug)]
pub struct HoldersQuery {
    pub tenant_id: TenantId,
    pub capability: CapabilityKey,
    pub org_node_id: OrgNodeId,
    pub page_size: u32,
    pub page_token: Option<String>,
}

/// A user who holds the capability, and every assignment that gives it
/// (nearest node first).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Holder {
    pub user_id: Uuid,
    pub grants: Vec<GrantExplanation>,
}

#[derive(Clone, Debug)]
pub struct Holders {
    pub users: Vec<Holder>,
    pub next_page_token: Option<String>,
}

impl HoldersQuery {
    fn binding(&self) -> [u8; 16] {
        page_token::binding(&[
            b"holders",
            self.tenant_id.get().as_bytes(),
            self.capability.as_str().as_bytes(),
            self.org_node_id.get().as_bytes(),
        ])
    }
}

/// User, assignment, role, role label, the node holding it, depth.
type Row = (Uuid, Uuid, Uuid, String, Uuid, i32);

pub async fn list_holders(
    db: &Db,
    keys: &KeyRing,
    caller: RlsContext,
    query: &HoldersQuery,
    now: DateTime<Utc>,
) -> Result<Holders, AuthzError> {
    let bound_to = query.binding();
    let after = match &query.page_token {
        Some(token) => {
            page_token::decode(keys, token, bound_to, now).ok_or(AuthzError::BadPageToken)?
        }
        None => Uuid::nil(),
    };
    let page_size = query.page_size.clamp(1, MAX_PAGE_SIZE);
    let ctx = caller.with_tenant(query.tenant_id.get());
    let (capability, node) = (query.capability.as_str(), query.org_node_id.get());
    let rows: Vec<Row> = db
        .read(&ctx, |conn| {
            async move {
                // Both reads pipelined in one round trip.
                let c: &AsyncPgConnection = conn;
                let known = KnownCapabilityAndNode { capability, node }
                    .get_result::<(i32, i32)>(&mut { c });
                let page = HoldersPage {
                    capability,
                    node,
                    after,
                    limit: page_size as i32 + 1,
                }
                .load::<Row>(&mut { c });
                let ((capabilities, nodes), rows) = futures_util::try_join!(known, page)?;
                if capabilities == 0 {
                    return Err(AuthzError::UnknownCapability);
                }
                if nodes == 0 {
                    return Err(AuthzError::UnknownOrgNode);
                }
                Ok(rows)
            }
            .scope_boxed()
        })
        .await?;
    let mut users: Vec<Holder> = Vec::new();
    for (user_id, assignment_id, role_id, role_label, org_node_id, depth) in rows {
        let grant = GrantExplanation {
            assignment_id,
            role_id,
            role_label,
            org_node_id,
            depth,
        };
        match users.last_mut() {
            Some(holder) if holder.user_id == user_id => holder.grants.push(grant),
            _ => users.push(Holder {
                user_id,
                grants: vec![grant],
            }),
        }
    }
    let next_page_token = if users.len() > page_size as usize {
        users.truncate(page_size as usize);
        let last = users.last().map(|h| h.user_id);
        last.and_then(|after| page_token::encode(keys, after, bound_to, now))
    } else {
        None
    };
    Ok(Holders {
        users,
        next_page_token,
    })
}
