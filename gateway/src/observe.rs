//! What a gateway tells about each request and connection it carries:
//! W3C trace context ([`crate::trace`]), spans over OTLP ([`crate::otlp`],
//! when `gateway.tracing.otlpEndpoint` is set) and JSON access log lines
//! ([`crate::access_log`], when `gateway.accessLog` is set).
//!
//! Data flow for an HTTP request, at either gateway:
//!
//! 1. [`Observe::begin`] as the request arrives: the caller's trace is
//!    continued or one is started, and the request's `traceparent` is set
//!    to this hop, whatever is configured (the next hop and the backend
//!    always see a valid one).
//! 2. The response body is wrapped ([`crate::http`]'s `observed` body) so
//!    that the request ends when its last byte went (or the client left),
//!    not when the head went.
//! 3. [`Observe::request_done`] then queues the span (if sampled) and the
//!    access log line; neither waits.
//!
//! A TCP connection has no trace context; [`Observe::connection_done`]
//! writes its access log line when it closes.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use fedmesh_proto::config::Config;
use http::{HeaderMap, Method, Uri};
use opentelemetry::KeyValue;
use opentelemetry_sdk::Resource;
use serde_json::{Value, json};

use crate::access_log::{AccessLogError, AccessLogWriter};
use crate::metrics::Metrics;
use crate::otlp::{OtlpError, RequestSpan, Side, SpanExport};
use crate::state::ServiceKey;
use crate::trace::{HopTrace, Sampler};

