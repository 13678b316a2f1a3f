//! The searches of AuthZEN beside "who can" ([`super::holders`]): the
//! nodes where a user holds a capability (resource search) and the
//! capabilities a user holds at a node (action search). Both answer exactly
//! as `CheckCapability` would for each result, in keyset pages.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use futures_util::FutureExt;
use scoped_futures::ScopedFutureExt;
use uuid::Uuid;

use super::listing::PageRow;
use super::queries::{Covering, PreferOrderedIndexScans, VisiblePage};
use super::{AuthzError, CapabilityKey, MAX_PAGE_SIZE, Subject};
use crate::db::Db;
use crate::db::schema::auth::{
    capabilities as cap, org_assignments as oa, org_node_paths as p, org_nodes as n,
    role_capabilities as rc, tenants as t, users as u,
};
use crate::names::OrgNodeId;
use crate::pagination::page_token;
use crate::tokens::KeyRing;

/// A page of results and the token of the next one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_page_token: Option<String>,
}

/// Which page: its size (1 to [`MAX_PAGE_SIZE`]) and the token of the
/// previous page's answer.
#[derive(Clone, Debug)]
pub struct PageRequest {
    pub size: u32,
    pub token: Option<String>,
}

impl PageRequest {
    fn after(
        &self,
        keys: &KeyRing,
        bound_to: [u8; 16],
        now: DateTime<Utc>,
    ) -> Result<Uuid, AuthzError> {
        match &self.token {
            Some(token) => {
                page_token::decode(keys, token, bound_to, now).ok_or(AuthzError::BadPageToken)
            }
            None => Ok(Uuid::nil()),
        }
    }

    fn size(&self) -> usize {
        self.size.clamp(1, MAX_PAGE_SIZE) as usize
    }
}

/// Cuts `rows` (one more than a page, when there is more) to a page.
fn page<T>(
    mut rows: Vec<(Uuid, T)>,
    size: usize,
    keys: &KeyRing,
    bound_to: [u8; 16],
    now: DateTime<Utc>,
) -> Page<T> {
    let next_page_token = if rows.len() > size {
        rows.truncate(size);
        rows.last()
            .and_then(|(after, _)| page_token::encode(keys, *after, bound_to, now))
    } else {
        None
    };
    Page {
        items: rows.into_iter().map(|(_, item)| item).collect(),
        next_page_token,
    }
}

/// The nodes where `subject` holds `capability`, by id: every node under an
/// in-force assignment whose role grants it, none under an inactive node.
pub async fn nodes_with_capability(
    db: &Db,
    keys: &KeyRing,
    subject: Subject,
    capability: &CapabilityKey,
    request: &PageRequest,
    request_id: Option<&str>,
    now: DateTime<Utc>,
) -> Result<Page<Uuid>, AuthzError> {
    let bound_to = page_token::binding(&[
        b"nodes_with_capability",
        subject.tenant_id.get().as_bytes(),
        subject.user_id.get().as_bytes(),
        capability.as_str().as_bytes(),
    ]);
    let after = request.after(keys, bound_to, now)?;
    let size = request.size();
    let user = subject.user_id.get();
    let key = capability.as_str().to_owned();
    // One statement, pipelined: the covering assignments, the inactive
    // nodes and the subject's state are read by the page itself.
    let rows: Vec<PageRow> = db
        .read_pipelined(&subject.rls_context(request_id), move |c| {
            async move {
                let page = VisiblePage {
                    covering: Covering::Holding {
                        user,
                        capability: &key,
                    },
                    after,
                    node_type: None,
                    under: None,
                    limit: size as i32 + 1,
                };
                let ((), rows) = futures_util::future::try_join(
                    PreferOrderedIndexScans::apply(c),
                    page.load::<PageRow>(&mut { c }),
                )
                .await?;
                Ok(rows)
            }
            .boxed()
        })
        .await?;
    let rows: Vec<Uuid> = rows.into_iter().map(|row| row.0).collect();
    Ok(page(
        rows.into_iter().map(|id| (id, id)).collect(),
        size,
        keys,
        bound_to,
        now,
    ))
}

/// The capabilities `subject` holds at `node`, by capability id: granted by
/// the role of an in-force assignment at the node or above; none when the
/// subject, its tenant, the node or a node above it is inactive.
pub async fn capabilities_at(
    db: &Db,
    keys: &KeyRing,
    subject: Subject,
    node: OrgNodeId,
    request: &PageRequest,
    request_id: Option<&str>,
    now: DateTime<Utc>,
) -> Result<Page<String>, AuthzError> {
    let bound_to = page_token::binding(&[
        b"capabilities_at",
        subject.tenant_id.get().as_bytes(),
        subject.user_id.get().as_bytes(),
        node.get().as_bytes(),
    ]);
    let after = request.after(keys, bound_to, now)?;
    let size = request.size();
    let (user, node) = (subject.user_id.get(), node.get());
    let rows: Vec<(Uuid, String)> = db
        .read(&subject.rls_context(request_id), |conn| {
            async move {
                let c: &AsyncPgConnection = conn;
                let now = diesel::dsl::now;
                // The node and every node above it, with their flags.
                let path = p::table
                    .inner_join(n::table.on(n::org_node_id.eq(p::ancestor_org_node_id)))
                    .filter(p::descendant_org_node_id.eq(node))
                    .select(n::active_flag)
                    .load::<bool>(&mut { c });
                let held = p::table
                    .inner_join(oa::table.on(oa::org_node_id.eq(p::ancestor_org_node_id)))
                    .inner_join(rc::table.on(rc::role_id.eq(oa::role_id)))
                    .inner_join(cap::table.on(cap::cap_id.eq(rc::cap_id)))
                    .filter(p::descendant_org_node_id.eq(node))
                    .filter(oa::user_id.eq(user))
                    .filter(oa::start_utc.le(now))
                    .filter(oa::end_utc.is_null().or(oa::end_utc.gt(now)))
                    .filter(cap::cap_id.gt(after))
                    .select((cap::cap_id, cap::cap_key))
                    .distinct()
                    .order(cap::cap_id)
                    .limit(size as i64 + 1)
                    .load::<(Uuid, String)>(&mut { c });
                let (active, path, held) = futures_util::try_join!(
                    subject_is_active(c, subject),
                    async { Ok(path.await?) },
                    async { Ok::<_, AuthzError>(held.await?) },
                )?;
                if path.is_empty() {
                    return Err(AuthzError::UnknownOrgNode);
                }
                if !active || path.iter().any(|flag| !flag) {
                    return Ok(Vec::new());
                }
                Ok(held)
            }
            .scope_boxed()
        })
        .await?;
    Ok(page(rows, size, keys, bound_to, now))
}

/// An inactive user or a suspended tenant sees nothing.
async fn subject_is_active(conn: &AsyncPgConnection, subject: Subject) -> Result<bool, AuthzError> {
    let statuses: Option<(String, String)> = u::table
        .inner_join(t::table)
        .filter(u::user_id.eq(subject.user_id))
        .select((u::user_state_code, t::tenant_state_code))
        .first(&mut { conn })
        .await
        .optional()?;
    Ok(statuses.is_some_and(|(user, tenant)| user == "active" && tenant == "active"))
}
