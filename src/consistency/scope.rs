//! One request's consistency: its requirement, and what its writes and
//! reads observed, shared between the edge that parsed the request and the
//! database door that routes its reads (a task-local: the domain code in
//! between never handles it).

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use super::{Lsn, Requirement};

tokio::task_local! {
    static REQUEST: Arc<RequestConsistency>;
}

struct RequestConsistency {
    requirement: Mutex<Requirement>,
    observed: Mutex<Observed>,
}

/// What the request's database work observed.
#[derive(Clone, Debug, Default)]
pub struct Observed {
    /// The latest point any of its committed writes reached.
    pub written: Option<Lsn>,
    /// Its stalest read, if it read.
    pub read: Option<ReadAt>,
    /// The token last encoded for [`Observed::point`], and that point: a
    /// handler that puts the token in its body and the edge that puts it
    /// in a header share one MAC.
    encoded: Option<(Lsn, String)>,
}

impl Observed {
    /// The point the request's answer reflects: its writes' if it wrote,
    /// else what its reads were at least as fresh as.
    pub fn point(&self) -> Option<Lsn> {
        self.written.or(self.read.as_ref().and_then(|r| r.at))
    }

    /// The token of [`Observed::point`], made by `encode` unless the same
    /// point was encoded already.
    pub fn token(&mut self, encode: impl FnOnce(Lsn) -> Option<String>) -> Option<String> {
        let point = self.point()?;
        match &self.encoded {
            Some((encoded, token)) if *encoded == point => Some(token.clone()),
            _ => {
                let token = encode(point)?;
                self.encoded = Some((point, token.clone()));
                Some(token)
            }
        }
    }
}

/// The current request's token so far ([`Observed::token`]): for a handler
/// that puts it in its answer's body too.
pub fn token(encode: impl FnOnce(Lsn) -> Option<String>) -> Option<String> {
    REQUEST
        .try_with(|r| lock(&r.observed).token(encode))
        .ok()
        .flatten()
}

/// Where a read was answered and how fresh it was.
#[derive(Clone, Debug)]
pub struct ReadAt {
    /// `primary`, or the replica's name.
    pub served_by: Arc<str>,
    /// A point the answer is at least as fresh as, when one is known.
    pub at: Option<Lsn>,
    /// For a replica: the moment whose primary state it had replayed; the
    /// staleness bound is the time since.
    pub fresh_as_of: Option<Instant>,
}

impl ReadAt {
    /// Which of two reads of a request is the stalest.
    fn stalest(self, other: Self) -> Self {
        match (self.fresh_as_of, other.fresh_as_of) {
            (Some(a), Some(b)) if b < a => other,
            (None, Some(_)) => other,
            (a, b) if a == b && other.at < self.at => other,
            _ => self,
        }
    }
}

/// Runs `work` as one request with `requirement`; returns what it observed.
pub async fn run<F: Future>(requirement: Requirement, work: F) -> (F::Output, Observed) {
    let request = Arc::new(RequestConsistency {
        requirement: Mutex::new(requirement),
        observed: Mutex::new(Observed::default()),
    });
    let output = REQUEST.scope(request.clone(), work).await;
    let observed = lock(&request.observed).clone();
    (output, observed)
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Nothing panics while holding these locks; recover all the same.
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The current request's requirement; `None` outside a request (the
/// server's own background work, which reads the primary).
pub fn requirement() -> Option<Requirement> {
    REQUEST.try_with(|r| *lock(&r.requirement)).ok()
}

/// Adds `more` to the current request's requirement: for an edge that
/// learns it from the request's body (Envoy's attributes, say).
pub fn require(more: Requirement) {
    let _ = REQUEST.try_with(|r| {
        let mut requirement = lock(&r.requirement);
        *requirement = requirement.and(more);
    });
}

/// Whether a request is listening for what its writes reach.
pub fn in_request() -> bool {
    REQUEST.try_with(|_| ()).is_ok()
}

pub fn record_write(lsn: Lsn) {
    let _ = REQUEST.try_with(|r| {
        let mut observed = lock(&r.observed);
        observed.written = observed.written.max(Some(lsn));
    });
}

pub fn record_read(read: ReadAt) {
    let _ = REQUEST.try_with(|r| {
        let mut observed = lock(&r.observed);
        observed.read = Some(match observed.read.take() {
            Some(earlier) => earlier.stalest(read),
            None => read,
        });
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_request_reports_its_latest_write_and_stalest_read() {
        let now = Instant::now();
        let earlier = now - std::time::Duration::from_millis(50);
        let (_, observed) = run(Requirement::default(), async {
            record_write(Lsn(10));
            record_write(Lsn(5));
            record_read(ReadAt {
                served_by: "replica-1".into(),
                at: Some(Lsn(8)),
                fresh_as_of: Some(now),
            });
            record_read(ReadAt {
                served_by: "replica-2".into(),
                at: Some(Lsn(7)),
                fresh_as_of: Some(earlier),
            });
        })
        .await;
        assert_eq!(observed.written, Some(Lsn(10)));
        assert_eq!(observed.read.map(|r| r.served_by), Some("replica-2".into()));
    }

    #[test]
    fn a_point_is_encoded_once_for_body_and_header() {
        let mut observed = Observed {
            written: Some(Lsn(3)),
            ..Observed::default()
        };
        let mut encodings = 0;
        for _ in 0..2 {
            let token = observed.token(|_| {
                encodings += 1;
                Some("t".into())
            });
            assert_eq!(token.as_deref(), Some("t"));
        }
        assert_eq!(encodings, 1);
    }

    #[tokio::test]
    async fn outside_a_request_nothing_is_required_or_recorded() {
        assert_eq!(requirement(), None);
        assert!(!in_request());
        record_write(Lsn(1));
    }
}
