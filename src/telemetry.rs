//! Tracing setup. Logs go to stderr; the filter comes from `PORTCULLIS_LOG`
//! (or `RUST_LOG`), default `info`; JSON lines for `serve`, text otherwise.
//! With an OTLP endpoint (`OTEL_EXPORTER_OTLP_ENDPOINT`), spans are also exported with
//! OpenTelemetry (OTLP over gRPC): one per RPC, with children for the pool
//! wait, each database statement and password hashing.

use std::io::IsTerminal;

use opentelemetry::KeyValue;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::Layer;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

static EXPORTING: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Whether spans leave the process: per-statement spans are made only then.
pub fn exporting_spans() -> bool {
    EXPORTING.load(std::sync::atomic::Ordering::Relaxed)
}

/// How log lines look.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// One JSON object per line: for production.
    Json,
    /// Human-readable: for a terminal.
    Text,
}

/// Keeps the exporter alive; flushes what is buffered when dropped.
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

/// How long the last flush may wait for the collector: a collector that
/// hangs must not hold a stopping process (the exporter's own timeout is
/// 10 s, and the batch processor ignores a shutdown timeout).
const FLUSH_ON_EXIT: std::time::Duration = std::time::Duration::from_millis(300);

impl Drop for Telemetry {
    fn drop(&mut self) {
        let Some(provider) = self.provider.take() else {
            return;
        };
        // On a thread of its own, so the wait can be cut; a flush still
        // running when the process exits is abandoned with it.
        let (done, flushed) = std::sync::mpsc::channel();
        let flushing = std::thread::Builder::new()
            .name("trace-flush".into())
            .spawn(move || {
                let _ = done.send(provider.shutdown());
            });
        let outcome = match flushing {
            Ok(_) => flushed.recv_timeout(FLUSH_ON_EXIT),
            Err(_) => return,
        };
        match outcome {
            Ok(Ok(())) => {}
            Ok(Err(error)) => tracing::warn!(%error, "traces not flushed on exit"),
            Err(_) => {
                tracing::warn!(wait = ?FLUSH_ON_EXIT, "the trace collector did not answer; traces not flushed on exit")
            }
        }
    }
}

/// A tracer provider exporting to `endpoint` (OTLP/gRPC), sampling
/// `sample_ratio` of new traces and following the caller's decision for
/// traces that arrive with a parent. Must be called inside the runtime.
pub fn tracer_provider(
    endpoint: &str,
    sample_ratio: f64,
    environment: &str,
) -> Result<SdkTracerProvider, String> {
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_tonic()
        .with_endpoint(endpoint)
        .build()
        .map_err(|e| e.to_string())?;
    let processor =
        opentelemetry_sdk::trace::span_processor_with_async_runtime::BatchSpanProcessor::builder(
            exporter,
            opentelemetry_sdk::runtime::Tokio,
        )
        .build();
    let resource = Resource::builder()
        .with_service_name("portcullis")
        .with_attributes([
            KeyValue::new("service.version", env!("CARGO_PKG_VERSION")),
            KeyValue::new("deployment.environment", environment.to_owned()),
        ])
        .build();
    Ok(SdkTracerProvider::builder()
        .with_span_processor(processor)
        .with_sampler(Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(
            sample_ratio,
        ))))
        .with_resource(resource)
        .build())
}

/// The layer that turns `tracing` spans into OpenTelemetry spans.
pub fn otel_layer<S>(provider: &SdkTracerProvider) -> impl Layer<S> + use<S>
where
    S: tracing::Subscriber + for<'span> tracing_subscriber::registry::LookupSpan<'span>,
{
    EXPORTING.store(true, std::sync::atomic::Ordering::Relaxed);
    // Only our own spans: library internals, the exporter's HTTP/2 client
    // among them, would otherwise feed spans back into the exporter.
    let ours =
        tracing_subscriber::filter::Targets::new().with_target("portcullis", tracing::Level::TRACE);
    tracing_opentelemetry::layer()
        .with_tracer(provider.tracer("portcullis"))
        .with_filter(ours)
}

/// Where logs and traces go.
pub struct TelemetrySettings {
    pub format: LogFormat,
    /// OTLP/gRPC collector; no export without one.
    pub otlp_endpoint: Option<String>,
    pub sample_ratio: f64,
    /// `deployment.environment` on exported traces.
    pub environment: String,
}

/// Installs the global subscriber. Fails when the exporter cannot be built,
/// so a deployment never runs believing it exports when it does not.
pub fn init(settings: &TelemetrySettings) -> Result<Telemetry, String> {
    let filter = std::env::var("PORTCULLIS_LOG")
        .or_else(|_| std::env::var("RUST_LOG"))
        .unwrap_or_else(|_| "info".to_owned());
    let provider = match settings.otlp_endpoint.as_deref() {
        Some(endpoint) if !endpoint.is_empty() => Some(
            tracer_provider(endpoint, settings.sample_ratio, &settings.environment)
                .map_err(|e| format!("OTLP endpoint {endpoint:?}: {e}"))?,
        ),
        _ => None,
    };
    let fmt = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let fmt = match settings.format {
        // JSON lines carry no span fields, so this layer is shown events
        // only: otherwise it would format every span's fields on creation
        // and on each `record` for nothing (4 % of a check's CPU).
        LogFormat::Json => fmt
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .with_filter(tracing_subscriber::filter::filter_fn(|metadata| {
                metadata.is_event()
            }))
            .boxed(),
        LogFormat::Text => fmt
            .with_ansi(std::io::stderr().is_terminal())
            .with_target(false)
            .boxed(),
    };
    let otel = provider.as_ref().map(otel_layer);
    let _ = tracing_subscriber::registry()
        .with(EnvFilter::new(filter))
        .with(fmt)
        .with(otel)
        .try_init();
    Ok(Telemetry { provider })
}

/// The caller's trace, from W3C `traceparent`/`tracestate` request headers
/// (an empty context when absent or malformed: the RPC starts a new trace).
pub fn caller_context(headers: &http::HeaderMap) -> opentelemetry::Context {
    use opentelemetry::propagation::TextMapPropagator;
    opentelemetry_sdk::propagation::TraceContextPropagator::new().extract(&HeaderExtractor(headers))
}

struct HeaderExtractor<'a>(&'a http::HeaderMap);

impl opentelemetry::propagation::Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(|k| k.as_str()).collect()
    }
}
