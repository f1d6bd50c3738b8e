//! A real OTLP/gRPC receiver for the harness: the collector's
//! `TraceService` (generated from the OpenTelemetry protocol definitions by
//! `opentelemetry-proto`), served by tonic, that keeps every span it is
//! sent, with the resource it came from, for tests to read.
//!
//! It runs on a runtime of its own; dropping it stops that runtime and
//! frees its port.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use tokio::net::TcpListener;

/// OTLP's span kinds (`opentelemetry.proto.trace.v1.Span.SpanKind`).
pub const SPAN_KIND_SERVER: i32 = 2;
/// A client span.
pub const SPAN_KIND_CLIENT: i32 = 3;

/// One span as received.
#[derive(Debug, Clone, PartialEq)]
pub struct ReceivedSpan {
    /// Lowercase hex, 32 digits.
    pub trace_id: String,
    /// Lowercase hex, 16 digits.
    pub span_id: String,
    /// Lowercase hex, or empty for a root span.
    pub parent_span_id: String,
    /// The span's name.
    pub name: String,
    /// [`SPAN_KIND_SERVER`], [`SPAN_KIND_CLIENT`], …
    pub kind: i32,
    /// The span's attributes, values as text.
    pub attributes: BTreeMap<String, String>,
    /// The resource's attributes (which process sent it), values as text.
    pub resource: BTreeMap<String, String>,
}

/// The receiver.
#[derive(Debug)]
pub struct OtlpReceiver {
    addr: SocketAddr,
    spans: Arc<Mutex<Vec<ReceivedSpan>>>,
    runtime: Option<tokio::runtime::Runtime>,
}

/// The service: appends what each export carries.
#[derive(Debug, Clone)]
struct Collector {
    spans: Arc<Mutex<Vec<ReceivedSpan>>>,
}

#[tonic::async_trait]
impl TraceService for Collector {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let mut got = Vec::new();
        for resource_spans in request.into_inner().resource_spans {
            let resource = resource_spans
                .resource
                .map(|r| texts(&r.attributes))
                .unwrap_or_default();
            for scope in resource_spans.scope_spans {
                for span in scope.spans {
                    got.push(ReceivedSpan {
                        trace_id: hex(&span.trace_id),
                        span_id: hex(&span.span_id),
                        parent_span_id: hex(&span.parent_span_id),
                        name: span.name,
                        kind: span.kind,
                        attributes: texts(&span.attributes),
                        resource: resource.clone(),
                    });
                }
            }
        }
        self.spans
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend(got);
        Ok(tonic::Response::new(ExportTraceServiceResponse {
            partial_success: None,
        }))
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn texts(attributes: &[KeyValue]) -> BTreeMap<String, String> {
    attributes
        .iter()
        .map(|kv| {
            (
                kv.key.clone(),
                kv.value.as_ref().map_or_else(String::new, text),
            )
        })
        .collect()
}

fn text(value: &AnyValue) -> String {
    match &value.value {
        Some(any_value::Value::StringValue(s)) => s.clone(),
        Some(any_value::Value::IntValue(n)) => n.to_string(),
        Some(any_value::Value::BoolValue(b)) => b.to_string(),
        Some(any_value::Value::DoubleValue(x)) => x.to_string(),
        other => format!("{other:?}"),
    }
}

impl OtlpReceiver {
    /// Listens on `ip`, a port the system picks.
    ///
    /// # Panics
    /// When it cannot bind.
    pub fn start(ip: IpAddr) -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("a runtime for the OTLP receiver");
        let listener = runtime
            .block_on(TcpListener::bind((ip, 0)))
            .unwrap_or_else(|e| panic!("OTLP receiver bind {ip}: {e}"));
        let addr = listener.local_addr().expect("bound address");
        let spans = Arc::new(Mutex::new(Vec::new()));
        let service = TraceServiceServer::new(Collector {
            spans: spans.clone(),
        });
        runtime.spawn(async move {
            let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
            let served = tonic::transport::Server::builder()
                .add_service(service)
                .serve_with_incoming(incoming)
                .await;
            if let Err(e) = served {
                eprintln!("OTLP receiver stopped: {e}");
            }
        });
        Self {
            addr,
            spans,
            runtime: Some(runtime),
        }
    }

    /// What a gateway's `gateway.tracing.otlpEndpoint` says to reach it.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every span received so far.
    pub fn spans(&self) -> Vec<ReceivedSpan> {
        self.spans.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The spans of `trace_id` once there are at least `n`, polling until
    /// `timeout`; `Err` with what did arrive.
    ///
    /// # Errors
    /// When fewer than `n` arrived in time.
    pub fn wait_for_trace(
        &self,
        trace_id: &str,
        n: usize,
        timeout: Duration,
    ) -> Result<Vec<ReceivedSpan>, Vec<ReceivedSpan>> {
        let deadline = Instant::now() + timeout;
        loop {
            let of_trace: Vec<ReceivedSpan> = self
                .spans()
                .into_iter()
                .filter(|s| s.trace_id == trace_id)
                .collect();
            if of_trace.len() >= n {
                return Ok(of_trace);
            }
            if Instant::now() >= deadline {
                return Err(self.spans());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for OtlpReceiver {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}
