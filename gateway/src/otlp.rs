//! Span export over OTLP/gRPC (`gateway.tracing.otlpEndpoint`).
//!
//! Each HTTP request a gateway serves ends as one [`RequestSpan`] (the
//! client-side gateway's span, kind client; the peer ingress's, kind
//! server), with the ids of its [`HopTrace`], so the spans of both
//! gateways join the caller's trace as parent and child. [`SpanExport::record`]
//! only queues the span on a bounded channel and never waits: a full queue
//! drops the span and counts it (`fedmesh_gateway_observe_dropped_total{kind="span"}`).
//! One task takes spans off the queue in batches and sends them with
//! `opentelemetry-otlp`'s tonic exporter (plain-text HTTP/2 to a
//! collector), so a slow or absent collector never holds up a request.
//!
//! The ids are this gateway's own (chosen by [`crate::trace`]); the SDK's
//! tracer would choose its own, so spans are handed to the exporter as
//! finished [`SpanData`].

use std::borrow::Cow;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime};

use opentelemetry::trace::{SpanContext, SpanKind, Status, TraceFlags, TraceState};
use opentelemetry::{InstrumentationScope, KeyValue};
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::{SpanData, SpanEvents, SpanExporter as _, SpanLinks};
use tokio::sync::mpsc;
use tracing::{debug, warn};

use crate::metrics::Metrics;
use crate::trace::HopTrace;

/// Spans waiting for the exporter; past this they are dropped.
const QUEUE: usize = 4096;
/// The most spans sent in one export call.
const BATCH: usize = 512;
/// How long a batch waits to fill once its first span arrived.
const BATCH_DELAY: Duration = Duration::from_millis(200);
/// How long one export call may take.
const EXPORT_TIMEOUT: Duration = Duration::from_secs(5);

/// Why span export could not start.
#[derive(Debug, thiserror::Error)]
pub enum OtlpError {
    /// The exporter refused the endpoint or its settings.
    #[error("cannot set up OTLP export to {endpoint}: {source}")]
    Exporter {
        /// `gateway.tracing.otlpEndpoint`.
        endpoint: String,
        /// What the exporter said.
        #[source]
        source: opentelemetry_otlp::ExporterBuildError,
    },
}

/// Which gateway of a request a span is from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The client's cluster's gateway (egress).
    Client,
    /// The serving cluster's gateway (ingress).
    Server,
}

/// One request as a gateway saw it, ready to export.
#[derive(Debug, Clone)]
pub struct RequestSpan {
    /// Which gateway.
    pub side: Side,
    /// Ids and sampling.
    pub trace: HopTrace,
    /// When the request arrived.
    pub start: SystemTime,
    /// When its response was done.
    pub end: SystemTime,
    /// The service's namespace.
    pub namespace: String,
    /// The service's name.
    pub service: String,
    /// The service port.
    pub port: u16,
    /// The cluster that served it (`none` when none could).
    pub cluster: String,
    /// Client side: none; server side: the calling cluster.
    pub peer: Option<String>,
    /// The request method.
    pub method: String,
    /// The request path.
    pub path: String,
    /// The response status.
    pub status: u16,
    /// Targets tried (client side), when known.
    pub attempts: Option<u32>,
}

/// The queue to the exporter task.
#[derive(Debug)]
pub struct SpanExport {
    queue: mpsc::Sender<SpanData>,
    /// Spans queued and not yet sent (or given up on).
    pending: Arc<AtomicUsize>,
    metrics: Arc<Metrics>,
    scope: InstrumentationScope,
}

impl SpanExport {
    /// Starts the exporter task for `endpoint` (`http://HOST:PORT`); spans
    /// carry `resource` (which gateway of which cluster). Must run inside
    /// the Tokio runtime: the exporter's channel lives there.
    ///
    /// # Errors
    /// [`OtlpError`] when the exporter refuses the endpoint.
    pub fn start(
        endpoint: &str,
        resource: &Resource,
        metrics: Arc<Metrics>,
    ) -> Result<Self, OtlpError> {
        let mut exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_tonic()
            .with_endpoint(endpoint)
            .with_timeout(EXPORT_TIMEOUT)
            .build()
            .map_err(|source| OtlpError::Exporter {
                endpoint: endpoint.to_owned(),
                source,
            })?;
        exporter.set_resource(resource);
        let (queue, rx) = mpsc::channel(QUEUE);
        let pending = Arc::new(AtomicUsize::new(0));
        tokio::spawn(run(exporter, rx, pending.clone()));
        let scope = InstrumentationScope::builder("fedmesh-gateway")
            .with_version(env!("CARGO_PKG_VERSION"))
            .build();
        Ok(Self {
            queue,
            pending,
            metrics,
            scope,
        })
    }

    /// Queues `span` if its trace is sampled; never waits.
    pub fn record(&self, span: RequestSpan) {
        if !span.trace.sampled {
            return;
        }
        let data = span_data(span, self.scope.clone());
        self.pending.fetch_add(1, Ordering::Relaxed);
        if self.queue.try_send(data).is_err() {
            self.pending.fetch_sub(1, Ordering::Relaxed);
            self.metrics.observe_dropped("span");
        }
    }

    /// Spans queued and not yet sent.
    pub fn pending(&self) -> usize {
        self.pending.load(Ordering::Relaxed)
    }
}