/// Why the observability outputs could not start.
#[derive(Debug, thiserror::Error)]
pub enum ObserveError {
    /// Span export.
    #[error(transparent)]
    Otlp(#[from] OtlpError),
    /// The access log.
    #[error(transparent)]
    AccessLog(#[from] AccessLogError),
}

/// The gateway's observability outputs.
#[derive(Debug)]
pub struct Observe {
    sampler: Sampler,
    spans: Option<SpanExport>,
    log: Option<AccessLogWriter>,
    /// This gateway's cluster (the serving cluster of ingress records).
    cluster: String,
}

/// A request as it arrived: its trace hop and what its record needs.
#[derive(Debug, Clone)]
pub struct Begun {
    /// This hop of the request's trace.
    pub trace: HopTrace,
    started: Instant,
    wall: SystemTime,
    method: Method,
    authority: String,
    path: String,
}

/// How a request ended, besides what [`Begun`] knows.
#[derive(Debug, Clone)]
pub struct RequestDone {
    /// Which gateway.
    pub side: Side,
    /// The service.
    pub service: ServiceKey,
    /// The service port.
    pub port: u16,
    /// Client side: the cluster that answered (`none`); server side: set
    /// by [`Observe`] to this cluster.
    pub cluster: String,
    /// Server side: the calling cluster.
    pub peer: Option<String>,
    /// The response status (0: reset before a response).
    pub status: u16,
    /// Response body bytes sent to the caller.
    pub bytes: u64,
    /// Client side: targets tried.
    pub attempts: Option<u32>,
}

impl RequestDone {
    /// The egress's record of a request answered by `cluster` (`none`)
    /// after trying `attempts` targets; the status is the response's.
    pub fn at_egress(service: ServiceKey, port: u16, cluster: String, attempts: u32) -> Self {
        Self {
            side: Side::Client,
            service,
            port,
            cluster,
            peer: None,
            status: 0,
            bytes: 0,
            attempts: Some(attempts),
        }
    }

    /// The ingress's record of a request from `peer`; the status is filled
    /// in when it is known.
    pub fn at_ingress(service: ServiceKey, port: u16, peer: &str) -> Self {
        Self {
            side: Side::Server,
            service,
            port,
            cluster: String::new(),
            peer: Some(peer.to_owned()),
            status: 0,
            bytes: 0,
            attempts: None,
        }
    }
}

/// How a TCP connection ended.
#[derive(Debug, Clone)]
pub struct ConnectionDone {
    /// Which gateway.
    pub side: Side,
    /// The service.
    pub service: ServiceKey,
    /// The service port.
    pub port: u16,
    /// Client side: the cluster carried to (`none`); server side: the
    /// calling cluster.
    pub cluster: String,
    /// Client → upstream bytes.
    pub bytes_up: u64,
    /// Upstream → client bytes.
    pub bytes_down: u64,
    /// How long it was open.
    pub duration: Duration,
    /// `closed`, `idle_timeout` or `no_target`.
    pub outcome: &'static str,
}

impl Observe {
    /// Starts what `config.gateway` asks for. Span export needs the Tokio
    /// runtime.
    ///
    /// # Errors
    /// [`ObserveError`] when the access log file cannot be opened or the
    /// exporter refuses its endpoint.
    pub fn start(config: &Config, metrics: Arc<Metrics>) -> Result<Self, ObserveError> {
        let tracing = &config.gateway.tracing;
        let spans = match &tracing.otlp_endpoint {
            Some(endpoint) => {
                let resource = Resource::builder_empty()
                    .with_service_name("fedgw")
                    .with_attributes([
                        KeyValue::new("fedmesh.local_cluster", config.cluster.clone()),
                        KeyValue::new("fedmesh.gateway", config.gateway.name.clone()),
                    ])
                    .build();
                Some(SpanExport::start(endpoint, &resource, metrics.clone())?)
            }
            None => None,
        };
        let log = match &config.gateway.access_log {
            Some(target) => Some(AccessLogWriter::start(target, metrics)?),
            None => None,
        };
        Ok(Self {
            sampler: Sampler::new(tracing.sample_ratio.as_f64()),
            spans,
            log,
            cluster: config.cluster.clone(),
        })
    }

    /// Trace context only: no span, no access log (tests, benchmarks).
    pub fn off(cluster: &str) -> Self {
        Self {
            sampler: Sampler::new(0.0),
            spans: None,
            log: None,
            cluster: cluster.to_owned(),
        }
    }

    /// Whether requests and connections leave a record (span or line).
    pub fn records(&self) -> bool {
        self.spans.is_some() || self.log.is_some()
    }

    /// Waits until queued spans and lines went out, at most `timeout`
    /// (shutdown).
    pub async fn drain(&self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        let pending = || {
            self.spans.as_ref().map_or(0, SpanExport::pending)
                + self.log.as_ref().map_or(0, AccessLogWriter::pending)
        };
        while pending() > 0 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// A request arrives: continues or starts its trace and sets
    /// `headers`' `traceparent` to this hop.
    pub fn begin(&self, method: &Method, uri: &Uri, headers: &mut HeaderMap) -> Begun {
        let trace = HopTrace::continue_or_start(headers, self.sampler);
        trace.write(headers);
        // Only a record reads these: no copies when nothing records.
        let (authority, path) = if self.records() {
            let authority = uri
                .authority()
                .map(|a| a.as_str().to_owned())
                .or_else(|| {
                    let host = headers.get(http::header::HOST)?.to_str().ok()?;
                    Some(host.to_owned())
                })
                .unwrap_or_default();
            (authority, uri.path().to_owned())
        } else {
            (String::new(), String::new())
        };
        Begun {
            trace,
            started: Instant::now(),
            wall: SystemTime::now(),
            method: method.clone(),
            authority,
            path,
        }
    }

    /// A request ended: its span (if sampled) and its access log line.
    pub fn request_done(&self, begun: Begun, mut done: RequestDone) {
        if done.side == Side::Server {
            done.cluster.clone_from(&self.cluster);
        }
        let took = begun.started.elapsed();
        if let Some(log) = &self.log {
            // Built on the writer's thread, off the data path.
            let (begun, done) = (begun.clone(), done.clone());
            let at = SystemTime::now();
            log.write(move || request_line(at, &begun, &done, took));
        }
        if let Some(spans) = &self.spans {
            spans.record(RequestSpan {
                side: done.side,
                trace: begun.trace,
                start: begun.wall,
                end: begun.wall + took,
                namespace: done.service.0,
                service: done.service.1,
                port: done.port,
                cluster: done.cluster,
                peer: done.peer,
                method: begun.method.to_string(),
                path: begun.path,
                status: done.status,
                attempts: done.attempts,
            });
        }
    }

    /// A TCP connection closed: its access log line.
    pub fn connection_done(&self, done: &ConnectionDone) {
        if let Some(log) = &self.log {
            let (done, at) = (done.clone(), SystemTime::now());
            log.write(move || connection_line(at, &done));
        }
    }
}

/// `egress` or `ingress`.
fn side_name(side: Side) -> &'static str {
    match side {
        Side::Client => "egress",
        Side::Server => "ingress",
    }
}

/// `at`, RFC 3339 with milliseconds, UTC.
fn timestamp(at: SystemTime) -> String {
    let now = time::OffsetDateTime::from(at);
    let format = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
    );
    now.format(&format).unwrap_or_default()
}

fn millis(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e6).round() / 1e3
}

