//! One stream's producer: reads its subscriber's changes from its position
//! into a bounded buffer, checkpoints when idle, and ends with the token
//! to resume from when the consumer stops reading or the server stops.

use std::sync::Arc;
use std::time::Instant;

use tokio::sync::{mpsc, oneshot, watch};

use super::feed::{self, Head};
use super::{Hub, Item, Subscription, WatchError};
use crate::db::RlsContext;

/// Changes read per statement.
const BATCH: usize = 256;

pub(super) struct Producer {
    pub hub: Arc<Hub>,
    pub heads: watch::Receiver<Head>,
    pub closing: watch::Receiver<bool>,
    pub ctx: RlsContext,
    pub subscription: Subscription,
    /// Everything up to here was sent (or is not this subscriber's).
    pub cursor: Head,
    pub sender: mpsc::Sender<Item>,
    pub end: oneshot::Sender<WatchError>,
}

/// Why the producer stopped.
enum Stop {
    /// The consumer went: nobody to tell.
    Gone,
    Ended(WatchError),
}

impl Producer {
    pub async fn run(mut self) {
        crate::metrics::watch_streams(1.0);
        let stop = self.follow().await;
        crate::metrics::watch_streams(-1.0);
        let reason = match &stop {
            Stop::Gone => "consumer_gone",
            Stop::Ended(WatchError::FellBehind { .. }) => "fell_behind",
            Stop::Ended(WatchError::ShuttingDown { .. }) => "shutting_down",
            Stop::Ended(WatchError::OutOfRange { .. }) => "out_of_range",
            Stop::Ended(_) => "error",
        };
        crate::metrics::watch_ended(reason);
        if let Stop::Ended(error) = stop {
            tracing::info!(%error, request_id = self.subscription.request_id.as_deref().unwrap_or("-"), "a change stream ended");
            let _ = self.end.send(error);
        }
    }

    async fn follow(&mut self) -> Stop {
        let settings = self.hub.settings.clone();
        let mut quiet_since = tokio::time::Instant::now();
        loop {
            if *self.closing.borrow() {
                return Stop::Ended(WatchError::ShuttingDown {
                    resume: self.resume_token(),
                });
            }
            let head = *self.heads.borrow_and_update();
            if head.position > self.cursor.position {
                let batch = match feed::read(
                    &self.hub.db,
                    &self.ctx,
                    self.cursor.position,
                    head.position,
                    &self.subscription.kinds,
                    BATCH,
                )
                .await
                {
                    Ok(batch) => batch,
                    Err(error) => return Stop::Ended(error.into()),
                };
                if batch.pruned_through > self.cursor.position {
                    return Stop::Ended(WatchError::OutOfRange {
                        reason: format!(
                            "the stream was pruned through position {} while this consumer was at {}",
                            batch.pruned_through, self.cursor.position
                        ),
                        oldest: self.hub.token(batch.lsn, batch.pruned_through),
                    });
                }
                let complete = batch.changes.len() < BATCH;
                for change in batch.changes {
                    let position = change.position;
                    crate::metrics::watch_event(&change.kind, change.committed_at);
                    let item = Item::Change {
                        token: self.hub.token(batch.lsn, position),
                        change: Box::new(change),
                    };
                    let waited = Instant::now();
                    match tokio::time::timeout(settings.stall, self.sender.reserve()).await {
                        Ok(Ok(permit)) => permit.send(item),
                        Ok(Err(_)) => return Stop::Gone,
                        Err(_) => {
                            return Stop::Ended(WatchError::FellBehind {
                                stalled: waited.elapsed(),
                                buffered: settings.buffer,
                                resume: self.resume_token(),
                            });
                        }
                    }
                    self.cursor = Head {
                        position,
                        lsn: batch.lsn,
                    };
                    quiet_since = tokio::time::Instant::now();
                }
                if complete {
                    // Everything up to the head was read.
                    self.cursor = Head {
                        position: head.position,
                        lsn: head.lsn.max(batch.lsn),
                    };
                } else {
                    continue;
                }
            }
            tokio::select! {
                changed = self.heads.changed() => if changed.is_err() {
                    return Stop::Gone;
                },
                _ = self.closing.changed() => {}
                () = self.sender.closed() => return Stop::Gone,
                () = tokio::time::sleep_until(quiet_since + settings.checkpoint) => {
                    // A consumer with a full buffer is busy: no checkpoint.
                    if let Ok(permit) = self.sender.try_reserve() {
                        permit.send(Item::Checkpoint { token: self.resume_token() });
                    }
                    quiet_since = tokio::time::Instant::now();
                }
            }
        }
    }

    /// The token of everything sent so far.
    fn resume_token(&self) -> String {
        self.hub.token(self.cursor.lsn, self.cursor.position)
    }
}
