//! Who may call what: the access rule of every RPC, and the check of a
//! caller's bearer token against it. Used by the caller-authentication layer.

use chrono::{DateTime, Utc};
use tonic::{Code, Status};

use super::error_details::detailed;

use crate::tokens::{Principal, TokenError, Tokens};

/// The one message for every unusable token, whatever was wrong with it.
pub const UNAUTHENTICATED: &str = "missing, invalid, expired or revoked access token";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// No caller needed (login, credential exchange, keys, health, reflection).
    Public,
    /// A caller is optional; if a token is sent it must be valid (the
    /// handler decides, e.g. `RevokeSession` by refresh token).
    OptionalCaller,
    /// A valid token is required. Services need `service_permission` (none:
    /// any service); users may call only where `users` is true.
    Caller {
        service_permission: Option<&'static str>,
        users: bool,
    },
}

const PKG: &str = "/portcullis.v1.";
const ENVOY_CHECK: &str = "/envoy.service.auth.v3.Authorization/Check";

/// The rule for a gRPC path (`/package.Service/Method`). Anything not
/// listed needs a caller and is open to no one: new RPCs fail closed until
/// they are given a rule.
pub fn rule(path: &str) -> Access {
    if path.starts_with("/grpc.health.v1.Health/") || path.starts_with("/grpc.reflection.") {
        return Access::Public;
    }
    // Envoy's sidecar: a service token or a client certificate, as
    // configured; the handler decides (a token sent must still be valid).
    if path == ENVOY_CHECK {
        return Access::OptionalCaller;
    }
    let Some(method) = path.strip_prefix(PKG) else {
        return DENY_ALL;
    };
    match method {
        "Authentication/Authenticate"
        | "Authentication/RequestOtp"
        | "Authentication/RefreshSession"
        | "Authentication/ResetPassword"
        | "Authentication/GetSigningKeys"
        // The user's access token in the request is the credential.
        | "Authentication/IssueSqlAssertion"
        | "ServiceCredentials/ExchangeServiceCredential"
        // The invite token is the credential.
        | "Administration/AcceptInvitation" => Access::Public,
        "Authentication/RevokeSession" => Access::OptionalCaller,
        "Authentication/VerifyToken" => caller(Some("tokens.verify"), false),
        "Authorization/CheckCapability"
        | "Authorization/CheckCapabilities"
        | "Authorization/CheckEndpoint" => {
            caller(Some("authz.check"), true)
        }
        "Authorization/ListVisibleOrgNodes" => caller(Some("authz.list_visible"), true),
        "Authorization/ListUsersWithCapability" => caller(Some("authz.list_users"), false),
        "Administration/CreateOrgNode"
        | "Administration/RenameOrgNode"
        | "Administration/MoveOrgNode"
        | "Administration/DeactivateOrgNode"
        | "Administration/ReactivateOrgNode" => caller(Some("admin.org.write"), true),
        "Administration/GetOrgSubtree" => caller(Some("admin.org.read"), true),
        // Roles are tenant-wide: no node to hold a user's capability at.
        "Administration/CreateRole"
        | "Administration/RenameRole"
        | "Administration/SetRoleCapabilities" => caller(Some("admin.roles.write"), false),
        "Administration/ListRoles" => caller(Some("admin.roles.read"), false),
        "Administration/AssignRole" | "Administration/EndAssignment" => {
            caller(Some("admin.assignments.write"), true)
        }
        "Administration/ListAssignments" => caller(Some("admin.assignments.read"), true),
        "Administration/GrantVisibility" | "Administration/RevokeVisibility" => {
            caller(Some("admin.grants.write"), true)
        }
        "Administration/ListVisibilityGrants" => caller(Some("admin.grants.read"), true),
        "Administration/CreateInvitation" | "Administration/RevokeInvitation" => {
            caller(Some("admin.invitations.write"), true)
        }
        "Administration/ListInvitations" => caller(Some("admin.invitations.read"), true),
        "Administration/ListAuditEvents" => caller(Some("admin.audit.read"), false),
        "Administration/CreateUser"
        | "Administration/DeactivateUser"
        | "Administration/ReactivateUser" => caller(Some("admin.users.write"), false),
        "Administration/ListUsers" => caller(Some("admin.users.read"), false),
        "Administration/CreateTenant"
        | "Administration/RenameTenant"
        | "Administration/SuspendTenant"
        | "Administration/ReactivateTenant"
        | "Administration/SetFederatedEmailLinking" => caller(Some("admin.tenants.write"), false),
        "Administration/CreateCapability"
        | "Administration/CreateEndpointPolicy"
        | "Administration/UpdateEndpointPolicy"
        | "Administration/DeleteEndpointPolicy" => caller(Some("admin.catalogue.write"), false),
        "Administration/ListCapabilities" | "Administration/ListEndpointPolicies" => {
            caller(Some("admin.catalogue.read"), false)
        }
        // Revoking one's own token needs no permission (RFC 7009 spirit).
        "ServiceCredentials/RevokeServiceToken" => caller(None, true),
        _ => DENY_ALL,
    }
}

