//! The endpoint catalogue as a server keeps it: every entry, with each
//! service's routers built once, labelled with the catalogue's version
//! (`auth.endpoint_catalogue_version`: a number bumped and a random token
//! replaced by a trigger on every change). A decision reads the version in
//! the same round trip as its check and trusts the copy only when both
//! agree (a number alone can go back after a restore and climb to the
//! copy's again); otherwise it reloads and decides again inside the
//! reload's transaction. A change is therefore effective on the next call,
//! as when the table was read on every call.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};

use super::endpoint_policy::{self, EndpointPolicy};
use crate::db::schema::auth::endpoint_catalogue_version as version;
use crate::db::schema::auth::endpoint_policy as ep;
use crate::names::{HttpMethod, NodeSource};

/// A request as a gateway sees it.
#[derive(Clone, Debug)]
pub struct EndpointRequest<'a> {
    pub service: &'a str,
    pub method: HttpMethod,
    /// The path, without its query string.
    pub path: &'a str,
    /// Header names in lower case.
    pub headers: &'a HashMap<String, String>,
    pub fields: &'a HashMap<String, String>,
}

/// The server's copy, shared by every caller of `check_endpoint`.
#[derive(Default)]
pub struct EndpointCatalogue {
    current: RwLock<Option<Arc<Snapshot>>>,
}

impl EndpointCatalogue {
    pub(super) fn current(&self) -> Option<Arc<Snapshot>> {
        self.current.read().ok().and_then(|copy| copy.clone())
    }

    /// Keeps `fresh`. Two reloads racing may leave the older: the next
    /// decision sees it disagree with the database and reloads again.
    pub(super) fn replace(&self, fresh: Arc<Snapshot>) {
        if let Ok(mut copy) = self.current.write() {
            *copy = Some(fresh);
        }
    }
}

/// The number and token of one state of the catalogue.
pub(super) type Version = (i64, uuid::Uuid);

/// The catalogue at one version.
pub(super) struct Snapshot {
    pub version: Version,
    services: HashMap<String, ServiceRoutes>,
}

/// One service's entries and, per method, a router over them.
struct ServiceRoutes {
    policies: Vec<EndpointPolicy>,
    routers: HashMap<String, matchit::Router<usize>>,
}

/// The version, as the decision's own transaction sees it.
pub(super) async fn version_now(conn: &mut &AsyncPgConnection) -> QueryResult<Version> {
    version::table
        .select((version::version_no, version::change_token))
        .get_result(conn)
        .await
}

impl Snapshot {
    /// Reads the version first, then the entries: a copy may be labelled
    /// older than what it holds (and be reloaded once more), never newer.
    pub(super) async fn load(conn: &mut AsyncPgConnection) -> QueryResult<Self> {
        let version = version::table
            .select((version::version_no, version::change_token))
            .get_result(conn)
            .await?;
        let rows: Vec<endpoint_policy::Row> = ep::table
            .select(endpoint_policy::COLUMNS)
            .order(ep::endpoint_id)
            .load(conn)
            .await?;
        let mut services: HashMap<String, ServiceRoutes> = HashMap::new();
        for policy in rows.into_iter().map(EndpointPolicy::from_row) {
            let routes = services
                .entry(policy.service_key.clone())
                .or_insert_with(|| ServiceRoutes {
                    policies: Vec::new(),
                    routers: HashMap::new(),
                });
            let index = routes.policies.len();
            // Conflicting routes were refused when written.
            let _ = routes
                .routers
                .entry(policy.method.clone())
                .or_default()
                .insert(policy.route_pattern.as_str(), index);
            routes.policies.push(policy);
        }
        Ok(Self { version, services })
    }

    /// The entry the request matches (its own method's routes first, then
    /// `ANY`), and the node id as the request gives it, if it does.
    pub(super) fn matched(
        &self,
        request: &EndpointRequest<'_>,
    ) -> Option<(&EndpointPolicy, Option<String>)> {
        let routes = self.services.get(request.service)?;
        for method in [request.method, HttpMethod::Any] {
            let Some(found) = routes
                .routers
                .get(method.as_str())
                .and_then(|router| router.at(request.path).ok())
            else {
                continue;
            };
            let policy = routes.policies.get(*found.value)?;
            let node = match &policy.node_source {
                NodeSource::Path(name) => found.params.get(name.as_str()).map(str::to_owned),
                NodeSource::Header(name) => request.headers.get(name).cloned(),
                NodeSource::Field(name) => request.fields.get(name).cloned(),
            };
            return Some((policy, node));
        }
        None
    }
}