/// One HTTP request's line.
fn request_line(at: SystemTime, begun: &Begun, done: &RequestDone, took: Duration) -> Value {
    let mut line = json!({
        "time": timestamp(at),
        "kind": "http",
        "side": side_name(done.side),
        "namespace": done.service.0,
        "service": done.service.1,
        "port": done.port,
        "method": begun.method.as_str(),
        "authority": begun.authority,
        "path": begun.path,
        "status": done.status,
        "cluster": done.cluster,
        "duration_ms": millis(took),
        "bytes": done.bytes,
        "trace_id": begun.trace.trace_id.to_string(),
        "span_id": begun.trace.span_id.to_string(),
    });
    if let Some(peer) = &done.peer {
        line["peer"] = json!(peer);
    }
    if let Some(attempts) = done.attempts {
        line["attempts"] = json!(attempts);
    }
    line
}

/// One TCP connection's line.
fn connection_line(at: SystemTime, done: &ConnectionDone) -> Value {
    json!({
        "time": timestamp(at),
        "kind": "tcp",
        "side": side_name(done.side),
        "namespace": done.service.0,
        "service": done.service.1,
        "port": done.port,
        "cluster": done.cluster,
        "bytes_up": done.bytes_up,
        "bytes_down": done.bytes_down,
        "duration_ms": millis(done.duration),
        "outcome": done.outcome,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An `Observe` that writes access lines to a file in `dir`.
    fn recording(dir: &std::path::Path) -> Observe {
        let target = fedmesh_proto::config::AccessLog::File(dir.join("access.log"));
        let metrics = Arc::new(Metrics::new());
        Observe {
            log: Some(AccessLogWriter::start(&target, metrics).unwrap()),
            ..Observe::off("east")
        }
    }

    #[test]
    fn begin_always_leaves_one_valid_traceparent_for_the_next_hop() {
        let dir = tempfile::tempdir().unwrap();
        let observe = recording(dir.path());
        let mut headers = HeaderMap::new();
        let uri: Uri = "http://hello.demo:8080/a?b=1".parse().unwrap();
        let begun = observe.begin(&Method::GET, &uri, &mut headers);
        let sent = crate::trace::incoming(&headers).unwrap().unwrap();
        assert_eq!(sent.trace_id, begun.trace.trace_id);
        assert_eq!(sent.parent_id, begun.trace.span_id);
        assert!(!sent.sampled, "nothing records, so nothing is sampled");
        assert_eq!(begun.authority, "hello.demo:8080");
        assert_eq!(begun.path, "/a");
        let quiet = Observe::off("east").begin(&Method::GET, &uri, &mut HeaderMap::new());
        assert_eq!(quiet.path, "", "nothing copied when nothing records");
    }

    #[test]
    fn a_request_line_has_the_fields_operators_filter_on() {
        let dir = tempfile::tempdir().unwrap();
        let observe = recording(dir.path());
        let mut headers = HeaderMap::new();
        let begun = observe.begin(&Method::POST, &"/x".parse().unwrap(), &mut headers);
        let done = RequestDone {
            side: Side::Client,
            service: ("demo".into(), "hello".into()),
            port: 8080,
            cluster: "west".into(),
            peer: None,
            status: 200,
            bytes: 5,
            attempts: Some(2),
        };
        let line = request_line(
            SystemTime::now(),
            &begun,
            &done,
            Duration::from_micros(1500),
        );
        for (field, want) in [
            ("kind", json!("http")),
            ("side", json!("egress")),
            ("method", json!("POST")),
            ("path", json!("/x")),
            ("status", json!(200)),
            ("cluster", json!("west")),
            ("bytes", json!(5)),
            ("attempts", json!(2)),
            ("duration_ms", json!(1.5)),
        ] {
            assert_eq!(line[field], want, "{field}: {line}");
        }
        assert_eq!(line["trace_id"].as_str().map(str::len), Some(32), "{line}");
        assert!(line["time"].as_str().is_some_and(|t| t.ends_with('Z')));
    }
}
