//! Who may call what: every Administration RPC, called by each kind of
//! caller. The table below is the specification (and the administration guide's); the
//! test fails if an RPC is missing from it.

use std::collections::BTreeSet;

use prost::Message;
use tonic::Code;
use tonic::codegen::http::uri::PathAndQuery;
use tonic::transport::Channel;

use super::{Setup, setup};
use crate::support::services::{bearer, create_service, token_of};

/// Who may call an RPC.
#[derive(Clone, Copy)]
enum Callers {
    /// Services with the permission, and users (whose capability at the
    /// node is checked after the gate).
    ServicesAndUsers(&'static str),
    /// Services with the permission only: tenant-wide things.
    Services(&'static str),
    /// Services with the permission and bound to no tenant.
    GlobalServices(&'static str),
    /// Anyone: the request carries its own credential.
    Anyone,
    /// Any service or user: what it carries is held to other RPCs' rules
    /// (the writes a preview proposes).
    AnyCaller,
}

use Callers::*;

const RULES: &[(&str, Callers)] = &[
    ("CreateOrgNode", ServicesAndUsers("admin.org.write")),
    ("RenameOrgNode", ServicesAndUsers("admin.org.write")),
    ("MoveOrgNode", ServicesAndUsers("admin.org.write")),
    ("DeactivateOrgNode", ServicesAndUsers("admin.org.write")),
    ("ReactivateOrgNode", ServicesAndUsers("admin.org.write")),
    ("GetOrgSubtree", ServicesAndUsers("admin.org.read")),
    ("CreateRole", Services("admin.roles.write")),
    ("RenameRole", Services("admin.roles.write")),
    ("SetRoleCapabilities", Services("admin.roles.write")),
    ("ListRoles", Services("admin.roles.read")),
    ("AssignRole", ServicesAndUsers("admin.assignments.write")),
    ("EndAssignment", ServicesAndUsers("admin.assignments.write")),
    (
        "ListAssignments",
        ServicesAndUsers("admin.assignments.read"),
    ),
    ("GrantVisibility", ServicesAndUsers("admin.grants.write")),
    ("RevokeVisibility", ServicesAndUsers("admin.grants.write")),
    (
        "ListVisibilityGrants",
        ServicesAndUsers("admin.grants.read"),
    ),
    ("CreateUser", Services("admin.users.write")),
    ("DeactivateUser", Services("admin.users.write")),
    ("ReactivateUser", Services("admin.users.write")),
    ("ListUsers", Services("admin.users.read")),
    (
        "CreateInvitation",
        ServicesAndUsers("admin.invitations.write"),
    ),
    (
        "RevokeInvitation",
        ServicesAndUsers("admin.invitations.write"),
    ),
    (
        "ListInvitations",
        ServicesAndUsers("admin.invitations.read"),
    ),
    ("AcceptInvitation", Anyone),
    ("CreateTenant", GlobalServices("admin.tenants.write")),
    ("RenameTenant", GlobalServices("admin.tenants.write")),
    ("SuspendTenant", GlobalServices("admin.tenants.write")),
    ("ReactivateTenant", GlobalServices("admin.tenants.write")),
    (
        "SetFederatedEmailLinking",
        GlobalServices("admin.tenants.write"),
    ),
    ("CreateCapability", GlobalServices("admin.catalogue.write")),
    ("ListCapabilities", Services("admin.catalogue.read")),
    (
        "CreateEndpointPolicy",
        GlobalServices("admin.catalogue.write"),
    ),
    (
        "UpdateEndpointPolicy",
        GlobalServices("admin.catalogue.write"),
    ),
    (
        "DeleteEndpointPolicy",
        GlobalServices("admin.catalogue.write"),
    ),
    ("ListEndpointPolicies", Services("admin.catalogue.read")),
    ("ListAuditEvents", Services("admin.audit.read")),
    ("PreviewChanges", AnyCaller),
];

/// Calls `method` with an empty request (every field at its default): the
/// gate answers before any field is read, and past it an empty request is
/// refused for its first field, never carried out.
async fn call(channel: &Channel, method: &str, token: Option<&str>) -> Code {
    let mut grpc = tonic::client::Grpc::new(channel.clone());
    grpc.ready().await.unwrap();
    let path = PathAndQuery::try_from(format!("/portcullis.v1.Administration/{method}")).unwrap();
    let request = match token {
        Some(token) => bearer((), token),
        None => tonic::Request::new(()),
    };
    let codec = tonic_prost::ProstCodec::<(), ()>::default();
    match grpc.unary(request, path, codec).await {
        Ok(_) => Code::Ok,
        Err(status) => status.code(),
    }
}

impl Setup {
    /// A token of a service holding only `permission`, bound to tenant A
    /// or to no tenant.
    async fn token_with(&self, permission: &str, global: bool) -> String {
        let tenant = (!global).then_some(self.a.tenant);
        let service = create_service(&self.test.db(), tenant, &[permission]).await;
        token_of(&self.channel, &service).await.access_token
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_table_names_every_administration_rpc() {
    let set =
        prost_types::FileDescriptorSet::decode(portcullis::proto::FILE_DESCRIPTOR_SET).unwrap();
    let rpcs: BTreeSet<&str> = set
        .file
        .iter()
        .flat_map(|file| &file.service)
        .filter(|service| service.name() == "Administration")
        .flat_map(|service| &service.method)
        .map(|method| method.name())
        .collect();
    let specified: BTreeSet<&str> = RULES.iter().map(|(rpc, _)| *rpc).collect();
    assert_eq!(rpcs, specified);
}

#[tokio::test(flavor = "multi_thread")]
async fn each_rpc_admits_exactly_its_callers() {
    let s = setup().await;
    let unrelated = s.token_with("authz.check", false).await;
    let user = s.user_token(&s.a);
    let refused_at_gate =
        |code: Code| matches!(code, Code::Unauthenticated | Code::PermissionDenied);
    for &(rpc, callers) in RULES {
        let anonymous = call(&s.channel, rpc, None).await;
        let by_unrelated = call(&s.channel, rpc, Some(&unrelated)).await;
        let by_user = call(&s.channel, rpc, Some(&user)).await;
        match callers {
            Anyone => {
                for code in [anonymous, by_unrelated, by_user] {
                    assert!(!refused_at_gate(code), "{rpc}: {code:?}");
                }
            }
            AnyCaller => {
                assert_eq!(anonymous, Code::Unauthenticated, "{rpc} without a token");
                for code in [by_unrelated, by_user] {
                    assert!(!refused_at_gate(code), "{rpc}: {code:?}");
                }
            }
            ServicesAndUsers(permission) | Services(permission) | GlobalServices(permission) => {
                assert_eq!(anonymous, Code::Unauthenticated, "{rpc} without a token");
                assert_eq!(
                    by_unrelated,
                    Code::PermissionDenied,
                    "{rpc} without {permission}"
                );
                let global = matches!(callers, GlobalServices(_));
                let holder = s.token_with(permission, global).await;
                let by_holder = call(&s.channel, rpc, Some(&holder)).await;
                assert!(
                    !refused_at_gate(by_holder),
                    "{rpc} with {permission}: {by_holder:?}"
                );
                if global {
                    let bound = s.token_with(permission, false).await;
                    let by_bound = call(&s.channel, rpc, Some(&bound)).await;
                    assert_eq!(
                        by_bound,
                        Code::PermissionDenied,
                        "{rpc} by a tenant's service"
                    );
                }
                let users_admitted = matches!(callers, ServicesAndUsers(_));
                assert_eq!(
                    by_user == Code::PermissionDenied,
                    !users_admitted,
                    "{rpc} by a user: {by_user:?}"
                );
            }
        }
    }
}
