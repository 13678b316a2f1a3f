//! Every `ErrorInfo.reason` the service answers with: its code and when it
//! is given. The book's error table is this table (a test renders it).

use tonic::Code;

macro_rules! reasons {
    ($($variant:ident = $name:literal, $code:ident, $when:literal;)*) => {
        /// A stable, UPPER_SNAKE reason: clients branch on it, never on the
        /// message.
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub enum Reason {
            $($variant),*
        }

        impl Reason {
            /// Every reason, in the order the book lists them.
            pub const ALL: &'static [Reason] = &[$(Reason::$variant),*];

            pub fn as_str(self) -> &'static str {
                match self {
                    $(Reason::$variant => $name),*
                }
            }

            /// The status code every error with this reason carries.
            pub fn code(self) -> Code {
                match self {
                    $(Reason::$variant => Code::$code),*
                }
            }

            /// When it is given, for the book.
            pub fn when(self) -> &'static str {
                match self {
                    $(Reason::$variant => $when),*
                }
            }
        }
    };
}

reasons! {
    InvalidArgument = "INVALID_ARGUMENT", InvalidArgument, "a field is missing or malformed (`BadRequest` names it)";
    BadPageToken = "BAD_PAGE_TOKEN", InvalidArgument, "a page token not of this listing, or not of these filters";
    TokenInvalid = "TOKEN_INVALID", Unauthenticated, "the caller's token is missing, malformed, expired, wrongly signed or revoked";
    SubjectTokenInvalid = "SUBJECT_TOKEN_INVALID", Unauthenticated, "the subject's access token is unusable";
    InvalidCredentials = "INVALID_CREDENTIALS", Unauthenticated, "a wrong password, code or service secret";
    InvalidRefreshToken = "INVALID_REFRESH_TOKEN", Unauthenticated, "an unusable refresh token";
    IdTokenRefused = "ID_TOKEN_REFUSED", Unauthenticated, "federated login refused: the ID token is not acceptable";
    IdentityNotLinked = "IDENTITY_NOT_LINKED", Unauthenticated, "federated login refused: no user is linked to this identity";
    InvitationUnusable = "INVITATION_UNUSABLE", Unauthenticated, "an invite token that cannot be used (unknown, expired, revoked or accepted)";
    CallerUnauthenticated = "CALLER_UNAUTHENTICATED", Unauthenticated, "Envoy's `Check` without an accepted credential";
    PermissionMissing = "PERMISSION_MISSING", PermissionDenied, "a service without the permission the RPC needs (`metadata.permission`)";
    PermissionNotGranted = "PERMISSION_NOT_GRANTED", PermissionDenied, "a token exchange asking for a permission the service was not granted";
    UserTokenNotAllowed = "USER_TOKEN_NOT_ALLOWED", PermissionDenied, "a user token on an RPC only services may call";
    TenantForbidden = "TENANT_FORBIDDEN", PermissionDenied, "the caller asked about another tenant's data";
    Forbidden = "FORBIDDEN", PermissionDenied, "an administrator without the capability at that node, or a delegation that would escalate";
    NotFound = "NOT_FOUND", NotFound, "no such row in the caller's tenant (another tenant's rows answer the same)";
    UnknownCapability = "UNKNOWN_CAPABILITY", NotFound, "a capability key not in the catalogue";
    UnknownOrgNode = "UNKNOWN_ORG_NODE", NotFound, "an org node not in the tenant";
    AlreadyExists = "ALREADY_EXISTS", AlreadyExists, "a create whose key or name is taken";
    LoginTaken = "LOGIN_TAKEN", AlreadyExists, "an email or phone another user of the tenant logs in with";
    Conflict = "CONFLICT", FailedPrecondition, "the state forbids it: a cycle, an inactive parent, an ended assignment, …";
    LoginLocked = "LOGIN_LOCKED", ResourceExhausted, "too many failed logins for this login or address; `RetryInfo` and `retry-after` say when to retry";
    TooManyCodes = "TOO_MANY_CODES", ResourceExhausted, "too many one-time codes or resets asked for; with `RetryInfo`";
    TooManyAttempts = "TOO_MANY_ATTEMPTS", ResourceExhausted, "too many attempts at an invite token; with `RetryInfo`";
    DatabaseUnavailable = "DATABASE_UNAVAILABLE", Unavailable, "PostgreSQL cannot be reached, or no connection came free in time; retry after `RetryInfo`";
    HashingBusy = "HASHING_BUSY", Unavailable, "every password-hashing thread stayed busy past the queue timeout; retry after `RetryInfo`";
    RevocationUnknown = "REVOCATION_UNKNOWN", Unavailable, "this replica's revocation list is too old to trust a token; retry after `RetryInfo`";
    IdentityProviderUnavailable = "IDENTITY_PROVIDER_UNAVAILABLE", Unavailable, "an OpenID provider's keys could not be fetched; retry after `RetryInfo`";
    DatabaseTimeout = "DATABASE_TIMEOUT", DeadlineExceeded, "a statement ran past its timeout";
    TransactionConflict = "TRANSACTION_CONFLICT", Aborted, "a concurrent call conflicted and this one was rolled back: retry it (an idempotency key makes a create safe)";
    WatchOutOfRange = "WATCH_OUT_OF_RANGE", OutOfRange, "a `Watch` resume token from before the stream's retention, or from a position this database never reached; `metadata.oldest_token` is the oldest resume still possible";
    WatchConsumerBehind = "WATCH_CONSUMER_BEHIND", Aborted, "a `Watch` consumer left its buffer full for `--watch-stall`: the stream ended; resume from `metadata.resume_token`";
    ServerShuttingDown = "SERVER_SHUTTING_DOWN", Unavailable, "the server is shutting down: a `Watch` stream ended; resume from `metadata.resume_token` on another server";
    Internal = "INTERNAL", Internal, "a fault of ours: logged, never described";
    Cancelled = "CANCELLED", Cancelled, "given by the transport: the client cancelled the call";
    Unknown = "UNKNOWN", Unknown, "given by the transport to an error of unknown origin";
    DeadlineExceeded = "DEADLINE_EXCEEDED", DeadlineExceeded, "given by the transport: the client's deadline passed";
    PermissionDenied = "PERMISSION_DENIED", PermissionDenied, "given by the transport to a refusal made outside the handlers";
    ResourceExhausted = "RESOURCE_EXHAUSTED", ResourceExhausted, "given by the transport to a limit hit outside the handlers; with `RetryInfo`";
    FailedPrecondition = "FAILED_PRECONDITION", FailedPrecondition, "given by the transport to a precondition failed outside the handlers";
    Aborted = "ABORTED", Aborted, "given by the transport to an aborted call";
    OutOfRange = "OUT_OF_RANGE", OutOfRange, "given by the transport";
    Unimplemented = "UNIMPLEMENTED", Unimplemented, "no such RPC on this server";
    Unavailable = "UNAVAILABLE", Unavailable, "given by the transport: the server is shutting down, or refused the call before a handler; with `RetryInfo`";
    DataLoss = "DATA_LOSS", DataLoss, "given by the transport";
    Unauthenticated = "UNAUTHENTICATED", Unauthenticated, "given by the transport to a call refused before the handlers";
}

