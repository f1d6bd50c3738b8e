//! The gateway's Prometheus metrics (prometheus-client): connections
//! opened, active, failed, attempts failed by reason, bytes, connect
//! latency, TLS handshakes, ejections, probe results, ingress refusals,
//! listeners.
//!
//! Data flows in three ways. Every snapshot goes through
//! [`Metrics::prepare`] (in `prepare`), which creates each series the
//! snapshot names at 0, so that an alert's `increase()` sees a gateway's
//! first failure, and removes the series of services no longer imported.
//! Events (a connect, a failed attempt, a probe) call the methods below.
//! Bytes are counted by [`crate::splice`] as they are read, through the
//! [`ByteMeters`] handles these methods hand out, so a long connection's
//! bytes show while it is open. [`Metrics::encode`] writes OpenMetrics or,
//! converted by [`Format::render`], the classic Prometheus text format.
//!
//! Services are labelled `namespace` and `service` (the name), never a
//! joined `ns/name`.

mod http;
mod observe;
mod policy;

pub use http::{HTTP_NO_CLUSTER, HTTP_PREPARED_CODES};
pub use policy::{FAULT_KINDS, GRPC_UNKNOWN};
mod prepare;
#[cfg(test)]
mod tests;

use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, AtomicU64};
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::state::ServiceKey;

/// `reason` values of `egress_attempts_failed` on a local target
/// ([`crate::error::AttemptError::label`]).
pub const LOCAL_ATTEMPT_REASONS: &[&str] = &["connect", "timeout", "no_endpoint", "at_capacity"];

/// `reason` values of `egress_attempts_failed` on a remote target: the
/// egress's own failures, then every refusal of a peer ingress
/// ([`crate::wire::Refusal::as_str`]).
pub const REMOTE_ATTEMPT_REASONS: &[&str] = &[
    "peer_unreachable",
    "peer_stream_lost",
    "timeout",
    "bad_answer",
    "client_gone",
    "at_capacity",
    "unknown_service",
    "not_exported_to_peer",
    "no_healthy_endpoint",
    "endpoint_failed",
    "bad_request",
];

/// `reason` values of `ingress_refused`: the handshake and identity checks,
/// then every refusal status the ingress answers with.
pub const INGRESS_REFUSALS: &[&str] = &[
    "handshake",
    "not_a_gateway",
    "unknown_peer",
    "bad_request",
    "unknown_service",
    "not_exported_to_peer",
    "no_healthy_endpoint",
    "endpoint_failed",
];

/// `kind` values of `egress_tls_handshakes`.
const HANDSHAKE_KINDS: [&str; 2] = ["full", "resumed"];

/// `result` values of `probes`.
const PROBE_RESULTS: [&str; 2] = ["ok", "failed"];

/// A byte counter, shared by every connection of one label set.
pub type ByteCounter = Counter<u64, AtomicU64>;

/// The counters a splice moves as it reads: `up` for bytes read from the
/// first side (the client or peer), `down` for bytes read from the second.
/// Both may be the same counter (ingress counts both ways in one).
#[derive(Debug, Clone, Default)]
pub struct ByteMeters {
    /// Bytes read from the first side.
    pub up: ByteCounter,
    /// Bytes read from the second side.
    pub down: ByteCounter,
}

/// Which text format [`Metrics::encode`] writes (shared with the control
/// plane's web port).
pub use fedmesh_proto::metrics_text::Format;

/// Counts of a peer cluster's pools since the last report.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PoolCounts {
    /// TCP connections opened.
    pub connects: u64,
    /// Full TLS handshakes.
    pub full: u64,
    /// Resumed TLS handshakes.
    pub resumed: u64,
}

/// Labels: a service and a target cluster (for ingress: the peer).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TargetLabels {
    namespace: String,
    service: String,
    cluster: String,
}

/// Labels: a service, a target cluster and why an attempt failed.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FailureLabels {
    namespace: String,
    service: String,
    cluster: String,
    reason: String,
}

/// Labels: a service.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ServiceLabels {
    namespace: String,
    service: String,
}

/// Labels: why (an ingress refusal).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    reason: String,
}

/// Labels: a cluster.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ClusterLabels {
    cluster: String,
}

/// Labels: a target cluster and how the TLS handshake went.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HandshakeLabels {
    cluster: String,
    kind: String,
}

/// Labels: a peer gateway's address and a probe result.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ProbeLabels {
    gateway: String,
    result: String,
}

