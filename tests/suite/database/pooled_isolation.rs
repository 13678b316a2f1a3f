//! Two tenants' calls interleaved on fewer database connections than
//! clients (and, when the suite runs through PgBouncer in transaction
//! mode, on fewer server connections than pooled ones): thousands of calls,
//! and every answer is the one its own tenant's data gives.

use std::collections::HashSet;
use std::sync::Arc;

use diesel::sql_types::{BigInt, Text};
use diesel_async::RunQueryDsl;
use futures_util::FutureExt;
use portcullis::db::{Db, PoolSettings, RlsContext};
use portcullis::proto::v1::authorization_client::AuthorizationClient;
use portcullis::proto::v1::{
    CheckCapabilityRequest, DecisionReason, ListVisibleOrgNodesRequest, Subject, UserRef,
    VisibilityScope, subject,
};
use scoped_futures::ScopedFutureExt;
use tonic::Code;
use uuid::Uuid;

use crate::support::fixtures::{TenantWorld, populate};
use crate::support::server::TestServer;
use crate::support::services::{bearer, create_service, token_of};
use crate::support::{TestDb, test_pool};

const CLIENTS: usize = 24;
const CALLS_PER_CLIENT: usize = 200;
/// Fewer connections than clients, so transactions of both tenants take
/// turns on the same connections.
const POOL: u32 = 6;

fn capability_of(world: &TenantWorld) -> String {
    format!("test.cap_{}", &world.tenant.simple().to_string()[..12])
}

