//! An in-process OTLP/gRPC receiver: the collector `dialtone up` exports to in the test.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_server::{
    MetricsService, MetricsServiceServer,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value;
use tonic::{Request, Response, Status};

/// One exported span, as received.
#[derive(Debug, Clone)]
pub struct ReceivedSpan {
    pub name: String,
    pub trace_id: String,
    pub span_id: String,
    pub parent_span_id: String,
    /// The `call_id` attribute; empty when the span has none.
    pub call_id: String,
}

/// Every span received so far.
#[derive(Debug, Clone, Default)]
pub struct Received(Arc<Mutex<Vec<ReceivedSpan>>>);

impl Received {
    pub fn spans(&self) -> Vec<ReceivedSpan> {
        self.0.lock().expect("span list").clone()
    }
}

#[tonic::async_trait]
impl TraceService for Received {
    async fn export(
        &self,
        request: Request<ExportTraceServiceRequest>,
    ) -> Result<Response<ExportTraceServiceResponse>, Status> {
        let mut out = Vec::new();
        for rs in request.into_inner().resource_spans {
            for ss in rs.scope_spans {
                for span in ss.spans {
                    let call_id = span
                        .attributes
                        .iter()
                        .find(|kv| kv.key == "call_id")
                        .and_then(|kv| kv.value.as_ref())
                        .and_then(|v| match &v.value {
                            Some(any_value::Value::StringValue(s)) => Some(s.clone()),
                            _ => None,
                        })
                        .unwrap_or_default();
                    out.push(ReceivedSpan {
                        call_id,
                        name: span.name,
                        trace_id: hex(&span.trace_id),
                        span_id: hex(&span.span_id),
                        parent_span_id: hex(&span.parent_span_id),
                    });
                }
            }
        }
        self.0.lock().expect("span list").extend(out);
        Ok(Response::new(ExportTraceServiceResponse::default()))
    }
}

/// Metrics are exported to the same endpoint; accepted and dropped (the test reads
/// `/metrics`).
struct Discard;

#[tonic::async_trait]
impl MetricsService for Discard {
    async fn export(
        &self,
        _request: Request<ExportMetricsServiceRequest>,
    ) -> Result<Response<ExportMetricsServiceResponse>, Status> {
        Ok(Response::new(ExportMetricsServiceResponse::default()))
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Starts the receiver on a free loopback port.
pub async fn start() -> (SocketAddr, Received) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind the OTLP receiver");
    let addr = listener.local_addr().expect("receiver address");
    let received = Received::default();
    let service = TraceServiceServer::new(received.clone());
    tokio::spawn(async move {
        let _ = tonic::transport::Server::builder()
            .add_service(service)
            .add_service(MetricsServiceServer::new(Discard))
            .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener))
            .await;
    });
    (addr, received)
}
