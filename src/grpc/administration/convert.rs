//! Between protobuf messages and the administration domain: field parsing
//! that names the field, and the domain's values as messages.

use chrono::{DateTime, Utc};
use tonic::Status;
use uuid::Uuid;

use super::super::fields::{parse_id, parse_uuid};
use super::super::request::{invalid, timestamp};
use crate::admin::assignments::ListFilter;
use crate::admin::idempotency::IdempotencyKey;
use crate::admin::{
    Label, assignments, audit_trail, global, grants, invitations, org, roles, users,
};
use crate::authn::Login;
use crate::authz::CapabilityKey;
use crate::proto::v1 as pb;

pub(super) fn idempotency_key(value: &str) -> Result<Option<IdempotencyKey>, Status> {
    IdempotencyKey::parse(value).map_err(|e| invalid("idempotency_key", e))
}

pub(super) fn label(value: &str) -> Result<Label, Status> {
    Label::parse(value).map_err(|e| invalid("label", e))
}

pub(super) fn optional_uuid(field: &str, value: &str) -> Result<Option<Uuid>, Status> {
    if value.is_empty() {
        return Ok(None);
    }
    parse_uuid(field, value).map(Some)
}

pub(super) fn optional_id<T>(field: &str, value: &str) -> Result<Option<T>, Status>
where
    T: std::str::FromStr<Err = crate::names::NameError>,
{
    if value.is_empty() {
        return Ok(None);
    }
    parse_id(field, value).map(Some)
}

pub(in crate::grpc) fn node(node: org::OrgNode) -> pb::OrgNode {
    pb::OrgNode {
        active: node.active,
        org_node_id: node.id.to_string(),
        tenant_id: node.tenant_id.to_string(),
        parent_org_node_id: node.parent_id.map(|p| p.to_string()).unwrap_or_default(),
        node_type: node.node_type,
        label: node.label,
    }
}

pub(super) fn capability_keys(keys: &[String]) -> Result<Vec<CapabilityKey>, Status> {
    keys.iter()
        .enumerate()
        .map(|(i, key)| {
            CapabilityKey::parse(key).map_err(|e| invalid(&format!("capabilities[{i}]"), e))
        })
        .collect()
}

pub(in crate::grpc) fn role(role: roles::Role) -> pb::Role {
    pb::Role {
        role_id: role.id.to_string(),
        tenant_id: role.tenant_id.to_string(),
        key: role.key,
        label: role.label,
        capabilities: role.capabilities,
    }
}

pub(in crate::grpc) fn assignment(assignment: assignments::Assignment) -> pb::Assignment {
    pb::Assignment {
        assignment_id: assignment.id.to_string(),
        tenant_id: assignment.tenant_id.to_string(),
        user_id: assignment.user_id.to_string(),
        role_id: assignment.role_id.to_string(),
        org_node_id: assignment.org_node_id.to_string(),
        start_utc: Some(timestamp(assignment.start_utc)),
        end_utc: assignment.end_utc.map(timestamp),
    }
}

/// `google.protobuf.Timestamp`'s own range, 0001-01-01T00:00:00Z to
/// 9999-12-31T23:59:59.999999999Z: times outside it are refused, so no
/// arithmetic on a client's time can leave chrono's or PostgreSQL's range.
const FIRST_SECOND: i64 = -62_135_596_800;
const LAST_SECOND: i64 = 253_402_300_799;

pub(super) fn time(
    field: &str,
    value: Option<prost_types::Timestamp>,
) -> Result<Option<DateTime<Utc>>, Status> {
    value
        .map(|t| {
            u32::try_from(t.nanos)
                .ok()
                .filter(|nanos| *nanos < 1_000_000_000)
                .filter(|_| (FIRST_SECOND..=LAST_SECOND).contains(&t.seconds))
                .and_then(|nanos| DateTime::from_timestamp(t.seconds, nanos))
                .ok_or_else(|| invalid(field, "is not a valid time (0001-01-01 to 9999-12-31 UTC)"))
        })
        .transpose()
}

pub(in crate::grpc) fn tenant(tenant: global::Tenant) -> pb::Tenant {
    pb::Tenant {
        tenant_id: tenant.id.to_string(),
        active: tenant.status == "active",
        slug: tenant.slug,
        name: tenant.name,
        federated_email_linking: tenant.federated_email_linking,
    }
}

pub(in crate::grpc) fn capability(capability: global::Capability) -> pb::CapabilityDefinition {
    pb::CapabilityDefinition {
        capability_id: capability.id.to_string(),
        key: capability.key,
        description: capability.description,
    }
}

pub(in crate::grpc) fn user(user: users::User) -> pb::User {
    pb::User {
        user_id: user.id.to_string(),
        tenant_id: user.tenant_id.to_string(),
        display_name: user.display_name,
        active: user.active,
        logins: user.logins,
    }
}