fn subject_of(world: &TenantWorld) -> Option<Subject> {
    Some(Subject {
        kind: Some(subject::Kind::User(UserRef {
            tenant_id: world.tenant.to_string(),
            user_id: world.user.to_string(),
        })),
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn two_tenants_interleaved_on_a_small_pool_get_only_their_own_answers() {
    let test = TestDb::new().await;
    let setup = test.db();
    let worlds = [populate(&setup).await, populate(&setup).await];
    let db = Db::new(
        test.app_url.as_str(),
        &PoolSettings {
            max_size: POOL,
            ..test_pool()
        },
    )
    .unwrap();
    let server = TestServer::start(db).await;
    let channel = server.channel().await;
    let mut tokens = Vec::new();
    for world in &worlds {
        let service = create_service(
            &setup,
            Some(world.tenant),
            &["authz.check", "authz.list_visible"],
        )
        .await;
        tokens.push(token_of(&channel, &service).await.access_token);
    }
    let worlds = Arc::new(worlds);
    let tokens = Arc::new(tokens);

    let mut clients = Vec::new();
    for client in 0..CLIENTS {
        let (worlds, tokens) = (worlds.clone(), tokens.clone());
        let mut authz = AuthorizationClient::new(channel.clone());
        clients.push(tokio::spawn(async move {
            let (own, other) = (&worlds[client % 2], &worlds[1 - client % 2]);
            let token = &tokens[client % 2];
            let check = |subject, capability: String, node: Uuid| {
                bearer(
                    CheckCapabilityRequest {
                        subject,
                        capability,
                        org_node_id: node.to_string(),
                        explain: false,
                    },
                    token,
                )
            };
            for call in 0..CALLS_PER_CLIENT {
                match (call + client) % 4 {
                    0 => {
                        let answer = authz
                            .check_capability(check(subject_of(own), capability_of(own), own.child))
                            .await
                            .unwrap()
                            .into_inner();
                        assert_eq!(answer.reason(), DecisionReason::Allowed);
                    }
                    1 => {
                        // Its own user at the other tenant's node: unknown.
                        let answer = authz
                            .check_capability(check(
                                subject_of(own),
                                capability_of(own),
                                other.child,
                            ))
                            .await
                            .unwrap()
                            .into_inner();
                        assert_eq!(answer.reason(), DecisionReason::UnknownOrgNode);
                    }
                    2 => {
                        // The other tenant's user: refused before any SQL.
                        let refused = authz
                            .check_capability(check(
                                subject_of(other),
                                capability_of(other),
                                other.child,
                            ))
                            .await
                            .unwrap_err();
                        assert_eq!(refused.code(), Code::PermissionDenied);
                    }
                    _ => {
                        let page = authz
                            .list_visible_org_nodes(bearer(
                                ListVisibleOrgNodesRequest {
                                    subject: subject_of(own),
                                    scope: VisibilityScope::Read as i32,
                                    ..Default::default()
                                },
                                token,
                            ))
                            .await
                            .unwrap()
                            .into_inner();
                        let seen: HashSet<String> =
                            page.nodes.into_iter().map(|n| n.org_node_id).collect();
                        let expected: HashSet<String> =
                            [own.root.to_string(), own.child.to_string()].into();
                        assert_eq!(seen, expected);
                    }
                }
            }
        }));
    }
    for client in clients {
        client.await.unwrap();
    }
}

#[derive(diesel::QueryableByName, Debug, PartialEq)]
struct Seen {
    #[diesel(sql_type = Text)]
    tenant: String,
    #[diesel(sql_type = Text)]
    user_id: String,
    #[diesel(sql_type = BigInt)]
    tenants: i64,
}

const SEEN: &str = "SELECT current_setting('app.tenant_id', true) AS tenant, \
     current_setting('app.user_id', true) AS user_id, \
     (SELECT count(*) FROM auth.tenants) AS tenants";

/// [`SEEN`] as a typed query, for [`Db::read_statement`] to wrap.
struct SeenStatement;

impl diesel::query_builder::QueryId for SeenStatement {
    type QueryId = SeenStatement;
    const HAS_STATIC_QUERY_ID: bool = true;
}

impl diesel::query_builder::Query for SeenStatement {
    type SqlType = (Text, Text, BigInt);
}

impl diesel::query_builder::QueryFragment<diesel::pg::Pg> for SeenStatement {
    fn walk_ast<'b>(
        &'b self,
        mut out: diesel::query_builder::AstPass<'_, 'b, diesel::pg::Pg>,
    ) -> diesel::QueryResult<()> {
        out.push_sql(SEEN);
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn every_transaction_sees_exactly_its_own_context_on_a_shared_pool() {
    let test = TestDb::new().await;
    let worlds = [populate(&test.db()).await, populate(&test.db()).await];
    let db = Db::new(
        test.app_url.as_str(),
        &PoolSettings {
            max_size: POOL,
            ..test_pool()
        },
    )
    .unwrap();
    let mut tasks = Vec::new();
    for task in 0..CLIENTS {
        let (db, worlds) = (db.clone(), worlds.clone());
        tasks.push(tokio::spawn(async move {
            for call in 0..CALLS_PER_CLIENT {
                // Tenant A, tenant B and no one, through each kind of
                // transaction (a statement in its own among them).
                let (ctx, expected) = match (call + task) % 3 {
                    2 => (RlsContext::anonymous(), (String::new(), String::new(), 0)),
                    n => {
                        let world = &worlds[n];
                        (
                            world.context(),
                            (world.tenant.to_string(), world.user.to_string(), 1),
                        )
                    }
                };
                let seen = match call % 4 {
                    3 => db
                        .read_statement(&ctx, |conn, context| {
                            let mut conn = conn;
                            async move {
                                let (tenant, user_id, tenants) = context
                                    .wrap(SeenStatement)
                                    .get_result::<(String, String, i64)>(&mut conn)
                                    .await?;
                                Ok(Seen {
                                    tenant,
                                    user_id,
                                    tenants,
                                })
                            }
                            .boxed()
                        })
                        .await
                        .unwrap(),
                    0 => db
                        .read_pipelined(&ctx, |conn| {
                            let mut conn = conn;
                            async move {
                                    diesel::sql_query(SEEN).get_result::<Seen>(&mut conn).await
                                }
                                .boxed()
                        })
                        .await
                        .unwrap(),
                    1 => db
                        .read(&ctx, |conn| {
                            async move {
                                Ok::<_, portcullis::db::DbError>(
                                    diesel::sql_query(SEEN).get_result::<Seen>(conn).await?,
                                )
                            }
                            .scope_boxed()
                        })
                        .await
                        .unwrap(),
                    _ => db
                        .write(&ctx, |conn| {
                            async move {
                                Ok::<_, portcullis::db::DbError>(
                                    diesel::sql_query(SEEN).get_result::<Seen>(conn).await?,
                                )
                            }
                            .scope_boxed()
                        })
                        .await
                        .unwrap(),
                };
                assert_eq!((seen.tenant, seen.user_id, seen.tenants), expected);
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
}
