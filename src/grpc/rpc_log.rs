//! One log line per RPC: method, gRPC status, duration, request id and
//! caller. Outermost of our layers, so refusals by the authentication layer
//! are logged too; that layer reports the caller through a slot in the
//! request's extensions.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::Instant;

use tower::{Layer, Service};

use super::request::REQUEST_ID_HEADER;

/// Where the authentication layer writes who is calling (never a token).
#[derive(Clone, Default)]
pub struct CallerSlot(pub Arc<OnceLock<String>>);

#[derive(Clone, Copy, Default)]
pub struct RpcLogLayer;

impl<S> Layer<S> for RpcLogLayer {
    type Service = RpcLog<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RpcLog { inner }
    }
}

#[derive(Clone)]
pub struct RpcLog<S> {
    inner: S,
}

impl<S, ReqBody, ResBody> Service<http::Request<ReqBody>> for RpcLog<S>
where
    S: Service<http::Request<ReqBody>, Response = http::Response<ResBody>>,
    S::Future: Send + 'static,
    S::Error: std::fmt::Display,
{
    type Response = http::Response<ResBody>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<ReqBody>) -> Self::Future {
        let method = request.uri().path().to_owned();
        let request_id = request
            .headers()
            .get(REQUEST_ID_HEADER)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let caller = CallerSlot::default();
        request.extensions_mut().insert(caller.clone());
        let started = Instant::now();
        let response = self.inner.call(request);
        Box::pin(async move {
            let result = response.await;
            let duration_ms = started.elapsed().as_secs_f64() * 1000.0;
            let caller = caller.0.get().map_or("-", String::as_str);
            let span = tracing::Span::current();
            span.record("caller", caller);
            match &result {
                Ok(response) => {
                    // Errors travel in the headers of a trailers-only
                    // response; a success's status is in the trailers.
                    let code = response
                        .headers()
                        .get("grpc-status")
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.parse::<i32>().ok())
                        .map_or(tonic::Code::Ok, tonic::Code::from_i32);
                    span.record("rpc.grpc.status_code", code as i64);
                    tracing::info!(target: "portcullis::rpc", %method, code = ?code, duration_ms, %request_id, %caller, "rpc");
                    let label = super::access::metric_method(&method).to_owned();
                    let labels = [("method", label.clone()), ("code", format!("{code:?}"))];
                    metrics::counter!("portcullis_rpc_requests_total", &labels).increment(1);
                    metrics::histogram!("portcullis_rpc_duration_seconds", "method" => label)
                        .record(duration_ms / 1000.0);
                }
                Err(error) => {
                    tracing::warn!(target: "portcullis::rpc", %method, %error, duration_ms, %request_id, %caller, "rpc failed");
                }
            }
            result
        })
    }
}
