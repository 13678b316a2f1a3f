//! What a consumer asks to watch: where to start, which tenant, which kinds.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::WatchError;
use crate::consistency::{Lsn, token};
use crate::tokens::{KeyRing, Principal};

/// The kinds of thing whose changes the stream carries (the audit rows'
/// `entity_kind_code`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Assignment,
    VisibilityGrant,
    OrgNode,
    Role,
    Capability,
    User,
    Tenant,
    EndpointPolicy,
}

impl Kind {
    pub const ALL: [Kind; 8] = [
        Kind::Assignment,
        Kind::VisibilityGrant,
        Kind::OrgNode,
        Kind::Role,
        Kind::Capability,
        Kind::User,
        Kind::Tenant,
        Kind::EndpointPolicy,
    ];
    pub const ALL_NAMES: &'static str =
        "assignment, visibility_grant, org_node, role, capability, user, tenant, endpoint_policy";

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Assignment => "assignment",
            Kind::VisibilityGrant => "visibility_grant",
            Kind::OrgNode => "org_node",
            Kind::Role => "role",
            Kind::Capability => "capability",
            Kind::User => "user",
            Kind::Tenant => "tenant",
            Kind::EndpointPolicy => "endpoint_policy",
        }
    }

    /// Every kind's name, for an error that lists them.
    pub fn names() -> String {
        Kind::ALL.map(Kind::as_str).join(", ")
    }

    pub fn parse(value: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|kind| kind.as_str() == value)
    }

    /// Each of `values` (the request's `kinds`), or the first that is not
    /// a kind, by its index.
    pub fn parse_all<S: AsRef<str>>(values: &[S]) -> Result<Vec<Kind>, WatchError> {
        values
            .iter()
            .enumerate()
            .map(|(index, value)| {
                let value = value.as_ref().trim();
                Kind::parse(value).ok_or_else(|| WatchError::BadKind(index, value.to_owned()))
            })
            .collect()
    }
}

/// Where a stream starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Start {
    /// With the first change committed after the call.
    Now,
    /// With the first change after the one a token was given for.
    After { position: u64, lsn: Lsn },
}

impl Start {
    /// From a request's resume token: none is [`Start::Now`].
    pub fn parse(
        keys: &KeyRing,
        resume_token: &str,
        now: DateTime<Utc>,
    ) -> Result<Start, WatchError> {
        let resume_token = resume_token.trim();
        if resume_token.is_empty() {
            return Ok(Start::Now);
        }
        let (lsn, position) =
            token::decode_change(keys, resume_token, now).ok_or(WatchError::BadToken)?;
        Ok(Start::After { position, lsn })
    }
}

/// One consumer's stream: which tenant's changes (with the global ones
/// every tenant's decisions read), which kinds (none: all), from where.
#[derive(Clone, Debug)]
pub struct Subscription {
    /// `None`: every tenant's (a service bound to no tenant only).
    pub tenant: Option<Uuid>,
    pub kinds: Vec<Kind>,
    pub start: Start,
    pub request_id: Option<String>,
}

impl Subscription {
    /// The subscription `caller` may have: a service bound to a tenant
    /// watches that tenant, whatever it asks; asking for another is the
    /// answer for a tenant that does not exist.
    pub fn for_caller(
        caller: &Principal,
        tenant: Option<Uuid>,
        kinds: Vec<Kind>,
        start: Start,
        request_id: Option<String>,
    ) -> Result<Subscription, WatchError> {
        let tenant = match (caller, tenant) {
            (Principal::Service(service), asked) => match (service.tenant_id, asked) {
                (Some(bound), None) => Some(bound),
                (Some(bound), Some(asked)) if asked == bound => Some(bound),
                (Some(_), Some(_)) => return Err(WatchError::TenantNotFound),
                (None, asked) => asked,
            },
            // The rule table admits services only.
            (Principal::User(_), _) => return Err(WatchError::TenantNotFound),
        };
        Ok(Subscription {
            tenant,
            kinds,
            start,
            request_id,
        })
    }
}
