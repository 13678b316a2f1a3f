//! Authorization: may user U exercise capability C at org node N, and which
//! nodes may U see. Every call runs in one read-only transaction scoped to
//! the subject's tenant and user.

mod catalogue;
mod check;
mod endpoint;
pub mod endpoint_policy;
pub mod gatekeeper;
mod holders;
mod listing;
mod queries;
mod search;
mod subject;

pub use crate::names::CapabilityKey;
pub use catalogue::{EndpointCatalogue, EndpointRequest};
pub use check::{Check, Decision, GrantExplanation, Reason, check, check_users};
pub use endpoint::{EndpointDecision, check_endpoint};
pub use holders::{Holder, Holders, HoldersQuery, list_holders};
pub use listing::{
    Access, DEFAULT_PAGE_SIZE, GrantScope, Listing, ListingQuery, MAX_PAGE_SIZE, Scope,
    VisibleNode, list_visible,
};
pub use search::{Page, PageRequest, capabilities_at, nodes_with_capability};
pub use subject::{Subject, SubjectRef, may_ask_about_tenant, resolve_subject};

use crate::db::DbError;

#[derive(Debug, thiserror::Error)]
pub enum AuthzError {
    /// The subject's access token is not usable.
    #[error("invalid subject access token")]
    InvalidSubjectToken,
    /// The subject's token cannot be checked for revocation right now.
    #[error("cannot confirm the subject token is not revoked")]
    RevocationUnknown,
    /// The caller may not ask about this subject.
    #[error("{0}")]
    Forbidden(String),
    /// The caller is bound to another tenant ([`may_ask_about_tenant`]);
    /// `field` names the tenant in the request.
    #[error("{field}: the caller may not ask about this tenant")]
    TenantForbidden { field: &'static str },
    /// The page token is not one this query handed out.
    #[error("not a page token of this listing")]
    BadPageToken,
    /// No capability has the key asked about.
    #[error("unknown capability")]
    UnknownCapability,
    /// No node of the tenant has the id asked about.
    #[error("unknown org node")]
    UnknownOrgNode,
    #[error("unexpected answer from the database: {0}")]
    Unexpected(String),
    #[error(transparent)]
    Db(#[from] DbError),
}

impl From<diesel::result::Error> for AuthzError {
    fn from(error: diesel::result::Error) -> Self {
        Self::Db(DbError::from(error))
    }
}