/// The path as metrics label it: an RPC this server serves, or `unknown`
/// for anything else, so a client cannot mint label values (each new
/// label is a new time series kept for the life of the process).
pub fn metric_method(path: &str) -> &str {
    const SERVED_ELSEWHERE: &[&str] = &[
        "/grpc.health.v1.Health/Check",
        "/grpc.health.v1.Health/Watch",
        "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
        "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
    ];
    let known = if path.starts_with(PKG) {
        rule(path) != DENY_ALL
    } else {
        SERVED_ELSEWHERE.contains(&path)
    };
    if known { path } else { "unknown" }
}

const DENY_ALL: Access = Access::Caller {
    service_permission: Some("(no rule for this method)"),
    users: false,
};

const fn caller(service_permission: Option<&'static str>, users: bool) -> Access {
    Access::Caller {
        service_permission,
        users,
    }
}

/// Checks the `authorization` header against the rule of `path`; returns
/// the caller, if any.
pub fn authorize(
    tokens: &Tokens,
    path: &str,
    authorization: Option<&str>,
    now: DateTime<Utc>,
) -> Result<Option<Principal>, Status> {
    let access = rule(path);
    if access == Access::Public {
        return Ok(None);
    }
    let principal = match (authorization, access) {
        (None, Access::OptionalCaller) => return Ok(None),
        (None, _) => return Err(unauthenticated()),
        (Some(header), _) => verify_bearer(tokens, header, now)?,
    };
    if let Access::Caller {
        service_permission,
        users,
    } = access
    {
        let method = path.rsplit('/').next().unwrap_or(path);
        match &principal {
            Principal::User(_) if !users => {
                return Err(detailed(
                    Code::PermissionDenied,
                    format!("user tokens may not call {method}"),
                    "USER_TOKEN_NOT_ALLOWED",
                    &[("method", method)],
                    None,
                ));
            }
            Principal::Service(_) => {
                if let Some(permission) = service_permission
                    && !principal.has_permission(permission)
                {
                    return Err(permission_missing(method, permission));
                }
            }
            Principal::User(_) => {}
        }
    }
    Ok(Some(principal))
}

fn verify_bearer(tokens: &Tokens, header: &str, now: DateTime<Utc>) -> Result<Principal, Status> {
    let token = crate::tokens::bearer(header).ok_or_else(unauthenticated)?;
    match tokens.verify(token, now) {
        Ok(verified) => Ok(verified.principal),
        Err(TokenError::RevocationUnknown) => Err(detailed(
            Code::Unavailable,
            "cannot confirm that the token is not revoked; retry shortly",
            "REVOCATION_UNKNOWN",
            &[],
            None,
        )),
        Err(_) => Err(unauthenticated()),
    }
}

/// The one answer for a missing or unusable caller token.
pub fn unauthenticated() -> Status {
    detailed(
        Code::Unauthenticated,
        UNAUTHENTICATED,
        "TOKEN_INVALID",
        &[],
        None,
    )
}

/// A caller without the permission `method` needs.
pub fn permission_missing(method: &str, permission: &str) -> Status {
    detailed(
        Code::PermissionDenied,
        format!("{method} needs the permission {permission}"),
        "PERMISSION_MISSING",
        &[("permission", permission)],
        None,
    )
}

#[cfg(test)]
mod tests {
    use prost::Message;

    use super::*;

    #[test]
    fn every_rpc_of_the_contract_has_a_rule() {
        let set = prost_types::FileDescriptorSet::decode(crate::proto::FILE_DESCRIPTOR_SET)
            .expect("the descriptor set decodes");
        let paths: Vec<String> = set
            .file
            .iter()
            .filter(|file| file.package() == "portcullis.v1")
            .flat_map(|file| &file.service)
            .flat_map(|service| {
                service
                    .method
                    .iter()
                    .map(move |method| format!("{PKG}{}/{}", service.name(), method.name()))
            })
            .collect();
        assert!(paths.len() > 30, "{paths:?}");
        for path in paths {
            assert_ne!(rule(&path), DENY_ALL, "{path} has no rule");
        }
    }

    #[test]
    fn a_method_without_a_rule_is_closed() {
        assert_eq!(rule("/portcullis.v1.Administration/DropTenant"), DENY_ALL);
        assert_eq!(rule("/other.v1.Thing/Do"), DENY_ALL);
    }
}