/// The exporter task: batches from the queue until it closes (the
/// gateway's shutdown drops the sender), then returns once the last batch
/// went.
async fn run(
    exporter: opentelemetry_otlp::SpanExporter,
    mut rx: mpsc::Receiver<SpanData>,
    pending: Arc<AtomicUsize>,
) {
    let mut failing = false;
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        let deadline = tokio::time::Instant::now() + BATCH_DELAY;
        while batch.len() < BATCH {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some(span)) => batch.push(span),
                Ok(None) | Err(_) => break,
            }
        }
        let n = batch.len();
        let result = exporter.export(batch).await;
        pending.fetch_sub(n, Ordering::Relaxed);
        match result {
            Ok(()) => {
                if failing {
                    debug!("span export works again");
                }
                failing = false;
            }
            // One warning per outage, not one per batch.
            Err(error) if !failing => {
                warn!(%error, spans = n, "span export failed; spans are dropped until the collector answers");
                failing = true;
            }
            Err(error) => debug!(%error, spans = n, "span export still failing"),
        }
    }
}

/// The exporter's form of `span`.
fn span_data(span: RequestSpan, scope: InstrumentationScope) -> SpanData {
    let trace = &span.trace;
    let state = trace
        .tracestate
        .as_deref()
        .and_then(|s| s.parse::<TraceState>().ok())
        .unwrap_or(TraceState::NONE);
    let context = SpanContext::new(
        opentelemetry::TraceId::from_bytes(trace.trace_id.0),
        opentelemetry::SpanId::from_bytes(trace.span_id.0),
        TraceFlags::SAMPLED,
        false,
        state,
    );
    let parent = trace.parent_id.map_or(opentelemetry::SpanId::INVALID, |p| {
        opentelemetry::SpanId::from_bytes(p.0)
    });
    let (kind, side) = match span.side {
        Side::Client => (SpanKind::Client, "egress"),
        Side::Server => (SpanKind::Server, "ingress"),
    };
    let status = if span.status >= 500 {
        Status::error(format!("status {}", span.status))
    } else {
        Status::Unset
    };
    SpanData {
        span_context: context,
        parent_span_id: parent,
        parent_span_is_remote: trace.parent_id.is_some(),
        span_kind: kind,
        name: Cow::Owned(format!("{side} {}", span.method)),
        start_time: span.start,
        end_time: span.end,
        attributes: attributes(&span),
        dropped_attributes_count: 0,
        events: SpanEvents::default(),
        links: SpanLinks::default(),
        status,
        instrumentation_scope: scope,
    }
}

/// The span's attributes: OpenTelemetry's HTTP names where one exists,
/// `fedmesh.*` for the mesh's own.
fn attributes(span: &RequestSpan) -> Vec<KeyValue> {
    let mut kv = vec![
        KeyValue::new("fedmesh.namespace", span.namespace.clone()),
        KeyValue::new("fedmesh.service", span.service.clone()),
        KeyValue::new("fedmesh.port", i64::from(span.port)),
        KeyValue::new("fedmesh.cluster", span.cluster.clone()),
        KeyValue::new("http.request.method", span.method.clone()),
        KeyValue::new("url.path", span.path.clone()),
        KeyValue::new("http.response.status_code", i64::from(span.status)),
    ];
    if let Some(peer) = &span.peer {
        kv.push(KeyValue::new("fedmesh.peer_cluster", peer.clone()));
    }
    if let Some(attempts) = span.attempts {
        kv.push(KeyValue::new("fedmesh.attempts", i64::from(attempts)));
    }
    kv
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trace::{SpanId, TraceId};

    fn span(parent: Option<SpanId>, status: u16) -> RequestSpan {
        RequestSpan {
            side: Side::Client,
            trace: HopTrace {
                trace_id: TraceId([7; 16]),
                span_id: SpanId([8; 8]),
                parent_id: parent,
                sampled: true,
                tracestate: Some("a=1".into()),
            },
            start: SystemTime::UNIX_EPOCH,
            end: SystemTime::UNIX_EPOCH + Duration::from_millis(3),
            namespace: "demo".into(),
            service: "hello".into(),
            port: 8080,
            cluster: "east".into(),
            peer: None,
            method: "GET".into(),
            path: "/x".into(),
            status,
            attempts: Some(2),
        }
    }

    #[test]
    fn a_continued_span_keeps_the_callers_ids_and_names_its_parent() {
        let scope = InstrumentationScope::builder("t").build();
        let data = span_data(span(Some(SpanId([9; 8])), 200), scope.clone());
        assert_eq!(data.span_context.trace_id().to_bytes(), [7; 16]);
        assert_eq!(data.span_context.span_id().to_bytes(), [8; 8]);
        assert_eq!(data.parent_span_id.to_bytes(), [9; 8]);
        assert!(data.parent_span_is_remote);
        assert_eq!(data.span_kind, SpanKind::Client);
        assert_eq!(data.status, Status::Unset);
        let attempts = data
            .attributes
            .iter()
            .find(|kv| kv.key.as_str() == "fedmesh.attempts");
        assert_eq!(attempts.map(|kv| kv.value.clone()), Some(2i64.into()));
        let started = span_data(span(None, 503), scope);
        assert_eq!(started.parent_span_id, opentelemetry::SpanId::INVALID);
        assert!(matches!(started.status, Status::Error { .. }));
    }
}
