//! Validated names, the one home of the values a request names: built only
//! by parsing, so code holding one never re-checks it, and refused with
//! one error type whose message completes "<field>: …".

mod capability;
mod endpoint;
mod idempotency;
mod ids;
mod login;
mod org;
mod password;
mod service;

pub use capability::{CapabilityKey, Permission};
pub use endpoint::{HttpMethod, NodeSource, RoutePattern};
pub use idempotency::IdempotencyKey;
pub use ids::{OrgNodeId, TenantId, UserId};
pub use login::{Email, Login, Phone};
pub use org::{Label, NodeType, RoleKey, TenantSlug};
pub use password::{MAX_PASSWORD_BYTES, MIN_PASSWORD_CHARS, NewPassword};
pub use service::ServiceKey;

/// Why a value is not a valid name of its kind.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("is required")]
    Empty,
    #[error("is longer than {0} characters")]
    TooLong(usize),
    #[error("is longer than {0} bytes")]
    TooManyBytes(usize),
    #[error("must be at least {0} characters")]
    TooShort(usize),
    /// The shape it must have.
    #[error("must be {0}")]
    Shape(&'static str),
    /// Another rule it breaks, as a whole sentence ("must not …").
    #[error("{0}")]
    Rule(&'static str),
    #[error("is not an email address")]
    Email,
    #[error("must be an E.164 phone number such as +33612345678")]
    Phone,
}

/// The errors of login names, by their older name.
pub use NameError as LoginError;

/// Dot-separated segments of lower-case ASCII letters, digits and '_', each
/// starting with a letter: `payment.ledger.download`, `authz.check`.
fn is_dotted_lowercase(raw: &str) -> bool {
    raw.split('.').all(|segment| {
        let mut chars = segment.chars();
        chars.next().is_some_and(|c| c.is_ascii_lowercase())
            && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
    })
}
