//! The tower layer every edge (gRPC and HTTP) runs a request through: it
//! reads the request's consistency headers, runs the request in its
//! [scope](super::scope), and answers with what the request observed: the
//! token of its writes or of the point its reads reflect, the staleness
//! bound of a replica's answer, and who answered.

// The layer is an edge: it reads the clock, as the gRPC and HTTP ones do.
#![allow(clippy::disallowed_methods)]

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use http::{HeaderMap, HeaderValue};
use tower::{Layer, Service};

use super::scope::{self, Observed};
use super::{ConsistencyError, Requirement, Stated, headers, token};
use crate::db::Db;
use crate::tokens::Tokens;

/// How an edge refuses a request whose consistency headers are bad.
pub trait Reject<B>: Clone {
    fn reject(&self, error: ConsistencyError) -> http::Response<B>;
}

#[derive(Clone)]
pub struct ConsistencyLayer<R> {
    tokens: Arc<Tokens>,
    /// Places transactions' tokens; its default requirement is that of
    /// requests that state none.
    db: Db,
    reject: R,
}

impl<R> ConsistencyLayer<R> {
    pub fn new(tokens: Arc<Tokens>, db: Db, reject: R) -> Self {
        Self { tokens, db, reject }
    }
}

impl<S, R: Clone> Layer<S> for ConsistencyLayer<R> {
    type Service = Consistency<S, R>;

    fn layer(&self, inner: S) -> Self::Service {
        Consistency {
            inner,
            layer: self.clone(),
        }
    }
}

#[derive(Clone)]
pub struct Consistency<S, R> {
    inner: S,
    layer: ConsistencyLayer<R>,
}

impl<S, R, ReqBody, ResBody> Service<http::Request<ReqBody>> for Consistency<S, R>
where
    S: Service<http::Request<ReqBody>, Response = http::Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    R: Reject<ResBody> + Send + 'static,
    ReqBody: Send + 'static,
    ResBody: Send + 'static,
{
    type Response = http::Response<ResBody>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<ReqBody>) -> Self::Future {
        let stated = match requirement_of(request.headers(), &self.layer) {
            Ok(stated) => stated,
            Err(error) => {
                let refusal = self.layer.reject.reject(error);
                return Box::pin(std::future::ready(Ok(refusal)));
            }
        };
        let tokens = self.layer.tokens.clone();
        if stated.transactions.is_empty() {
            let work = self.inner.call(request);
            return Box::pin(answer(stated.requirement, work, tokens));
        }
        // A transaction's token is placed by the database first; the ready
        // service is taken for the call, a clone left in its place.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let (db, reject) = (self.layer.db.clone(), self.layer.reject.clone());
        Box::pin(async move {
            match super::resolve(stated, &db).await {
                Ok(requirement) => answer(requirement, inner.call(request), tokens).await,
                Err(error) => Ok(reject.reject(error)),
            }
        })
    }
}

/// Runs `work` as a request with `requirement` and tells what it observed.
async fn answer<B, E>(
    requirement: Requirement,
    work: impl Future<Output = Result<http::Response<B>, E>>,
    tokens: Arc<Tokens>,
) -> Result<http::Response<B>, E> {
    let (result, mut observed) = scope::run(requirement, work).await;
    result.map(|mut response| {
        annotate(response.headers_mut(), &mut observed, &tokens);
        response
    })
}

fn requirement_of<R>(
    headers: &HeaderMap,
    layer: &ConsistencyLayer<R>,
) -> Result<Stated, ConsistencyError> {
    let text = |name: &'static str| -> Result<Option<&str>, ConsistencyError> {
        headers
            .get(name)
            .map(|value| {
                value.to_str().map_err(|_| ConsistencyError {
                    field: name,
                    problem: "not visible ASCII".into(),
                })
            })
            .transpose()
    };
    Requirement::from_headers(
        text(headers::CONSISTENCY)?,
        text(headers::TOKEN)?,
        layer.db.default_consistency(),
        layer.tokens.keys(),
        chrono::Utc::now(),
    )
}

/// The response headers for what a request observed.
pub fn annotate(headers: &mut HeaderMap, observed: &mut Observed, tokens: &Tokens) {
    if let Some(value) = observed
        .token(|lsn| token::encode(tokens.keys(), lsn, chrono::Utc::now()))
        .and_then(|t| HeaderValue::from_str(&t).ok())
    {
        headers.insert(headers::TOKEN, value);
    }
    let Some(read) = observed.read.as_ref() else {
        return;
    };
    if let Ok(value) = HeaderValue::from_str(&read.served_by) {
        headers.insert(headers::SERVED_BY, value);
    }
    if let Some(since) = read.fresh_as_of {
        let millis = Instant::now().saturating_duration_since(since).as_millis();
        if let Ok(value) = HeaderValue::from_str(&format!("{millis}ms")) {
            headers.insert(headers::STALENESS, value);
        }
    }
}
