//! The endpoint catalogue: which capability an endpoint of a service needs
//! and where its requests name the org node. Every change is audited and
//! kept, before and after, in `audit.policy_change_log`; a trigger bumps
//! `auth.endpoint_catalogue_version`, which servers holding the catalogue
//! in memory check on every decision, so a change is effective on the next
//! call.

use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use scoped_futures::ScopedFutureExt;
use uuid::Uuid;

use super::{GlobalAdministrator, exists};
use crate::admin::{AdminError, Item};
use crate::authz::CapabilityKey;
use crate::authz::endpoint_policy::{COLUMNS, EndpointPolicy, Row};
use crate::db::schema::audit::policy_change_log as log;
use crate::db::schema::auth::{capabilities, endpoint_policy as ep};
use crate::db::{Db, RlsContext};
use crate::names::{HttpMethod, NodeSource, RoutePattern, ServiceKey};

/// What an entry says (to create one, or replace what one says).
#[derive(Clone, Debug)]
pub struct EndpointRule {
    pub service_key: ServiceKey,
    pub method: HttpMethod,
    pub route: RoutePattern,
    pub capability: CapabilityKey,
    pub node_source: NodeSource,
}

/// The entries of `service` (all of them when `None`), by service, route
/// and method.
pub async fn list_endpoint_policies(
    db: &Db,
    ctx: &RlsContext,
    service: Option<&ServiceKey>,
) -> Result<Vec<EndpointPolicy>, AdminError> {
    let service = service.map(|s| s.as_str().to_owned());
    db.read(ctx, |conn| {
        async move {
            let mut query = ep::table.select(COLUMNS).into_boxed();
            if let Some(service) = service {
                query = query.filter(ep::service_key.eq(service));
            }
            let rows: Vec<Row> = query
                .order((ep::service_key, ep::route_pattern, ep::method_code))
                .load(conn)
                .await?;
            Ok(rows.into_iter().map(EndpointPolicy::from_row).collect())
        }
        .scope_boxed()
    })
    .await
}

pub async fn create_endpoint_policy(
    db: &Db,
    admin: &GlobalAdministrator,
    rule: &EndpointRule,
) -> Result<EndpointPolicy, AdminError> {
    db.write(&admin.context(), |conn| {
        async move {
            check_rule(conn, rule, None).await?;
            let row: Row = diesel::insert_into(ep::table)
                .values(values(rule))
                .returning(COLUMNS)
                .get_result(conn)
                .await
                .map_err(|e| exists(e, Item::Endpoint, "an entry for this method and route"))?;
            let created = EndpointPolicy::from_row(row);
            record(
                conn,
                admin,
                "endpoint_policy.created",
                created.id,
                None,
                Some(&created),
            )
            .await?;
            Ok(created)
        }
        .scope_boxed()
    })
    .await
}

/// Replaces what the entry `id` says.
pub async fn update_endpoint_policy(
    db: &Db,
    admin: &GlobalAdministrator,
    id: Uuid,
    rule: &EndpointRule,
) -> Result<EndpointPolicy, AdminError> {
    db.write(&admin.context(), |conn| {
        async move {
            let before = find_for_update(conn, id).await?;
            check_rule(conn, rule, Some(id)).await?;
            let row: Row = diesel::update(ep::table.find(id))
                .set((values(rule), ep::updated_utc.eq(diesel::dsl::now)))
                .returning(COLUMNS)
                .get_result(conn)
                .await
                .map_err(|e| exists(e, Item::Endpoint, "an entry for this method and route"))?;
            let after = EndpointPolicy::from_row(row);
            if after != before {
                record(
                    conn,
                    admin,
                    "endpoint_policy.updated",
                    id,
                    Some(&before),
                    Some(&after),
                )
                .await?;
            }
            Ok(after)
        }
        .scope_boxed()
    })
    .await
}

/// Removes the entry `id`; returns what it said.
pub async fn delete_endpoint_policy(
    db: &Db,
    admin: &GlobalAdministrator,
    id: Uuid,
) -> Result<EndpointPolicy, AdminError> {
    db.write(&admin.context(), |conn| {
        async move {
            let before = find_for_update(conn, id).await?;
            diesel::delete(ep::table.find(id)).execute(conn).await?;
            record(
                conn,
                admin,
                "endpoint_policy.deleted",
                id,
                Some(&before),
                None,
            )
            .await?;
            Ok(before)
        }
        .scope_boxed()
    })
    .await
}

