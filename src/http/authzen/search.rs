//! The three searches: who holds an action at a resource (subjects), where
//! a subject holds it (resources), and what a subject holds at a resource
//! (actions). Each answers a page of `results` and `page.next_token`.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use chrono::Utc;
use serde_json::json;

use super::AuthZen;
use super::problem::{parse, request_id, respond};
use super::wire::{
    SearchBody, capability_of, expect_type, id_of, page_of, required, search_answer, subject_of,
    tenant_of,
};
use crate::authz::{self, HoldersQuery};
use crate::db::RlsContext;
use crate::names::OrgNodeId;

pub(super) async fn search_subject(
    State(api): State<Arc<AuthZen>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let outcome = async {
        let caller = api.caller(&headers, "AuthZen/SearchSubject")?;
        let search: SearchBody = parse(&body)?;
        let subject = required(search.subject.as_ref(), "subject")?;
        expect_type(subject, "subject", "user")?;
        let resource = required(search.resource.as_ref(), "resource")?;
        expect_type(resource, "resource", "org_node")?;
        let tenant = tenant_of(subject, "subject", &caller)?;
        authz::may_ask_about_tenant(&caller, tenant, "subject.properties.tenant_id")?;
        let page = page_of(&search);
        let query = HoldersQuery {
            tenant_id: tenant,
            capability: capability_of(search.action.as_ref())?,
            org_node_id: id_of(resource, "resource")?,
            page_size: page.size,
            page_token: page.token,
        };
        let context = RlsContext::anonymous()
            .with_service(caller.actor().1)
            .with_request_id(request_id(&headers));
        let holders =
            authz::list_holders(&api.db, api.tokens.keys(), context, &query, Utc::now()).await?;
        let results = holders
            .users
            .iter()
            .map(|h| json!({ "type": "user", "id": h.user_id, "properties": { "tenant_id": tenant.get() } }))
            .collect();
        Ok(search_answer(results, holders.next_page_token))
    }
    .await;
    respond(&headers, outcome)
}

pub(super) async fn search_resource(
    State(api): State<Arc<AuthZen>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let outcome = async {
        let caller = api.caller(&headers, "AuthZen/SearchResource")?;
        let search: SearchBody = parse(&body)?;
        let subject = subject_of(search.subject.as_ref(), &caller)?;
        expect_type(
            required(search.resource.as_ref(), "resource")?,
            "resource",
            "org_node",
        )?;
        let capability = capability_of(search.action.as_ref())?;
        let found = authz::nodes_with_capability(
            &api.db,
            api.tokens.keys(),
            subject,
            &capability,
            &page_of(&search),
            request_id(&headers),
            Utc::now(),
        )
        .await?;
        let results = found
            .items
            .iter()
            .map(|id| json!({ "type": "org_node", "id": id }))
            .collect();
        Ok(search_answer(results, found.next_page_token))
    }
    .await;
    respond(&headers, outcome)
}

pub(super) async fn search_action(
    State(api): State<Arc<AuthZen>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let outcome = async {
        let caller = api.caller(&headers, "AuthZen/SearchAction")?;
        let search: SearchBody = parse(&body)?;
        let subject = subject_of(search.subject.as_ref(), &caller)?;
        let resource = required(search.resource.as_ref(), "resource")?;
        expect_type(resource, "resource", "org_node")?;
        let node: OrgNodeId = id_of(resource, "resource")?;
        let found = authz::capabilities_at(
            &api.db,
            api.tokens.keys(),
            subject,
            node,
            &page_of(&search),
            request_id(&headers),
            Utc::now(),
        )
        .await?;
        let results = found
            .items
            .iter()
            .map(|name| json!({ "name": name }))
            .collect();
        Ok(search_answer(results, found.next_page_token))
    }
    .await;
    respond(&headers, outcome)
}
