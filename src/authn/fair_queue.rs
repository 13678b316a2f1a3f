//! Permits for the hashing threads, handed out round-robin by client
//! address: one address flooding logins (or resets) waits behind its own
//! requests, and every other address's next request is served after at
//! most one of the flooder's. Within an address, first come first served.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use tokio::sync::oneshot;

pub struct FairQueue {
    state: Mutex<State>,
}

struct State {
    free: usize,
    /// Addresses with callers waiting, in turn order; each with its callers
    /// in arrival order.
    turns: VecDeque<(String, VecDeque<oneshot::Sender<Permit>>)>,
}

/// The right to use one hashing thread; given back when dropped.
pub struct Permit {
    queue: Arc<FairQueue>,
    /// False for a permit that never reached its caller: dropping it must
    /// not release (the releasing loop hands the place on itself).
    held: bool,
}

impl Drop for Permit {
    fn drop(&mut self) {
        if self.held {
            self.queue.release();
        }
    }
}

impl FairQueue {
    pub fn new(permits: usize) -> Arc<Self> {
        Arc::new(Self {
            state: Mutex::new(State {
                free: permits,
                turns: VecDeque::new(),
            }),
        })
    }

    /// Waits for a permit in `address`'s turn (`None`: one shared turn for
    /// callers whose address is unknown).
    pub async fn acquire(self: &Arc<Self>, address: Option<&str>) -> Option<Permit> {
        let waiting = {
            let mut state = self.lock();
            if state.free > 0 && state.turns.is_empty() {
                state.free -= 1;
                return Some(Permit {
                    queue: self.clone(),
                    held: true,
                });
            }
            let (sender, receiver) = oneshot::channel();
            let address = address.unwrap_or_default();
            match state.turns.iter_mut().find(|(a, _)| a == address) {
                Some((_, callers)) => callers.push_back(sender),
                None => state
                    .turns
                    .push_back((address.to_owned(), VecDeque::from([sender]))),
            }
            receiver
        };
        waiting.await.ok()
    }

    /// Hands the permit to the first caller of the next address in turn (a
    /// caller who gave up is skipped), or keeps it free.
    fn release(self: &Arc<Self>) {
        loop {
            let next = {
                let mut state = self.lock();
                let Some((address, mut callers)) = state.turns.pop_front() else {
                    state.free += 1;
                    return;
                };
                let next = callers.pop_front();
                if !callers.is_empty() {
                    state.turns.push_back((address, callers));
                }
                next
            };
            let Some(next) = next else { continue };
            let permit = Permit {
                queue: self.clone(),
                held: true,
            };
            match next.send(permit) {
                Ok(()) => return,
                // The caller timed out: the place goes to the next one
                // (this loop), not through the permit's Drop.
                Err(mut unsent) => unsent.held = false,
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_flooding_address_waits_behind_its_own_requests() {
        let queue = FairQueue::new(1);
        let running = queue.acquire(Some("a")).await.unwrap();
        let order = Arc::new(Mutex::new(Vec::new()));
        let mut tasks = Vec::new();
        for i in 0..5 {
            let (queue, order) = (queue.clone(), order.clone());
            tasks.push(tokio::spawn(async move {
                let _permit = queue.acquire(Some("a")).await.unwrap();
                order.lock().unwrap().push(format!("a{i}"));
            }));
            tokio::task::yield_now().await;
        }
        let (q, o) = (queue.clone(), order.clone());
        tasks.push(tokio::spawn(async move {
            let _permit = q.acquire(Some("b")).await.unwrap();
            o.lock().unwrap().push("b".to_owned());
        }));
        tokio::task::yield_now().await;
        drop(running);
        for task in tasks {
            task.await.unwrap();
        }
        let order = order.lock().unwrap().clone();
        assert_eq!(order[..2], ["a0", "b"], "{order:?}");
    }

    #[tokio::test]
    async fn a_caller_that_gave_up_does_not_keep_the_permit() {
        let queue = FairQueue::new(1);
        let running = queue.acquire(None).await.unwrap();
        let gave_up = tokio::time::timeout(
            std::time::Duration::from_millis(10),
            queue.acquire(Some("x")),
        )
        .await;
        assert!(gave_up.is_err());
        drop(running);
        let again =
            tokio::time::timeout(std::time::Duration::from_secs(1), queue.acquire(Some("y"))).await;
        assert!(matches!(again, Ok(Some(_))));
    }
}
