//! The Administration API: guarded per caller, fenced per tenant (another
//! tenant's thing is a thing that does not exist), audited per change, and
//! felt by CheckCapability at once.

mod audit;
mod delegation;
mod global;
mod grants;
mod invitations;
mod matrix;
mod org;
mod roles;
mod users;

use std::time::Duration;

use chrono::Utc;
use portcullis::db::RlsContext;
use portcullis::ops::admin::{AdminConnection, derive_url};
use portcullis::proto::v1::administration_client::AdministrationClient;
use portcullis::proto::v1::authorization_client::AuthorizationClient;
use portcullis::proto::v1::{
    CheckCapabilityRequest, CreateOrgNodeRequest, DecisionReason, MoveOrgNodeRequest, OrgNode,
    RenameOrgNodeRequest, Subject, UserRef, subject,
};
use portcullis::tokens::{NewToken, TokenType};
use secrecy::ExposeSecret;
use tonic::Status;
use tonic::transport::Channel;
use uuid::Uuid;

use crate::support::TestDb;
use crate::support::fixtures::{TenantWorld, batch, populate};
use crate::support::server::TestServer;
use crate::support::services::{bearer, create_service, token_of};

pub struct Setup {
    pub test: TestDb,
    pub server: TestServer,
    pub channel: Channel,
    /// Tenant A, with a service bound to it holding every admin permission.
    pub a: TenantWorld,
    pub b: TenantWorld,
    pub token: String,
    /// A service bound to no tenant: a global administrator.
    pub global_token: String,
}

pub async fn setup() -> Setup {
    let test = TestDb::new().await;
    let db = test.db();
    let (a, b) = (populate(&db).await, populate(&db).await);
    let service = create_service(
        &db,
        Some(a.tenant),
        &[
            "admin.org.write",
            "admin.org.read",
            "admin.roles.write",
            "admin.roles.read",
            "admin.assignments.write",
            "admin.assignments.read",
            "admin.audit.read",
            "admin.grants.write",
            "admin.grants.read",
            "authz.list_visible",
            "admin.users.write",
            "admin.users.read",
            "admin.invitations.write",
            "admin.invitations.read",
            "authz.check",
        ],
    )
    .await;
    let global = create_service(
        &db,
        None,
        &[
            "admin.tenants.write",
            "admin.catalogue.write",
            "admin.catalogue.read",
        ],
    )
    .await;
    let server = TestServer::start(db).await;
    let channel = server.channel().await;
    let token = token_of(&channel, &service).await.access_token;
    let global_token = token_of(&channel, &global).await.access_token;
    Setup {
        test,
        server,
        channel,
        a,
        b,
        token,
        global_token,
    }
}

impl Setup {
    pub fn admin(&self) -> AdministrationClient<Channel> {
        AdministrationClient::new(self.channel.clone())
    }

    pub async fn create(
        &self,
        token: &str,
        tenant: Uuid,
        parent: Option<Uuid>,
        label: &str,
    ) -> Result<OrgNode, Status> {
        self.admin()
            .create_org_node(bearer(
                CreateOrgNodeRequest {
                    tenant_id: tenant.to_string(),
                    parent_org_node_id: parent.map(|p| p.to_string()).unwrap_or_default(),
                    node_type: "site".into(),
                    label: label.into(),
                    idempotency_key: String::new(),
                    dry_run: false,
                },
                token,
            ))
            .await
            .map(|r| r.into_inner())
    }

    pub async fn rename(
        &self,
        token: &str,
        tenant: Uuid,
        node: Uuid,
        label: &str,
    ) -> Result<OrgNode, Status> {
        self.admin()
            .rename_org_node(bearer(
                RenameOrgNodeRequest {
                    tenant_id: tenant.to_string(),
                    org_node_id: node.to_string(),
                    label: label.into(),
                    dry_run: false,
                },
                token,
            ))
            .await
            .map(|r| r.into_inner())
    }

    pub async fn move_under(&self, node: Uuid, parent: Uuid) -> Result<OrgNode, Status> {
        self.admin()
            .move_org_node(bearer(
                MoveOrgNodeRequest {
                    tenant_id: self.a.tenant.to_string(),
                    org_node_id: node.to_string(),
                    new_parent_org_node_id: parent.to_string(),
                    dry_run: false,
                },
                &self.token,
            ))
            .await
            .map(|r| r.into_inner())
    }

