//! `ListVisibleOrgNodes`: every node the subject can see, each once with all
//! the sources that make it visible, in keyset pages.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use futures_util::FutureExt;
use uuid::Uuid;

use super::queries::{Covering, PreferOrderedIndexScans, VisiblePage};
use super::{AuthzError, Subject};
use crate::db::Db;
use crate::db::schema::auth::{org_assignments as oa, roles as r, visibility_grants as vg};
use crate::names::OrgNodeId;
use crate::pagination::page_token;
use crate::tokens::KeyRing;

pub use crate::pagination::{DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE};

/// A listed node: id, parent, type, label, the covering nodes above it.
pub(super) type PageRow = (Uuid, Option<Uuid>, String, String, Vec<Uuid>);

/// Which visibility the listing asks for. Assignments give both `read` and
/// `analyze`; a grant gives its scope, and `analyze` implies `read`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    Any,
    Read,
    Analyze,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GrantScope {
    Read,
    Analyze,
}

/// One source that makes a node visible.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Access {
    Assignment {
        assignment_id: Uuid,
        role_id: Uuid,
        role_label: String,
        /// Where the assignment is held (the node or an ancestor).
        org_node_id: Uuid,
    },
    Grant {
        grant_id: Uuid,
        scope: GrantScope,
        org_node_id: Uuid,
    },
}

impl Access {
    pub(super) fn held_at(&self) -> Uuid {
        match self {
            Self::Assignment { org_node_id, .. } | Self::Grant { org_node_id, .. } => *org_node_id,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VisibleNode {
    pub id: Uuid,
    pub parent_id: Option<Uuid>,
    pub node_type: String,
    pub label: String,
    pub access: Vec<Access>,
}

#[derive(Clone, Debug)]
pub struct ListingQuery {
    pub scope: Scope,
    pub node_type: Option<String>,
    pub under: Option<OrgNodeId>,
    /// 1 to [`MAX_PAGE_SIZE`].
    pub page_size: u32,
    pub page_token: Option<String>,
}

#[derive(Clone, Debug)]
pub struct Listing {
    pub nodes: Vec<VisibleNode>,
    pub next_page_token: Option<String>,
}

impl ListingQuery {
    /// Everything a page token is bound to.
    fn binding(&self, subject: Subject) -> [u8; 16] {
        let scope = match self.scope {
            Scope::Any => b"any".as_slice(),
            Scope::Read => b"read".as_slice(),
            Scope::Analyze => b"analyze".as_slice(),
        };
        let under = self
            .under
            .map(|id| *id.get().as_bytes())
            .unwrap_or_default();
        page_token::binding(&[
            subject.tenant_id.get().as_bytes(),
            subject.user_id.get().as_bytes(),
            scope,
            self.node_type.as_deref().unwrap_or_default().as_bytes(),
            &under,
        ])
    }
}

pub async fn list_visible(
    db: &Db,
    keys: &KeyRing,
    subject: Subject,
    query: &ListingQuery,
    request_id: Option<&str>,
    now: DateTime<Utc>,
) -> Result<Listing, AuthzError> {
    let bound_to = query.binding(subject);
    let after = match &query.page_token {
        Some(token) => {
            Some(page_token::decode(keys, token, bound_to, now).ok_or(AuthzError::BadPageToken)?)
        }
        None => None,
    };
    let page_size = query.page_size.clamp(1, MAX_PAGE_SIZE);
    let user = subject.user_id.get();
    let (scope, under) = (query.scope, query.under.map(OrgNodeId::get));
    let node_type = query.node_type.clone();
    // The sources and the page they cover, read in one round trip: the
    // page finds its covering nodes itself, and both read the transaction's
    // one snapshot, so they agree.
    let (sources, rows) = db
        .read_pipelined(&subject.rls_context(request_id), move |c| {
            async move {
                let page = VisiblePage {
                    covering: Covering::Visible {
                        user,
                        analyze_only: scope == Scope::Analyze,
                    },
                    after: after.unwrap_or(Uuid::nil()),
                    node_type: node_type.as_deref(),
                    under,
                    limit: page_size as i32 + 1,
                };
                let (assignments, grants, (), rows) = futures_util::future::try_join4(
                    assignments(c, user),
                    grants(c, user, scope),
                    PreferOrderedIndexScans::apply(c),
                    page.load::<PageRow>(&mut { c }),
                )
                .await?;
                let sources: Vec<Access> = assignments.into_iter().chain(grants).collect();
                Ok((sources, rows))
            }
            .boxed()
        })
        .await?;
    let mut nodes: Vec<VisibleNode> = rows
        .into_iter()
        .map(|(id, parent_id, node_type, label, holders)| VisibleNode {
            id,
            parent_id,
            node_type,
            label,
            access: sources
                .iter()
                .filter(|s| holders.contains(&s.held_at()))
                .cloned()
                .collect(),
        })
        .collect();
    let next_page_token = if nodes.len() > page_size as usize {
        nodes.truncate(page_size as usize);
        let last = nodes.last().map(|n| n.id);
        last.and_then(|after| page_token::encode(keys, after, bound_to, now))
    } else {
        None
    };
    Ok(Listing {
        nodes,
        next_page_token,
    })
}

/// The subject's in-force assignments (they give every scope).
async fn assignments(conn: &AsyncPgConnection, user: Uuid) -> QueryResult<Vec<Access>> {
    let now = diesel::dsl::now;
    let rows: Vec<(Uuid, Uuid, String, Uuid)> = oa::table
        .inner_join(r::table)
        .filter(oa::user_id.eq(user))
        .filter(oa::start_utc.le(now))
        .filter(oa::end_utc.is_null().or(oa::end_utc.gt(now)))
        .select((
            oa::assignment_id,
            r::role_id,
            r::role_label,
            oa::org_node_id,
        ))
        .order(oa::assignment_id)
        .load(&mut { conn })
        .await?;
    Ok(rows
        .into_iter()
        .map(
            |(assignment_id, role_id, role_label, org_node_id)| Access::Assignment {
                assignment_id,
                role_id,
                role_label,
                org_node_id,
            },
        )
        .collect())
}

/// The subject's in-force visibility grants that give `scope`.
async fn grants(conn: &AsyncPgConnection, user: Uuid, scope: Scope) -> QueryResult<Vec<Access>> {
    let now = diesel::dsl::now;
    let mut grants = vg::table
        .filter(vg::user_id.eq(user))
        .filter(vg::start_utc.le(now))
        .filter(vg::end_utc.is_null().or(vg::end_utc.gt(now)))
        .select((vg::grant_id, vg::access_scope_code, vg::org_node_id))
        .order(vg::grant_id)
        .into_boxed();
    if scope == Scope::Analyze {
        grants = grants.filter(vg::access_scope_code.eq("analyze"));
    }
    let rows: Vec<(Uuid, String, Uuid)> = grants.load(&mut { conn }).await?;
    Ok(rows
        .into_iter()
        .map(|(grant_id, scope, org_node_id)| Access::Grant {
            grant_id,
            scope: if scope == "analyze" {
                GrantScope::Analyze
            } else {
                GrantScope::Read
            },
            org_node_id,
        })
        .collect())
}
