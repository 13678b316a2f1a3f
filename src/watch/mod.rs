//! The change stream behind `Watch`: every committed change that can alter
//! a decision, a listing or a holder list, in commit order, each with what
//! it does to access ([`Effect`]), resumable from any token a consumer has
//! seen.
//!
//! The stream is the audit trail itself: a change's audit row, written in
//! the change's transaction, is given a position at COMMIT
//! (`audit.access_changes`; the migration says why the order is the commit
//! order). A server reads positions, never a replication slot, so it needs
//! no privilege beyond the application role's and works through PgBouncer
//! in transaction mode. One [`Hub`] per server learns where the stream
//! ends (at once after its own commits, by polling for other servers');
//! each subscriber reads from its own position into a bounded buffer.

mod feed;
mod hub;
mod produce;
mod subscription;

pub use feed::prune;
pub use hub::Hub;
pub use subscription::{Kind, Start, Subscription};

use std::time::Duration;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::db::DbError;

/// How the stream behaves (`portcullis serve --watch-*`).
#[derive(Clone, Debug)]
pub struct WatchSettings {
    /// How often a server looks for changes other servers committed (its
    /// own it sees at once).
    pub poll: Duration,
    /// How long a stream may go without a message: an idle stream gets a
    /// checkpoint (a token and no change) this often.
    pub checkpoint: Duration,
    /// Changes a stream holds for a consumer that is not reading.
    pub buffer: usize,
    /// How long a full buffer may stay full before the stream ends with
    /// the token to resume from.
    pub stall: Duration,
    /// How long changes stay in the stream; older ones are pruned, and a
    /// resume from before them is refused (`OUT_OF_RANGE`).
    pub retention: Duration,
}

impl Default for WatchSettings {
    fn default() -> Self {
        Self {
            poll: Duration::from_millis(20),
            checkpoint: Duration::from_secs(1),
            buffer: 1024,
            stall: Duration::from_secs(10),
            retention: Duration::from_secs(7 * 24 * 3600),
        }
    }
}

/// One change, as the audit row of its transaction recorded it.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Change {
    /// Its place in the stream (commit order; not dense).
    pub position: u64,
    /// The audit row's id.
    pub event_id: Uuid,
    pub committed_at: DateTime<Utc>,
    /// None for the global catalogues.
    pub tenant_id: Option<Uuid>,
    /// What changed: `assignment`, `visibility_grant`, `org_node`, `role`,
    /// `capability`, `user`, `tenant` or `endpoint_policy`.
    pub kind: String,
    /// The audit action, e.g. `org.node_moved`.
    pub action: String,
    /// The thing's id.
    pub entity_id: Option<String>,
    pub actor_kind: String,
    pub actor_id: Option<Uuid>,
    pub request_id: Option<String>,
    /// The row before (none for a creation) and after (none for a
    /// deletion), as the API shows it.
    pub before: Option<serde_json::Value>,
    pub after: Option<serde_json::Value>,
    pub effect: Effect,
}

/// What a change does to access: whose decisions a cache must forget.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct Effect {
    /// The capabilities whose holders may have changed; `None`: any.
    pub capabilities: Option<Vec<String>>,
    /// The root of the subtree where they may have; `None`: the whole
    /// tenant (every tenant, for a global change).
    pub subtree_root_id: Option<Uuid>,
    /// The users the change names (empty: it names none).
    pub user_ids: Vec<Uuid>,
    /// The window in which the changed assignment or grant is in force:
    /// access changes again, with no write, when it opens and when it
    /// closes.
    pub effective_from: Option<DateTime<Utc>>,
    pub effective_until: Option<DateTime<Utc>>,
}

/// What a stream sends.
#[derive(Clone, Debug)]
pub enum Item {
    /// A change and the token to resume after it.
    Change { change: Box<Change>, token: String },
    /// Nothing new for this consumer up to the token's position.
    Checkpoint { token: String },
}

#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    /// Not a change stream token this service issued (or its key retired).
    #[error("resume_token: not a change stream token of this service")]
    BadToken,
    #[error("kinds[{0}]: unknown kind {1:?}; one of {kinds}", kinds = Kind::names())]
    BadKind(usize, String),
    /// A tenant the caller may not watch: the answer for no tenant.
    #[error("tenant_id: not found")]
    TenantNotFound,
    /// The position asked for is no longer (or not yet) in the stream.
    #[error("resume_token: {reason}; the oldest position still available is token {oldest}")]
    OutOfRange { reason: String, oldest: String },
    /// The consumer did not read for too long: the stream ended; every
    /// change up to `resume` was sent.
    #[error(
        "the consumer did not read for {stalled:?} with {buffered} changes waiting; resume from token {resume}"
    )]
    FellBehind {
        stalled: Duration,
        buffered: usize,
        resume: String,
    },
    /// The server is shutting down; every change up to `resume` was sent.
    #[error("the server is shutting down; resume from token {resume} on another")]
    ShuttingDown { resume: String },
    #[error(transparent)]
    Db(#[from] DbError),
}

impl WatchError {
    /// The token to resume from, when the stream ended cleanly.
    pub fn resume_token(&self) -> Option<&str> {
        match self {
            Self::FellBehind { resume, .. } | Self::ShuttingDown { resume } => Some(resume),
            Self::OutOfRange { oldest, .. } => Some(oldest),
            _ => None,
        }
    }
}