    /// CheckCapability for `world`'s user and its fixture capability at
    /// `node`, asked by the admin service.
    pub async fn check(&self, world: &TenantWorld, node: Uuid) -> DecisionReason {
        self.check_as(&self.token, world, node).await
    }

    /// The same, asked by the service whose token is `token`.
    pub async fn check_as(&self, token: &str, world: &TenantWorld, node: Uuid) -> DecisionReason {
        AuthorizationClient::new(self.channel.clone())
            .check_capability(bearer(
                CheckCapabilityRequest {
                    subject: Some(Subject {
                        kind: Some(subject::Kind::User(UserRef {
                            tenant_id: world.tenant.to_string(),
                            user_id: world.user.to_string(),
                        })),
                    }),
                    capability: capability_of(world),
                    org_node_id: node.to_string(),
                    explain: false,
                },
                token,
            ))
            .await
            .unwrap()
            .into_inner()
            .reason()
    }

    pub fn user_token(&self, world: &TenantWorld) -> String {
        self.user_token_of_session(world, Uuid::new_v4())
    }

    /// An access token of `world`'s user in `session`.
    pub fn user_token_of_session(&self, world: &TenantWorld, session: Uuid) -> String {
        self.server
            .tokens
            .issue(
                &NewToken {
                    typ: TokenType::User,
                    subject: world.user,
                    tenant: Some(world.tenant),
                    session,
                    permissions: Vec::new(),
                    lifetime: Duration::from_secs(600),
                    service_key: None,
                },
                Utc::now(),
            )
            .unwrap()
            .token
            .expose_secret()
            .to_owned()
    }

    /// Gives tenant A's user `capabilities` (created in the catalogue if
    /// absent) at tenant A's child node, through a role of their own.
    pub async fn give_user_at_child(&self, capabilities: &[&str]) {
        let keys: Vec<String> = capabilities.iter().map(|k| format!("('{k}')")).collect();
        let (role, t) = (Uuid::new_v4(), self.a.tenant);
        batch(
            &self.test.db(),
            &RlsContext::operator().with_tenant(t),
            &format!(
                "INSERT INTO auth.capabilities (cap_key) VALUES {keys} ON CONFLICT DO NOTHING;
                 INSERT INTO auth.roles (role_id, tenant_id, role_key, role_label) VALUES ('{role}', '{t}', 'given', 'Given');
                 INSERT INTO auth.role_capabilities (tenant_id, role_id, cap_id)
                     SELECT '{t}', '{role}', cap_id FROM auth.capabilities WHERE cap_key IN ({quoted});
                 INSERT INTO auth.org_assignments (tenant_id, user_id, role_id, org_node_id)
                     VALUES ('{t}', '{u}', '{role}', '{child}');",
                keys = keys.join(", "),
                quoted = capabilities
                    .iter()
                    .map(|k| format!("'{k}'"))
                    .collect::<Vec<_>>()
                    .join(", "),
                u = self.a.user,
                child = self.a.child,
            ),
        )
        .await
        .unwrap();
    }

    /// Whether exactly `rows` audit rows match (read as a superuser: the
    /// application role may only insert audit rows).
    pub async fn audited(&self, rows: u32, condition: &str, params: &[&str]) -> bool {
        let url = derive_url(
            &self.test.admin_url,
            self.test.admin_url.username(),
            self.test.admin_url.password(),
            &self.test.name,
        )
        .unwrap();
        let mut admin = AdminConnection::connect(&url).await.unwrap();
        admin
            .query_bool(
                &format!(
                    // Actors and entities as text, whichever column holds them.
                    "SELECT count(*) = {rows} AS value FROM (SELECT *, \
                       coalesce(actor_user_id, actor_svc_id)::text AS actor_id, \
                       coalesce(entity_id::text, entity_ref_text) AS entity_ref \
                       FROM audit.audit_events) e WHERE {condition}"
                ),
                params,
            )
            .await
            .unwrap()
    }
}

/// The capability `populate` puts in `world`'s role.
pub fn capability_of(world: &TenantWorld) -> String {
    format!("test.cap_{}", &world.tenant.simple().to_string()[..12])
}

pub fn id(node: &OrgNode) -> Uuid {
    Uuid::parse_str(&node.org_node_id).unwrap()
}