/// The columns an [`EndpointRule`] sets.
type RuleValues<'a> = (
    diesel::dsl::Eq<ep::service_key, &'a str>,
    diesel::dsl::Eq<ep::method_code, &'static str>,
    diesel::dsl::Eq<ep::route_pattern, &'a str>,
    diesel::dsl::Eq<ep::capability, &'a str>,
    diesel::dsl::Eq<ep::node_source_code, &'static str>,
    diesel::dsl::Eq<ep::node_source_name, &'a str>,
);

fn values(rule: &EndpointRule) -> RuleValues<'_> {
    (
        ep::service_key.eq(rule.service_key.as_str()),
        ep::method_code.eq(rule.method.as_str()),
        ep::route_pattern.eq(rule.route.as_str()),
        ep::capability.eq(rule.capability.as_str()),
        ep::node_source_code.eq(rule.node_source.kind()),
        ep::node_source_name.eq(rule.node_source.name()),
    )
}

async fn find_for_update(
    conn: &mut AsyncPgConnection,
    id: Uuid,
) -> Result<EndpointPolicy, AdminError> {
    let row: Option<Row> = ep::table
        .find(id)
        .select(COLUMNS)
        .for_update()
        .first(conn)
        .await
        .optional()?;
    row.map(EndpointPolicy::from_row)
        .ok_or(AdminError::NotFound(Item::Endpoint))
}

/// The capability exists, and the route does not conflict with another
/// route of the same service and method (`/a/{x}` and `/a/{y}` would match
/// the same paths; the router could not tell them apart).
async fn check_rule(
    conn: &mut AsyncPgConnection,
    rule: &EndpointRule,
    replacing: Option<Uuid>,
) -> Result<(), AdminError> {
    let known = capabilities::table
        .filter(capabilities::cap_key.eq(rule.capability.as_str()))
        .select(capabilities::cap_id)
        .first::<Uuid>(conn)
        .await
        .optional()?
        .is_some();
    if !known {
        return Err(AdminError::Invalid(
            Item::EndpointCapability,
            "is not in the capability catalogue".into(),
        ));
    }
    // Serialise changes to one service's routes, so two concurrent
    // creations cannot both pass this check.
    diesel::sql_query("SELECT pg_advisory_xact_lock(hashtext('endpoint_policy:' || $1))")
        .bind::<diesel::sql_types::Text, _>(rule.service_key.as_str())
        .execute(conn)
        .await?;
    let others: Vec<(Uuid, String)> = ep::table
        .filter(ep::service_key.eq(rule.service_key.as_str()))
        .filter(ep::method_code.eq(rule.method.as_str()))
        .select((ep::endpoint_id, ep::route_pattern))
        .load(conn)
        .await?;
    let mut router = matchit::Router::new();
    for (id, route) in &others {
        if Some(*id) != replacing && route != rule.route.as_str() {
            // Stored routes were checked when they were written.
            let _ = router.insert(route.as_str(), ());
        }
    }
    router.insert(rule.route.as_str(), ()).map_err(|error| {
        AdminError::Conflict(
            Item::RoutePattern,
            format!("conflicts with another route: {error}"),
        )
    })
}

async fn record(
    conn: &mut AsyncPgConnection,
    admin: &GlobalAdministrator,
    action: &'static str,
    id: Uuid,
    before: Option<&EndpointPolicy>,
    after: Option<&EndpointPolicy>,
) -> Result<(), AdminError> {
    let json = |p: Option<&EndpointPolicy>| p.and_then(|p| serde_json::to_value(p).ok());
    let after_json = json(after).unwrap_or_default();
    admin
        .author(None)
        .record_change(
            conn,
            action,
            ("endpoint_policy", id),
            json(before).as_ref(),
            &after_json,
        )
        .await?;
    diesel::insert_into(log::table)
        .values((
            log::actor_kind_code.eq(if admin.service_id().is_some() {
                "service"
            } else {
                "system"
            }),
            log::actor_svc_id.eq(admin.service_id()),
            log::action_key.eq(action),
            log::endpoint_id.eq(id),
            log::before_json.eq(json(before)),
            log::after_json.eq(json(after)),
            log::request_id.eq(admin.request_id()),
        ))
        .execute(conn)
        .await?;
    Ok(())
}