impl Reason {
    /// The reason an error made elsewhere (tonic's router, the health
    /// service, a layer) gets from its code alone; none for `OK`.
    pub fn of_code(code: Code) -> Option<Reason> {
        Some(match code {
            Code::Ok => return None,
            Code::Cancelled => Reason::Cancelled,
            Code::Unknown => Reason::Unknown,
            Code::InvalidArgument => Reason::InvalidArgument,
            Code::DeadlineExceeded => Reason::DeadlineExceeded,
            Code::NotFound => Reason::NotFound,
            Code::AlreadyExists => Reason::AlreadyExists,
            Code::PermissionDenied => Reason::PermissionDenied,
            Code::ResourceExhausted => Reason::ResourceExhausted,
            Code::FailedPrecondition => Reason::FailedPrecondition,
            Code::Aborted => Reason::Aborted,
            Code::OutOfRange => Reason::OutOfRange,
            Code::Unimplemented => Reason::Unimplemented,
            Code::Internal => Reason::Internal,
            Code::Unavailable => Reason::Unavailable,
            Code::DataLoss => Reason::DataLoss,
            Code::Unauthenticated => Reason::Unauthenticated,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_but_ok_has_a_reason_of_that_code() {
        for number in 1..=16 {
            let code = Code::from_i32(number);
            assert_eq!(Reason::of_code(code).map(Reason::code), Some(code));
        }
        assert_eq!(Reason::of_code(Code::Ok), None);
    }

    #[test]
    fn reason_names_are_unique_upper_snake() {
        let mut seen = std::collections::HashSet::new();
        for reason in Reason::ALL {
            let name = reason.as_str();
            assert!(seen.insert(name), "{name} twice");
            assert!(
                name.chars().all(|c| c.is_ascii_uppercase() || c == '_'),
                "{name}"
            );
        }
    }
}
