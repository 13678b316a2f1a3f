//! The request context that row-level security policies read.

use uuid::Uuid;

/// How many `app.*` keys every transaction sets.
pub(crate) const CONTEXT_KEYS: usize = 10;

/// Who a transaction acts for. Every field becomes an `app.*` setting, set
/// transaction-locally at the start of the scoped transaction; policies see
/// nothing for a field left empty, so an empty context sees no rows.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RlsContext {
    tenant_id: Option<Uuid>,
    user_id: Option<Uuid>,
    service_id: Option<Uuid>,
    service_key: Option<String>,
    refresh_session_id: Option<Uuid>,
    invitation_id: Option<Uuid>,
    client_address: Option<String>,
    request_id: Option<String>,
    purpose: Option<&'static str>,
    global_admin: bool,
}

impl RlsContext {
    /// A context that can see nothing: for liveness probes.
    pub fn anonymous() -> Self {
        Self::default()
    }

    /// Acting inside one tenant.
    pub fn tenant(tenant_id: Uuid) -> Self {
        Self {
            tenant_id: Some(tenant_id),
            ..Self::default()
        }
    }

    /// Trusted operator tooling (CLI, seeding): may write global rows such as
    /// the capability catalogue, tenants and service accounts. Never built
    /// from a network request.
    pub fn operator() -> Self {
        Self {
            global_admin: true,
            ..Self::default()
        }
    }

    /// A global service acting as a global administrator (tenants, the
    /// capability catalogue): built only by the administration guard, for
    /// a service bound to no tenant whose permission the rule table checked.
    pub fn global_administrator(service_id: Uuid) -> Self {
        Self {
            service_id: Some(service_id),
            global_admin: true,
            ..Self::default()
        }
    }

    /// A server-internal task with a narrow, named view (e.g. the revocation
    /// list sync, `revocation_sync`), rather than a tenant or an identity.
    pub fn purpose(purpose: &'static str) -> Self {
        Self {
            purpose: Some(purpose),
            ..Self::default()
        }
    }

    pub fn with_tenant(mut self, tenant_id: Uuid) -> Self {
        self.tenant_id = Some(tenant_id);
        self
    }

    pub fn with_user(mut self, user_id: Uuid) -> Self {
        self.user_id = Some(user_id);
        self
    }

    pub fn with_service(mut self, service_id: Uuid) -> Self {
        self.service_id = Some(service_id);
        self
    }

    /// The narrow pre-authentication context of a credential exchange: it
    /// lets the transaction see exactly the service account named by `key`.
    pub fn with_service_key(mut self, key: impl Into<String>) -> Self {
        self.service_key = Some(key.into());
        self
    }

    /// The narrow pre-authentication context of a refresh: it lets the
    /// transaction see exactly the session a presented refresh token names.
    pub fn with_refresh_session(mut self, session_id: Uuid) -> Self {
        self.refresh_session_id = Some(session_id);
        self
    }

    /// The narrow pre-authentication context of accepting an invitation: it
    /// lets the transaction read exactly the invitation a token names.
    pub fn with_invitation(mut self, invitation_id: Uuid) -> Self {
        self.invitation_id = Some(invitation_id);
        self
    }

    /// The client address of an unauthenticated call: its transaction may
    /// count against that address's throttles (and no other address's).
    pub fn with_client_address(mut self, address: Option<&str>) -> Self {
        self.client_address = address.map(str::to_owned);
        self
    }

    /// The request this transaction serves, if it has an id. Request ids
    /// come from clients: only `[A-Za-z0-9._:-]`, at most 128 characters,
    /// reach the database; anything else is dropped.
    pub fn with_request_id(mut self, request_id: Option<&str>) -> Self {
        let safe = |id: &&str| {
            id.len() <= 128
                && id
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | ':' | '-'))
        };
        self.request_id = request_id.filter(safe).map(str::to_owned);
        self
    }

    pub fn tenant_id(&self) -> Option<Uuid> {
        self.tenant_id
    }

    /// Every `app.*` key with its value here (empty: not set): the one list
    /// of context keys. The transaction door sets them all, in this order.
    pub(crate) fn settings(&self) -> [(&'static str, String); CONTEXT_KEYS] {
        fn uuid(value: Option<Uuid>) -> String {
            value.map(|id| id.to_string()).unwrap_or_default()
        }
        [
            ("app.tenant_id", uuid(self.tenant_id)),
            ("app.user_id", uuid(self.user_id)),
            ("app.service_id", uuid(self.service_id)),
            (
                "app.service_key",
                self.service_key.clone().unwrap_or_default(),
            ),
            ("app.refresh_session_id", uuid(self.refresh_session_id)),
            (
                "app.request_id",
                self.request_id.clone().unwrap_or_default(),
            ),
            ("app.purpose", self.purpose.unwrap_or_default().to_owned()),
            (
                "app.global_admin",
                if self.global_admin { "on" } else { "" }.to_owned(),
            ),
            ("app.invitation_id", uuid(self.invitation_id)),
            (
                "app.client_address",
                self.client_address.clone().unwrap_or_default(),
            ),
        ]
    }
}
