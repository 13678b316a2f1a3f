//! Who may call what: the one rule table every edge consults (the gRPC
//! port's caller-authentication layer, the AuthZEN API, Envoy's `Check`),
//! and the check of a caller's bearer token against it. Transport-free:
//! each edge names its operation (`Service/Method`) and maps a
//! [`CallerRefusal`] to its own answer.

use chrono::{DateTime, Utc};

use crate::tokens::{Principal, TokenError, Tokens};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rule {
    /// No caller needed (login, credential exchange, keys, health, reflection).
    Public,
    /// A caller is optional; if a token is sent it must be valid (the
    /// handler decides, e.g. `RevokeSession` by refresh token).
    OptionalCaller,
    /// A service token holding the permission, or a client certificate, as
    /// the edge is configured (Envoy's sidecar); a token sent must be valid.
    ServiceOrCertificate { service_permission: &'static str },
    /// A valid token is required. Services need `service_permission` (none:
    /// any service); users may call only where `users` is true.
    Caller {
        service_permission: Option<&'static str>,
        users: bool,
    },
}

/// Why a caller may not make a call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CallerRefusal {
    /// No, a bad, an expired or a revoked token: one answer for all.
    Unauthenticated,
    /// Whether the token is revoked cannot be told now.
    RevocationUnknown,
    UserNotAllowed {
        operation: String,
    },
    PermissionMissing {
        operation: String,
        permission: &'static str,
    },
}

/// The rule of an operation (`Service/Method`, e.g.
/// `Authorization/CheckCapability`, `AuthZen/Evaluation`, `Envoy/Check`).
/// Anything not listed needs a caller and is open to no one: new operations
/// fail closed until they are given a rule.
pub fn rule(operation: &str) -> Rule {
    match operation {
        "Authentication/Authenticate"
        | "Authentication/RequestOtp"
        | "Authentication/RefreshSession"
        | "Authentication/ResetPassword"
        | "Authentication/GetSigningKeys"
        // The user's access token in the request is the credential.
        | "Authentication/IssueSqlAssertion"
        | "ServiceCredentials/ExchangeServiceCredential"
        // The invite token is the credential.
        | "Administration/AcceptInvitation" => Rule::Public,
        "Authentication/RevokeSession" => Rule::OptionalCaller,
        "Authentication/VerifyToken" => caller(Some("tokens.verify"), false),
        "Authorization/CheckCapability"
        | "Authorization/CheckCapabilities"
        | "Authorization/CheckEndpoint" => caller(Some("authz.check"), true),
        "Authorization/ListVisibleOrgNodes" => caller(Some("authz.list_visible"), true),
        "Authorization/ListUsersWithCapability" => caller(Some("authz.list_users"), false),
        // The AuthZEN API (`/access/v1/…`): services only.
        "AuthZen/Evaluation"
        | "AuthZen/Evaluations"
        | "AuthZen/SearchResource"
        | "AuthZen/SearchAction" => caller(Some("authz.check"), false),
        "AuthZen/SearchSubject" => caller(Some("authz.list_users"), false),
        // Envoy's sidecar: a service token or a client certificate.
        "Envoy/Check" => Rule::ServiceOrCertificate {
            service_permission: "authz.check",
        },
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
        // Each proposed write is held to its own RPC's rule.
        "Administration/PreviewChanges" => caller(None, true),
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
        // The change stream (gRPC and its HTTP form): services only.
        "Changes/Watch" => caller(Some("authz.watch"), false),
        // Revoking one's own token needs no permission (RFC 7009 spirit).
        "ServiceCredentials/RevokeServiceToken" => caller(None, true),
        _ => DENY_ALL,
    }
}

/// What an operation without a rule gets.
pub const DENY_ALL: Rule = Rule::Caller {
    service_permission: Some("(no rule for this method)"),
    users: false,
};

const fn caller(service_permission: Option<&'static str>, users: bool) -> Rule {
    Rule::Caller {
        service_permission,
        users,
    }
}

/// Checks the `Authorization` header's value against the rule of
/// `operation`; returns the caller, if any.
pub fn authorize(
    tokens: &Tokens,
    operation: &str,
    authorization: Option<&str>,
    now: DateTime<Utc>,
) -> Result<Option<Principal>, CallerRefusal> {
    let access = rule(operation);
    if access == Rule::Public {
        return Ok(None);
    }
    let principal = match (authorization, access) {
        (None, Rule::OptionalCaller | Rule::ServiceOrCertificate { .. }) => return Ok(None),
        (None, _) => return Err(CallerRefusal::Unauthenticated),
        (Some(header), _) => verify_bearer(tokens, header, now)?,
    };
    if let Rule::Caller { .. } = access {
        permit(&principal, operation)?;
    }
    Ok(Some(principal))
}

/// Whether `principal`, already authenticated, may make `operation`'s call.
pub fn permit(principal: &Principal, operation: &str) -> Result<(), CallerRefusal> {
    let (service_permission, users) = match rule(operation) {
        Rule::Public | Rule::OptionalCaller => return Ok(()),
        Rule::ServiceOrCertificate { service_permission } => (Some(service_permission), false),
        Rule::Caller {
            service_permission,
            users,
        } => (service_permission, users),
    };
    let method = operation.rsplit('/').next().unwrap_or(operation);
    match principal {
        Principal::User(_) if !users => Err(CallerRefusal::UserNotAllowed {
            operation: method.to_owned(),
        }),
        Principal::Service(_) => match service_permission {
            Some(permission) if !principal.has_permission(permission) => {
                Err(CallerRefusal::PermissionMissing {
                    operation: method.to_owned(),
                    permission,
                })
            }
            _ => Ok(()),
        },
        Principal::User(_) => Ok(()),
    }
}

fn verify_bearer(
    tokens: &Tokens,
    header: &str,
    now: DateTime<Utc>,
) -> Result<Principal, CallerRefusal> {
    let token = crate::tokens::bearer(header).ok_or(CallerRefusal::Unauthenticated)?;
    match tokens.verify(token.trim(), now) {
        Ok(verified) => Ok(verified.principal),
        Err(TokenError::RevocationUnknown) => Err(CallerRefusal::RevocationUnknown),
        Err(_) => Err(CallerRefusal::Unauthenticated),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_operation_without_a_rule_is_closed() {
        assert_eq!(rule("Administration/DropTenant"), DENY_ALL);
        assert_eq!(rule("AuthZen/Delete"), DENY_ALL);
    }
}