pub(super) fn audit_event(event: audit_trail::Event) -> pb::AuditEvent {
    pb::AuditEvent {
        event_id: event.id.to_string(),
        occurred_at: Some(timestamp(event.occurred_at)),
        tenant_id: event.tenant_id.map(|t| t.to_string()).unwrap_or_default(),
        actor_kind: event.actor_kind,
        actor_id: event.actor_id.map(|id| id.to_string()).unwrap_or_default(),
        action: event.action,
        entity_kind: event.entity_kind,
        entity_id: event.entity_id.unwrap_or_default(),
        request_id: event.request_id.unwrap_or_default(),
        payload_json: event.payload.to_string(),
    }
}

pub(in crate::grpc) fn grant(grant: grants::VisibilityGrant) -> pb::VisibilityGrant {
    let scope = match grant.scope.as_str() {
        "analyze" => pb::VisibilityScope::Analyze,
        _ => pb::VisibilityScope::Read,
    };
    pb::VisibilityGrant {
        grant_id: grant.id.to_string(),
        tenant_id: grant.tenant_id.to_string(),
        user_id: grant.user_id.to_string(),
        org_node_id: grant.org_node_id.to_string(),
        scope: scope as i32,
        start_utc: Some(timestamp(grant.start_utc)),
        end_utc: grant.end_utc.map(timestamp),
    }
}

/// The scope a grant gives: READ or ANALYZE (ANY is a listing filter).
pub(super) fn grant_scope(value: i32) -> Result<&'static str, Status> {
    match pb::VisibilityScope::try_from(value) {
        Ok(pb::VisibilityScope::Read) => Ok("read"),
        Ok(pb::VisibilityScope::Analyze) => Ok("analyze"),
        _ => Err(invalid(
            "scope",
            "must be VISIBILITY_SCOPE_READ or VISIBILITY_SCOPE_ANALYZE",
        )),
    }
}

/// Exactly one of `user_id` and `org_node_id`.
pub(super) fn list_filter(user_id: &str, org_node_id: &str) -> Result<ListFilter, Status> {
    match (user_id.is_empty(), org_node_id.is_empty()) {
        (false, true) => Ok(ListFilter::User(parse_id("user_id", user_id)?)),
        (true, false) => Ok(ListFilter::Node(parse_id("org_node_id", org_node_id)?)),
        _ => Err(invalid(
            "user_id",
            "give exactly one of user_id and org_node_id",
        )),
    }
}

/// A listing's page size: `default` when 0, refused above `max`.
pub(super) fn page_size(value: u32, default: u32, max: u32) -> Result<u32, Status> {
    match value {
        0 => Ok(default),
        n if n > max => Err(invalid("page_size", format!("must be at most {max}"))),
        n => Ok(n),
    }
}

/// Who an invitation is for: exactly one of `email` and `phone`.
pub(super) fn invitee(email: &str, phone: &str) -> Result<Login, Status> {
    Login::one_of(email, phone).map_err(|(field, problem)| invalid(field, problem))
}

pub(super) fn invitation(invitation: invitations::Invitation) -> pb::Invitation {
    let (email, phone) = (
        invitation.email_addr.clone().unwrap_or_default(),
        invitation.phone_e164.clone().unwrap_or_default(),
    );
    pb::Invitation {
        invitation_id: invitation.id.to_string(),
        tenant_id: invitation.tenant_id.to_string(),
        email,
        phone,
        role_id: invitation.role_id.to_string(),
        org_node_id: invitation.org_node_id.to_string(),
        created_at: Some(timestamp(invitation.created_at)),
        expires_at: Some(timestamp(invitation.expires_at)),
        accepted_at: invitation.accepted_at.map(timestamp),
        accepted_user_id: invitation
            .accepted_user_id
            .map(|u| u.to_string())
            .unwrap_or_default(),
        revoked_at: invitation.revoked_at.map(timestamp),
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #[test]
        fn any_timestamp_converts_or_is_refused_naming_the_field(seconds: i64, nanos: i32) {
            let converted = time("start_utc", Some(prost_types::Timestamp { seconds, nanos }));
            let in_range = (FIRST_SECOND..=LAST_SECOND).contains(&seconds)
                && (0..1_000_000_000).contains(&nanos);
            match converted {
                Ok(Some(at)) => {
                    prop_assert!(in_range);
                    // The service's own arithmetic on a time (a microsecond
                    // past a start, a week ahead) stays in range.
                    prop_assert!(at.checked_add_signed(chrono::Duration::days(400)).is_some());
                    prop_assert_eq!(crate::grpc::request::timestamp(at), prost_types::Timestamp { seconds, nanos });
                }
                Ok(None) => prop_assert!(false, "a given time vanished"),
                Err(status) => {
                    prop_assert!(!in_range);
                    prop_assert_eq!(status.code(), tonic::Code::InvalidArgument);
                    prop_assert!(status.message().starts_with("start_utc:"));
                }
            }
        }
    }

    #[test]
    fn the_last_representable_second_is_accepted_and_one_more_is_refused() {
        let at = |seconds| {
            time(
                "end_utc",
                Some(prost_types::Timestamp { seconds, nanos: 0 }),
            )
        };
        assert!(at(LAST_SECOND).is_ok());
        assert!(at(LAST_SECOND + 1).is_err());
        assert!(at(i64::MAX).is_err());
        assert!(at(FIRST_SECOND - 1).is_err());
    }
}