type ActiveGauge = Gauge<i64, AtomicI64>;

/// Every metric, registered once.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    opened: Family<TargetLabels, Counter>,
    active: Family<TargetLabels, ActiveGauge>,
    failed: Family<ServiceLabels, Counter>,
    rate_limited: Family<ServiceLabels, Counter>,
    handshakes: Family<HandshakeLabels, Counter>,
    attempt_failed: Family<FailureLabels, Counter>,
    bytes_up: Family<TargetLabels, ByteCounter>,
    bytes_down: Family<TargetLabels, ByteCounter>,
    connect_seconds: Family<TargetLabels, Histogram>,
    ejections: Family<ClusterLabels, Counter>,
    probes: Family<ProbeLabels, Counter>,
    ingress_refused: Family<ReasonLabels, Counter>,
    ingress_bytes: Family<TargetLabels, ByteCounter>,
    ingress_active: Family<TargetLabels, ActiveGauge>,
    listeners: Gauge,
    peer_connects: Family<ClusterLabels, Counter>,
    peer_connections: Family<ClusterLabels, ActiveGauge>,
    peer_streams: Family<ClusterLabels, ActiveGauge>,
    /// Requests of HTTP ports.
    http: http::HttpMetrics,
    /// Access log lines and spans dropped.
    observe: observe::ObserveMetrics,
    /// What the last snapshot named (see `prepare`).
    prepared: Mutex<prepare::Named>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Registers every metric under the `fedmesh_gateway` prefix, with the
    /// ingress refusals (whose labels need no snapshot) at 0.
    pub fn new() -> Self {
        let m = Self {
            registry: Registry::default(),
            opened: Family::default(),
            active: Family::default(),
            failed: Family::default(),
            rate_limited: Family::default(),
            handshakes: Family::default(),
            attempt_failed: Family::default(),
            bytes_up: Family::default(),
            bytes_down: Family::default(),
            connect_seconds: Family::new_with_constructor(|| {
                Histogram::new(exponential_buckets(0.0001, 2.0, 18))
            }),
            ejections: Family::default(),
            probes: Family::default(),
            ingress_refused: Family::default(),
            ingress_bytes: Family::default(),
            ingress_active: Family::default(),
            listeners: Gauge::default(),
            peer_connects: Family::default(),
            peer_connections: Family::default(),
            peer_streams: Family::default(),
            http: http::HttpMetrics::default(),
            observe: observe::ObserveMetrics::default(),
            prepared: Mutex::default(),
        };
        for reason in INGRESS_REFUSALS {
            drop(m.ingress_refused.get_or_create(&reason_labels(reason)));
        }
        Self {
            registry: m.registry(),
            ..m
        }
    }

    /// A registry of every family, under the `fedmesh_gateway` prefix.
    fn registry(&self) -> Registry {
        let mut registry = Registry::with_prefix("fedmesh_gateway");
        self.register_egress(&mut registry);
        self.register_peers(&mut registry);
        self.http.register(&mut registry);
        self.observe.register(&mut registry);
        registry
    }

    /// The families of client connections through VIPs.
    fn register_egress(&self, registry: &mut Registry) {
        registry.register(
            "egress_connections_opened",
            "Client connections carried to a target",
            self.opened.clone(),
        );
        registry.register(
            "egress_connections_active",
            "Client connections being carried",
            self.active.clone(),
        );
        registry.register(
            "egress_connections_failed",
            "Client connections reset because no target could serve",
            self.failed.clone(),
        );
        registry.register(
            "egress_tls_handshakes",
            "mTLS handshakes with peer gateways, full or resumed",
            self.handshakes.clone(),
        );
        registry.register(
            "egress_rate_limited",
            "Client connections reset by the service's rate limit",
            self.rate_limited.clone(),
        );
        registry.register(
            "egress_attempts_failed",
            "Attempts to reach a target that failed (the next target was tried)",
            self.attempt_failed.clone(),
        );
        registry.register(
            "egress_sent_bytes",
            "Bytes from clients to targets, counted as they move",
            self.bytes_up.clone(),
        );
        registry.register(
            "egress_received_bytes",
            "Bytes from targets to clients, counted as they move",
            self.bytes_down.clone(),
        );
        registry.register(
            "egress_connect_seconds",
            "Time from accepting a client to reaching a target",
            self.connect_seconds.clone(),
        );
        registry.register(
            "egress_listeners",
            "VIP listeners open",
            self.listeners.clone(),
        );
    }

    /// The families of peer gateways: their health, the pools to them and
    /// their connections to this ingress.
    fn register_peers(&self, registry: &mut Registry) {
        registry.register(
            "egress_peer_connections_opened",
            "Pooled connections (TCP) opened to a peer cluster's gateways",
            self.peer_connects.clone(),
        );
        registry.register(
            "egress_peer_connections",
            "Pooled connections to a peer cluster's gateways, open now",
            self.peer_connections.clone(),
        );
        registry.register(
            "egress_peer_streams",
            "Client connections carried as streams to a peer cluster, open now",
            self.peer_streams.clone(),
        );
        registry.register(
            "ejections",
            "Targets ejected by outlier detection",
            self.ejections.clone(),
        );
        registry.register(
            "probes",
            "Active probes of peer gateways",
            self.probes.clone(),
        );
        registry.register(
            "ingress_refused",
            "Ingress connections refused, by reason",
            self.ingress_refused.clone(),
        );
        registry.register(
            "ingress_bytes",
            "Bytes carried by ingress (both ways), counted as they move",
            self.ingress_bytes.clone(),
        );
        registry.register(
            "ingress_connections_active",
            "Connections from peer gateways being carried to endpoints",
            self.ingress_active.clone(),
        );
    }

    /// A connection of `service` reached `cluster` after `latency`.
    pub fn egress_connected(&self, service: &ServiceKey, cluster: &str, latency: Duration) {
        let t = target_labels(service, cluster);
        self.opened.get_or_create(&t).inc();
        self.connect_seconds
            .get_or_create(&t)
            .observe(latency.as_secs_f64());
    }

    /// Counts an active egress connection until the guard drops.
    pub fn egress_active(&self, service: &ServiceKey, cluster: &str) -> ActiveGuard {
        ActiveGuard::new(
            self.active
                .get_or_create_owned(&target_labels(service, cluster)),
        )
    }

    /// The byte counters of an egress connection of `service` carried to
    /// `cluster`, for [`crate::splice::splice`]: `up` is client → target.
    pub fn egress_meters(&self, service: &ServiceKey, cluster: &str) -> ByteMeters {
        let t = target_labels(service, cluster);
        ByteMeters {
            up: self.bytes_up.get_or_create_owned(&t),
            down: self.bytes_down.get_or_create_owned(&t),
        }
    }

    /// An attempt on `cluster` failed for `reason` (one of
    /// [`LOCAL_ATTEMPT_REASONS`] or [`REMOTE_ATTEMPT_REASONS`]).
    pub fn egress_attempt_failed(&self, service: &ServiceKey, cluster: &str, reason: &str) {
        self.attempt_failed
            .get_or_create(&failure_labels(service, cluster, reason))
            .inc();
    }

    /// A request of an HTTP port of `service` was answered `code` by
    /// `cluster` (`none`: by this gateway, no target could) after `took`.
    pub fn http_request(&self, service: &ServiceKey, cluster: &str, code: u16, took: Duration) {
        self.http.request(service, cluster, code, took);
    }

    /// A route's retry policy sent a request to `service` again.
    pub fn http_retry(&self, service: &ServiceKey) {
        self.http.policy.retry(service);
    }

    /// The retry budget refused a retry of a request to `service`.
    pub fn http_retry_budget_exhausted(&self, service: &ServiceKey) {
        self.http.policy.budget_exhausted(service);
    }

    /// A fault of `kind` ([`FAULT_KINDS`]) hit a request to `service`.
    pub fn http_fault(&self, service: &ServiceKey, kind: &str) {
        self.http.policy.fault(service, kind);
    }

    /// A gRPC request to `service` answered by `cluster` ended with
    /// `status` (0–16 or [`GRPC_UNKNOWN`]).
    pub fn grpc_request(&self, service: &ServiceKey, cluster: &str, status: &str) {
        self.http.policy.grpc(service, cluster, status);
    }

    /// An access log line (`access_log`) or a span (`span`) was dropped:
    /// its queue was full.
    pub fn observe_dropped(&self, kind: &str) {
        self.observe.dropped(kind);
    }

    /// A client connection was reset: nothing could serve.
    pub fn egress_failed(&self, service: &ServiceKey) {
        self.failed.get_or_create(&service_labels(service)).inc();
    }

    /// What a peer cluster's pools did since the last report: `new`
    /// connections and handshakes; `live` connections and `streams` open
    /// now.
    pub fn peer_pool(&self, cluster: &str, new: PoolCounts, live: usize, streams: usize) {
        let c = cluster_labels(cluster);
        self.peer_connects.get_or_create(&c).inc_by(new.connects);
        for (kind, n) in [("full", new.full), ("resumed", new.resumed)] {
            self.handshakes
                .get_or_create(&handshake_labels(cluster, kind))
                .inc_by(n);
        }
        let gauge = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);
        self.peer_connections.get_or_create(&c).set(gauge(live));
        self.peer_streams.get_or_create(&c).set(gauge(streams));
    }

    /// An mTLS handshake with `cluster`'s gateway completed.
    pub fn tls_handshake(&self, cluster: &str, resumed: bool) {
        let kind = HANDSHAKE_KINDS[usize::from(resumed)];
        self.handshakes
            .get_or_create(&handshake_labels(cluster, kind))
            .inc();
    }

    /// A client connection was reset by the service's rate limit.
    pub fn egress_rate_limited(&self, service: &ServiceKey) {
        self.rate_limited
            .get_or_create(&service_labels(service))
            .inc();
    }

    /// `cluster` was ejected.
    pub fn ejection(&self, cluster: &str) {
        self.ejections.get_or_create(&cluster_labels(cluster)).inc();
    }

    /// A probe of the peer gateway at `gateway` finished.
    pub fn probe(&self, gateway: &str, ok: bool) {
        let result = PROBE_RESULTS[usize::from(!ok)];
        self.probes
            .get_or_create(&probe_labels(gateway, result))
            .inc();
    }

    /// An ingress connection was refused for `reason` (one of
    /// [`INGRESS_REFUSALS`]).
    pub fn ingress_refused(&self, reason: &str) {
        self.ingress_refused
            .get_or_create(&reason_labels(reason))
            .inc();
    }

    /// Counts an ingress connection from `peer` to `service` until the
    /// guard drops.
    pub fn ingress_active(&self, service: &ServiceKey, peer: &str) -> ActiveGuard {
        ActiveGuard::new(
            self.ingress_active
                .get_or_create_owned(&target_labels(service, peer)),
        )
    }

    /// The byte counter of an ingress connection from `peer` to `service`
    /// for [`crate::splice::splice`], both ways in one.
    pub fn ingress_meters(&self, service: &ServiceKey, peer: &str) -> ByteMeters {
        let both = self
            .ingress_bytes
            .get_or_create_owned(&target_labels(service, peer));
        ByteMeters {
            up: both.clone(),
            down: both,
        }
    }

    /// How many VIP listeners are open.
    pub fn egress_listeners(&self, n: usize) {
        self.listeners.set(i64::try_from(n).unwrap_or(i64::MAX));
    }

    /// The metrics as text in `format`.
    pub fn encode(&self, format: Format) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        format.render(out)
    }
}

