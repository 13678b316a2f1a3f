//! What an administration error is about. The domain names the thing; the
//! transport knows which request field carried it (`grpc::status`).

use std::fmt;

use crate::names::Login;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Item {
    Tenant,
    TenantSlug,
    User,
    OrgNode,
    /// The node a new node is created under.
    Parent,
    /// The node a subtree is moved under.
    NewParent,
    Role,
    RoleKey,
    /// The capability at this position of a role's new list.
    RoleCapability(usize),
    /// A capability of the catalogue.
    Capability,
    CapabilityDescription,
    Assignment,
    /// When an assignment ends.
    AssignmentEnd,
    Grant,
    Invitation,
    /// The token an invitee presents.
    InviteToken,
    InvitationExpiry,
    Email,
    Phone,
    Password,
    IdempotencyKey,
    PageToken,
    /// An entry of the endpoint catalogue.
    Endpoint,
    EndpointService,
    EndpointMethod,
    RoutePattern,
    /// The capability an endpoint needs.
    EndpointCapability,
    NodeSource,
}

impl Item {
    /// The email or the phone, whichever `login` is.
    pub fn login(login: &Login) -> Self {
        match login {
            Login::Email(_) => Self::Email,
            Login::Phone(_) => Self::Phone,
        }
    }
}

impl fmt::Display for Item {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            Self::Tenant => "tenant",
            Self::TenantSlug => "tenant slug",
            Self::User => "user",
            Self::OrgNode => "org node",
            Self::Parent => "parent node",
            Self::NewParent => "new parent node",
            Self::Role => "role",
            Self::RoleKey => "role key",
            Self::RoleCapability(index) => return write!(f, "capability #{}", index + 1),
            Self::Capability => "capability",
            Self::CapabilityDescription => "capability description",
            Self::Assignment => "assignment",
            Self::AssignmentEnd => "assignment end",
            Self::Grant => "grant",
            Self::Invitation => "invitation",
            Self::InviteToken => "invite token",
            Self::InvitationExpiry => "invitation expiry",
            Self::Email => "email",
            Self::Phone => "phone",
            Self::Password => "password",
            Self::IdempotencyKey => "idempotency key",
            Self::PageToken => "page token",
            Self::Endpoint => "endpoint policy",
            Self::EndpointService => "service key",
            Self::EndpointMethod => "method",
            Self::RoutePattern => "route pattern",
            Self::EndpointCapability => "capability",
            Self::NodeSource => "node source",
        };
        f.write_str(name)
    }
}
