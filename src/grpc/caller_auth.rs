//! Tower layer that authenticates the caller of every RPC against
//! [`super::access`] before the handler runs, and hands the handler the
//! caller as a request extension ([`crate::tokens::Principal`]).

use std::sync::Arc;
use std::task::{Context, Poll};

use futures_util::future::{Either, Ready, ready};
use tower::{Layer, Service};

use super::access;
use super::rpc_log::CallerSlot;
use crate::tokens::Tokens;

#[derive(Clone)]
pub struct CallerAuthLayer {
    tokens: Arc<Tokens>,
}

impl CallerAuthLayer {
    pub fn new(tokens: Arc<Tokens>) -> Self {
        Self { tokens }
    }
}

impl<S> Layer<S> for CallerAuthLayer {
    type Service = CallerAuth<S>;

    fn layer(&self, inner: S) -> Self::Service {
        CallerAuth {
            inner,
            tokens: self.tokens.clone(),
        }
    }
}

#[derive(Clone)]
pub struct CallerAuth<S> {
    inner: S,
    tokens: Arc<Tokens>,
}

impl<S, ReqBody, ResBody> Service<http::Request<ReqBody>> for CallerAuth<S>
where
    S: Service<http::Request<ReqBody>, Response = http::Response<ResBody>>,
    ResBody: Default,
{
    type Response = http::Response<ResBody>;
    type Error = S::Error;
    type Future = Either<S::Future, Ready<Result<Self::Response, S::Error>>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<ReqBody>) -> Self::Future {
        let authorization = request
            .headers()
            .get(http::header::AUTHORIZATION)
            .map(|value| value.to_str().unwrap_or_default());
        match access::authorize(
            &self.tokens,
            request.uri().path(),
            authorization,
            chrono::Utc::now(),
        ) {
            Ok(principal) => {
                if let Some(principal) = principal {
                    if let Some(slot) = request.extensions().get::<CallerSlot>() {
                        let (kind, id) = principal.actor();
                        let _ = slot.0.set(format!("{kind}:{id}"));
                    }
                    request.extensions_mut().insert(principal);
                }
                Either::Left(self.inner.call(request))
            }
            Err(status) => Either::Right(ready(Ok(status.into_http()))),
        }
    }
}
