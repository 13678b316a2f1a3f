//! One per server: learns where the stream ends and tells every subscriber,
//! opens streams, and prunes past the retention.

use std::sync::Arc;
use std::time::Duration;

use futures_util::{Stream, StreamExt};
use tokio::sync::{Notify, mpsc, oneshot, watch};

use super::feed::{self, Head};
use super::produce::Producer;
use super::{Item, Start, Subscription, WatchError, WatchSettings};
use crate::consistency::token;
use crate::db::Db;
use crate::tokens::Tokens;

/// How often pruning runs.
const PRUNE_EVERY: Duration = Duration::from_secs(60);

pub struct Hub {
    pub(super) db: Db,
    pub(super) tokens: Arc<Tokens>,
    pub(super) settings: WatchSettings,
    head: watch::Sender<Head>,
    /// Woken when a first subscriber comes: the poll sleeps without one.
    subscribed: Notify,
    /// Set when the server shuts down: streams end with their token.
    closing: watch::Sender<bool>,
}

impl Hub {
    /// The stream of `db` (the primary: positions are taken there).
    pub fn new(db: Db, tokens: Arc<Tokens>, settings: WatchSettings) -> Arc<Hub> {
        Arc::new(Hub {
            db,
            tokens,
            settings,
            head: watch::Sender::new(Head::default()),
            subscribed: Notify::new(),
            closing: watch::Sender::new(false),
        })
    }

    /// Opens a stream: checks where it starts (a resume from a pruned
    /// position, or from one this database never issued, is
    /// [`WatchError::OutOfRange`]), then feeds it from a task of its own
    /// until the consumer goes, falls behind, or the server shuts down.
    pub async fn open(
        self: &Arc<Self>,
        subscription: Subscription,
    ) -> Result<impl Stream<Item = Result<Item, WatchError>> + Send + 'static, WatchError> {
        let ctx = feed::context(subscription.tenant, subscription.request_id.as_deref());
        let cursor = match subscription.start {
            Start::Now => feed::head(&self.db).await?,
            Start::After { position, lsn } => {
                let marks = feed::marks(&self.db, &ctx).await?;
                let out_of_range = |reason: String| WatchError::OutOfRange {
                    reason,
                    oldest: self.token(marks.lsn, marks.pruned_through),
                };
                if position < marks.pruned_through {
                    return Err(out_of_range(format!(
                        "changes up to position {} were pruned (retention {:?}), past this token's {position}",
                        marks.pruned_through, self.settings.retention
                    )));
                }
                if position > marks.last_issued {
                    return Err(out_of_range(format!(
                        "position {position} was never reached by this database (it has reached {})",
                        marks.last_issued
                    )));
                }
                Head { position, lsn }
            }
        };
        let (sender, receiver) = mpsc::channel(self.settings.buffer.max(1));
        let (end, ended) = oneshot::channel();
        let producer = Producer {
            hub: self.clone(),
            heads: self.subscribe(),
            closing: self.closing.subscribe(),
            ctx,
            subscription,
            cursor,
            sender,
            end,
        };
        tokio::spawn(producer.run());
        // The buffered items, then the reason the stream ended, if it did
        // not end because the consumer went.
        let items = tokio_stream::wrappers::ReceiverStream::new(receiver).map(Ok);
        let ending = futures_util::stream::once(ended)
            .filter_map(|ended| async move { ended.ok().map(Err) });
        Ok(items.chain(ending))
    }

    /// Ends every stream with its token (a server shutting down).
    pub fn close(&self) {
        self.closing.send_replace(true);
    }

    /// A change stream token for `position`, or empty when no key is
    /// active.
    pub(super) fn token(&self, lsn: crate::consistency::Lsn, position: u64) -> String {
        token::encode_change(self.tokens.keys(), lsn, position, now()).unwrap_or_default()
    }

    fn subscribe(&self) -> watch::Receiver<Head> {
        let heads = self.head.subscribe();
        self.subscribed.notify_one();
        heads
    }

    /// Follows the end of the stream while anyone subscribes (at once
    /// after this server's commits, else every `poll`), and prunes. Spawn
    /// once per server; runs until aborted.
    pub async fn run(self: Arc<Self>) {
        let commits = self.db.commits();
        let mut failing = false;
        let mut next_prune = tokio::time::Instant::now();
        loop {
            if tokio::time::Instant::now() >= next_prune {
                next_prune += PRUNE_EVERY;
                match feed::prune(&self.db, self.settings.retention, now()).await {
                    Ok(0) => {}
                    Ok(removed) => {
                        tracing::info!(removed, "pruned the change stream past its retention")
                    }
                    Err(error) => tracing::warn!(%error, "pruning the change stream failed"),
                }
            }
            if self.head.receiver_count() == 0 {
                tokio::select! {
                    () = self.subscribed.notified() => {}
                    () = tokio::time::sleep_until(next_prune) => continue,
                }
            }
            // Armed before the read, so a commit during it is not missed.
            let committed = commits.notified();
            tokio::pin!(committed);
            committed.as_mut().enable();
            match feed::head(&self.db).await {
                Ok(head) => {
                    failing = false;
                    self.head.send_if_modified(|seen| {
                        let moved = head.position > seen.position;
                        if moved {
                            *seen = head;
                        }
                        moved
                    });
                }
                // Once per outage, not once per poll.
                Err(error) if !failing => {
                    failing = true;
                    tracing::warn!(%error, "cannot read where the change stream ends");
                }
                Err(_) => {}
            }
            tokio::select! {
                () = &mut committed => {}
                () = tokio::time::sleep(self.settings.poll) => {}
            }
        }
    }
}

/// The follower and the streams outlive any request: there is no edge to
/// read the clock at, so they read it here (for sealing tokens under the
/// key in force, and for the retention's cutoff).
#[allow(clippy::disallowed_methods)]
fn now() -> chrono::DateTime<chrono::Utc> {
    chrono::Utc::now()
}
