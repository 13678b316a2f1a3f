//! What every HTTP listener shares with the gRPC port: a request id (the
//! caller's `x-request-id`, else a new one) echoed in the answer, a span
//! joined to the caller's W3C trace context (`traceparent`), one log line
//! per request, and the in-flight count a shutdown waits for. A handler
//! that decides puts a [`Decided`] in its response's extensions; the log
//! line and the span then carry the outcome and the reason.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use tower::{Layer, Service};
use tower_http::metrics::InFlightRequestsLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tracing::Instrument;

use crate::consistency::ConsistencyError;
use crate::consistency::layer::{ConsistencyLayer, Reject};

/// The header carrying the request id, on every listener.
const REQUEST_ID: http::HeaderName = http::HeaderName::from_static("x-request-id");

/// What a handler decided, for the request's log line and span.
#[derive(Clone, Debug)]
pub struct Decided {
    pub outcome: &'static str,
    pub reason: String,
    /// Who asked (a service's key, a user's id), never a credential.
    pub caller: Option<String>,
}

/// `routes` with the edge's layers, outermost first: the in-flight count,
/// the request id set and echoed, the span and the log line, then the
/// request's consistency (its requirement read, its answer's point told).
pub fn layered(
    routes: axum::Router,
    edge: &'static str,
    in_flight: InFlightRequestsLayer,
    consistency: ConsistencyLayer<BadRequest>,
) -> axum::Router {
    routes
        .layer(consistency)
        .layer(HttpLogLayer { edge })
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
        .layer(in_flight)
}

/// A consistency header the edge cannot honour: `400 Bad Request` naming it.
#[derive(Clone, Copy)]
pub struct BadRequest;

impl Reject<axum::body::Body> for BadRequest {
    fn reject(&self, error: ConsistencyError) -> http::Response<axum::body::Body> {
        let body = serde_json::json!({ "error": error.to_string(), "field": error.field });
        let mut response = http::Response::new(axum::body::Body::from(body.to_string()));
        *response.status_mut() = http::StatusCode::BAD_REQUEST;
        response.headers_mut().insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/json"),
        );
        response
    }
}

#[derive(Clone, Copy)]
struct HttpLogLayer {
    edge: &'static str,
}

impl<S> Layer<S> for HttpLogLayer {
    type Service = HttpLog<S>;

    fn layer(&self, inner: S) -> Self::Service {
        HttpLog {
            inner,
            edge: self.edge,
        }
    }
}

#[derive(Clone)]
struct HttpLog<S> {
    inner: S,
    edge: &'static str,
}

impl<S, ReqBody, ResBody> Service<http::Request<ReqBody>> for HttpLog<S>
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

    fn call(&mut self, request: http::Request<ReqBody>) -> Self::Future {
        use tracing_opentelemetry::OpenTelemetrySpanExt;
        let edge = self.edge;
        let method = request.method().as_str().to_owned();
        let path = request.uri().path().to_owned();
        let request_id = request
            .headers()
            .get(REQUEST_ID)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let span = tracing::info_span!(
            "http",
            otel.name = %format!("{method} {edge}"),
            otel.kind = "server",
            edge,
            http.request.method = %method,
            url.path = %path,
            http.response.status_code = tracing::field::Empty,
            decision = tracing::field::Empty,
            reason = tracing::field::Empty,
            caller = tracing::field::Empty,
            request_id = %request_id,
        );
        let _ = span.set_parent(crate::telemetry::caller_context(request.headers()));
        let started = Instant::now();
        let response = self.inner.call(request).instrument(span.clone());
        Box::pin(async move {
            let result = response.await;
            let duration_ms = started.elapsed().as_secs_f64() * 1000.0;
            // The line is logged inside the request's span.
            span.in_scope(|| {
                match &result {
                    Ok(response) => {
                        let status = response.status().as_u16();
                        let decided = response.extensions().get::<Decided>();
                        let (outcome, reason, caller) = decided.map_or(("-", "-", "-"), |d| {
                            (
                                d.outcome,
                                d.reason.as_str(),
                                d.caller.as_deref().unwrap_or("-"),
                            )
                        });
                        span.record("http.response.status_code", i64::from(status));
                        if decided.is_some() {
                            span.record("decision", outcome);
                            span.record("reason", reason);
                            span.record("caller", caller);
                        }
                        tracing::info!(target: "portcullis::http", edge, %method, %path, status, outcome, reason, duration_ms, %request_id, %caller, "request");
                    }
                    Err(error) => {
                        tracing::warn!(target: "portcullis::http", edge, %method, %path, %error, duration_ms, %request_id, "request failed");
                    }
                }
            });
            result
        })
    }
}
