//! The gRPC port's view of the caller rule table ([`crate::callers`]): a
//! path's operation, and a refusal as a `Status`. Used by the
//! caller-authentication layer.

use chrono::{DateTime, Utc};
use tonic::Status;

use super::error_details::detailed;
use super::reason::Reason;

use crate::callers::{self, CallerRefusal, Rule};
use crate::tokens::{Principal, Tokens};

/// The one message for every unusable token, whatever was wrong with it.
pub const UNAUTHENTICATED: &str = "missing, invalid, expired or revoked access token";

const PKG: &str = "/portcullis.v1.";
const ENVOY_CHECK: &str = "/envoy.service.auth.v3.Authorization/Check";

/// The operation a gRPC path names in the rule table: `Service/Method` of
/// our package, `Envoy/Check` for Envoy's; `None` for health and
/// reflection, which are public, and for paths of no package of ours.
fn operation(path: &str) -> Option<&str> {
    if path == ENVOY_CHECK {
        return Some("Envoy/Check");
    }
    path.strip_prefix(PKG)
}

/// Health and reflection: the port's own services, open to anyone.
fn is_infrastructure(path: &str) -> bool {
    path.starts_with("/grpc.health.v1.Health/") || path.starts_with("/grpc.reflection.")
}

/// The rule for a gRPC path (`/package.Service/Method`).
pub fn rule(path: &str) -> Rule {
    if is_infrastructure(path) {
        return Rule::Public;
    }
    operation(path).map_or(callers::DENY_ALL, callers::rule)
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
        ENVOY_CHECK,
    ];
    let known = if path.starts_with(PKG) {
        rule(path) != callers::DENY_ALL
    } else {
        SERVED_ELSEWHERE.contains(&path)
    };
    if known { path } else { "unknown" }
}

/// Checks the `authorization` header against the rule of `path`; returns
/// the caller, if any.
pub fn authorize(
    tokens: &Tokens,
    path: &str,
    authorization: Option<&str>,
    now: DateTime<Utc>,
) -> Result<Option<Principal>, Status> {
    if is_infrastructure(path) {
        return Ok(None);
    }
    // A path of no package of ours has no rule: closed to everyone.
    let operation = operation(path).unwrap_or(path);
    callers::authorize(tokens, operation, authorization, now).map_err(refused)
}

/// A caller refusal, as the gRPC port answers it.
pub fn refused(refusal: CallerRefusal) -> Status {
    match refusal {
        CallerRefusal::Unauthenticated => unauthenticated(),
        CallerRefusal::RevocationUnknown => detailed(
            "cannot confirm that the token is not revoked; retry shortly",
            Reason::RevocationUnknown,
            &[],
            None,
        ),
        CallerRefusal::UserNotAllowed { operation } => detailed(
            format!("user tokens may not call {operation}"),
            Reason::UserTokenNotAllowed,
            &[("method", &operation)],
            None,
        ),
        CallerRefusal::PermissionMissing {
            operation,
            permission,
        } => permission_missing(&operation, permission),
    }
}

/// The one answer for a missing or unusable caller token.
pub fn unauthenticated() -> Status {
    detailed(UNAUTHENTICATED, Reason::TokenInvalid, &[], None)
}

/// A caller without the permission `method` needs.
pub fn permission_missing(method: &str, permission: &str) -> Status {
    detailed(
        format!("{method} needs the permission {permission}"),
        Reason::PermissionMissing,
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
            assert_ne!(rule(&path), callers::DENY_ALL, "{path} has no rule");
        }
    }

    #[test]
    fn a_method_without_a_rule_is_closed() {
        assert_eq!(
            rule("/portcullis.v1.Administration/DropTenant"),
            callers::DENY_ALL
        );
        assert_eq!(rule("/other.v1.Thing/Do"), callers::DENY_ALL);
    }
}
