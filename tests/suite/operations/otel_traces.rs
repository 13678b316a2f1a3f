//! With an OTLP endpoint configured, every RPC becomes a span in the
//! caller's trace, with children for the pool wait and each statement.

use std::sync::{Arc, Mutex};

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::trace::v1::Span;
use tonic::metadata::MetadataValue;
use tracing_subscriber::layer::SubscriberExt;

use crate::support::TestDb;
use crate::support::server::TestServer;
use crate::support::services::create_service;

/// An in-process OTLP collector that keeps what it receives.
#[derive(Clone, Default)]
pub(crate) struct Collector(pub(crate) Arc<Mutex<Vec<Span>>>);

impl Collector {
    /// Serves OTLP on a port of its own, on the calling runtime.
    pub(crate) async fn serve(&self) -> std::net::SocketAddr {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(TraceServiceServer::new(self.clone()))
                .serve_with_incoming(incoming),
        );
        addr
    }
}

#[tonic::async_trait]
impl TraceService for Collector {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let spans = request
            .into_inner()
            .resource_spans
            .into_iter()
            .flat_map(|r| r.scope_spans)
            .flat_map(|s| s.spans);
        self.0.lock().unwrap().extend(spans);
        Ok(tonic::Response::new(ExportTraceServiceResponse {
            partial_success: None,
        }))
    }
}

pub(crate) fn attribute(span: &Span, key: &str) -> Option<String> {
    span.attributes
        .iter()
        .find(|a| a.key == key)
        .and_then(|a| a.value.as_ref()?.value.as_ref())
        .map(|v| match v {
            Value::StringValue(s) => s.clone(),
            Value::IntValue(i) => i.to_string(),
            other => format!("{other:?}"),
        })
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

const TRACE_ID: &str = "0af7651916cd43dd8448eb211c80319c";
const CALLER_SPAN_ID: &str = "b7ad6b7169203331";

#[test]
fn rpc_spans_join_the_callers_trace_with_database_children() {
    let _alone = crate::support::SCOPED_SUBSCRIBER
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let setup = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let test = setup.block_on(TestDb::new());
    let service = setup.block_on(create_service(&test.db(), None, &[]));
    let collector = Collector::default();
    let collector_addr = setup.block_on(collector.serve());

    // Server and client share this one thread, so a thread-local
    // subscriber sees the server's spans.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let provider = portcullis::telemetry::tracer_provider(
            &format!("http://{collector_addr}"),
            1.0,
            "test",
        )
        .unwrap();
        let subscriber =
            tracing_subscriber::registry().with(portcullis::telemetry::otel_layer(&provider));
        let _default = tracing::subscriber::set_default(subscriber);
        // Callsites other tests' threads registered meanwhile (with no
        // subscriber of theirs) must be asked again now this one exists.
        tracing::callsite::rebuild_interest_cache();
        let server = TestServer::start(test.db()).await;
        let mut request =
            tonic::Request::new(portcullis::proto::v1::ExchangeServiceCredentialRequest {
                service_key: service.key.as_str().into(),
                secret: service.secret.clone(),
                requested_permissions: vec![],
            });
        request.metadata_mut().insert(
            "traceparent",
            MetadataValue::try_from(format!("00-{TRACE_ID}-{CALLER_SPAN_ID}-01")).unwrap(),
        );
        portcullis::proto::v1::service_credentials_client::ServiceCredentialsClient::new(
            server.channel().await,
        )
        .exchange_service_credential(request)
        .await
        .unwrap();
        // Flushing and shutting down block until the exporter, a task on
        // this runtime, is done: so they happen while the runtime runs.
        tokio::task::spawn_blocking(move || {
            provider.force_flush().unwrap();
            provider.shutdown().unwrap();
        })
        .await
        .unwrap();
    });

    let spans = collector.0.lock().unwrap().clone();
    let in_trace: Vec<&Span> = spans
        .iter()
        .filter(|s| hex(&s.trace_id) == TRACE_ID)
        .collect();
    let rpc = in_trace
        .iter()
        .find(|s| s.name.ends_with("/ExchangeServiceCredential"))
        .unwrap_or_else(|| panic!("no RPC span in the caller's trace: {spans:#?}"));
    assert_eq!(hex(&rpc.parent_span_id), CALLER_SPAN_ID);
    assert_eq!(attribute(rpc, "rpc.grpc.status_code").as_deref(), Some("0"));
    let children = |name: &str| {
        in_trace
            .iter()
            .filter(|s| s.name == name && s.parent_span_id == rpc.span_id)
            .count()
    };
    assert_eq!(children("db.pool_wait"), 1);
    let statements: Vec<String> = in_trace
        .iter()
        .filter(|s| s.name == "db.statement")
        .filter_map(|s| attribute(s, "db.statement"))
        .collect();
    assert!(
        !statements.is_empty(),
        "no statement spans in the trace: {spans:#?}"
    );
    assert!(
        statements.iter().all(|sql| !sql.contains(&service.secret)),
        "a statement span carries the secret: {statements:#?}"
    );
}