/// Decrements an active-connections gauge when dropped.
#[derive(Debug)]
pub struct ActiveGuard(ActiveGauge);

impl ActiveGuard {
    fn new(gauge: ActiveGauge) -> Self {
        gauge.inc();
        Self(gauge)
    }
}

impl Drop for ActiveGuard {
    fn drop(&mut self) {
        self.0.dec();
    }
}

fn target_labels((namespace, service): &ServiceKey, cluster: &str) -> TargetLabels {
    TargetLabels {
        namespace: namespace.clone(),
        service: service.clone(),
        cluster: cluster.to_string(),
    }
}

fn failure_labels((namespace, service): &ServiceKey, cluster: &str, reason: &str) -> FailureLabels {
    FailureLabels {
        namespace: namespace.clone(),
        service: service.clone(),
        cluster: cluster.to_string(),
        reason: reason.to_string(),
    }
}

fn service_labels((namespace, service): &ServiceKey) -> ServiceLabels {
    ServiceLabels {
        namespace: namespace.clone(),
        service: service.clone(),
    }
}

fn reason_labels(reason: &str) -> ReasonLabels {
    ReasonLabels {
        reason: reason.to_string(),
    }
}

fn cluster_labels(cluster: &str) -> ClusterLabels {
    ClusterLabels {
        cluster: cluster.to_string(),
    }
}

fn handshake_labels(cluster: &str, kind: &str) -> HandshakeLabels {
    HandshakeLabels {
        cluster: cluster.to_string(),
        kind: kind.to_string(),
    }
}

fn probe_labels(gateway: &str, result: &str) -> ProbeLabels {
    ProbeLabels {
        gateway: gateway.to_string(),
        result: result.to_string(),
    }
}
