//! The gateway's Prometheus metrics (prometheus-client), labelled by
//! service and target cluster: connections opened, active, failed,
//! attempts failed by reason, bytes, connect latency, ejections, probe
//! results, ingress refusals, listeners.

use std::sync::atomic::AtomicU64;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Labels: service and target cluster.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Target {
    /// `ns/name`.
    pub service: String,
    /// Target cluster.
    pub cluster: String,
}

/// Labels: service, target cluster and a reason.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Failure {
    /// `ns/name`.
    pub service: String,
    /// Target cluster.
    pub cluster: String,
    /// Why.
    pub reason: String,
}

/// Labels: one value.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Reason {
    /// Why, or which.
    pub reason: String,
}

/// Labels: a service.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Service {
    /// `ns/name`.
    pub service: String,
}

/// Labels: a cluster.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Cluster {
    /// Cluster name.
    pub cluster: String,
}

/// Labels: a target cluster and how the TLS handshake went.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Handshake {
    /// Target cluster.
    pub cluster: String,
    /// `full` or `resumed`.
    pub kind: String,
}

/// Labels: a peer gateway and a probe result.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Probe {
    /// Gateway address.
    pub gateway: String,
    /// `ok` or `failed`.
    pub result: String,
}

/// Every metric, registered once.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    opened: Family<Target, Counter>,
    active: Family<Target, Gauge<i64, std::sync::atomic::AtomicI64>>,
    failed: Family<Service, Counter>,
    rate_limited: Family<Service, Counter>,
    handshakes: Family<Handshake, Counter>,
    attempt_failed: Family<Failure, Counter>,
    bytes_up: Family<Target, Counter<u64, AtomicU64>>,
    bytes_down: Family<Target, Counter<u64, AtomicU64>>,
    connect_seconds: Family<Target, Histogram>,
    ejections: Family<Cluster, Counter>,
    probes: Family<Probe, Counter>,
    ingress_refused: Family<Reason, Counter>,
    ingress_bytes: Family<Target, Counter<u64, AtomicU64>>,
    listeners: Gauge,
    peer_connects: Family<Cluster, Counter>,
    peer_connections: Family<Cluster, Gauge>,
    peer_streams: Family<Cluster, Gauge>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Registers every metric under the `fedmesh_gateway` prefix.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("fedmesh_gateway");
        let m = Self {
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
            listeners: Gauge::default(),
            peer_connects: Family::default(),
            peer_connections: Family::default(),
            peer_streams: Family::default(),
            registry: Registry::default(),
        };
        registry.register(
            "egress_connections_opened",
            "Client connections carried to a target",
            m.opened.clone(),
        );
        registry.register(
            "egress_connections_active",
            "Client connections being carried",
            m.active.clone(),
        );
        registry.register(
            "egress_connections_failed",
            "Client connections reset because no target could serve",
            m.failed.clone(),
        );
        registry.register(
            "egress_tls_handshakes",
            "mTLS handshakes with peer gateways, full or resumed",
            m.handshakes.clone(),
        );
        registry.register(
            "egress_rate_limited",
            "Client connections reset by the service's rate limit",
            m.rate_limited.clone(),
        );
        registry.register(
            "egress_attempts_failed",
            "Attempts to reach a target that failed (the next target was tried)",
            m.attempt_failed.clone(),
        );
        registry.register(
            "egress_sent_bytes",
            "Bytes from clients to targets",
            m.bytes_up.clone(),
        );
        registry.register(
            "egress_received_bytes",
            "Bytes from targets to clients",
            m.bytes_down.clone(),
        );
        registry.register(
            "egress_connect_seconds",
            "Time from accepting a client to reaching a target",
            m.connect_seconds.clone(),
        );
        registry.register(
            "ejections",
            "Targets ejected by outlier detection",
            m.ejections.clone(),
        );
        registry.register("probes", "Active probes of peer gateways", m.probes.clone());
        registry.register(
            "ingress_refused",
            "Ingress connections refused, by reason",
            m.ingress_refused.clone(),
        );
        registry.register(
            "ingress_bytes",
            "Bytes carried by ingress (both ways)",
            m.ingress_bytes.clone(),
        );
        registry.register(
            "egress_listeners",
            "VIP listeners open",
            m.listeners.clone(),
        );
        registry.register(
            "egress_peer_connections_opened",
            "Pooled connections (TCP) opened to a peer cluster's gateways",
            m.peer_connects.clone(),
        );
        registry.register(
            "egress_peer_connections",
            "Pooled connections to a peer cluster's gateways, open now",
            m.peer_connections.clone(),
        );
        registry.register(
            "egress_peer_streams",
            "Client connections carried as streams to a peer cluster, open now",
            m.peer_streams.clone(),
        );
        Self { registry, ..m }
    }

    /// What a peer cluster's pools did since the last report: `connects`
    /// new TCP connections, `full` and `resumed` TLS handshakes; `live`
    /// connections and `streams` open now.
    pub fn peer_pool(&self, cluster: &str, new: PoolCounts, live: usize, streams: usize) {
        let c = Cluster {
            cluster: cluster.to_string(),
        };
        self.peer_connects.get_or_create(&c).inc_by(new.connects);
        for (kind, n) in [("full", new.full), ("resumed", new.resumed)] {
            self.handshakes
                .get_or_create(&Handshake {
                    cluster: cluster.to_string(),
                    kind: kind.to_string(),
                })
                .inc_by(n);
        }
        let gauge = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);
        self.peer_connections.get_or_create(&c).set(gauge(live));
        self.peer_streams.get_or_create(&c).set(gauge(streams));
    }

    fn target(service: &str, cluster: &str) -> Target {
        Target {
            service: service.to_string(),
            cluster: cluster.to_string(),
        }
    }

    /// A connection reached `cluster` after `latency`.
    pub fn egress_connected(&self, service: &str, cluster: &str, latency: Duration) {
        let t = Self::target(service, cluster);
        self.opened.get_or_create(&t).inc();
        self.connect_seconds
            .get_or_create(&t)
            .observe(latency.as_secs_f64());
    }

    /// Counts an active connection until the guard drops.
    pub fn egress_active(&self, service: &str, cluster: &str) -> ActiveGuard {
        let gauge = self
            .active
            .get_or_create(&Self::target(service, cluster))
            .clone();
        gauge.inc();
        ActiveGuard(gauge)
    }

    /// An attempt on `cluster` failed for `reason`.
    pub fn egress_attempt_failed(&self, service: &str, cluster: &str, reason: &str) {
        self.attempt_failed
            .get_or_create(&Failure {
                service: service.to_string(),
                cluster: cluster.to_string(),
                reason: reason.to_string(),
            })
            .inc();
    }

    /// A client connection was reset: nothing could serve.
    pub fn egress_failed(&self, service: &str) {
        self.failed
            .get_or_create(&Service {
                service: service.to_string(),
            })
            .inc();
    }

    /// An mTLS handshake with `cluster`'s gateway completed.
    pub fn tls_handshake(&self, cluster: &str, resumed: bool) {
        let kind = if resumed { "resumed" } else { "full" };
        self.handshakes
            .get_or_create(&Handshake {
                cluster: cluster.to_string(),
                kind: kind.to_string(),
            })
            .inc();
    }

    /// A client connection was reset by the service's rate limit.
    pub fn egress_rate_limited(&self, service: &str) {
        self.rate_limited
            .get_or_create(&Service {
                service: service.to_string(),
            })
            .inc();
    }

    /// Bytes moved by a finished egress connection.
    pub fn egress_bytes(&self, service: &str, cluster: &str, up: u64, down: u64) {
        let t = Self::target(service, cluster);
        self.bytes_up.get_or_create(&t).inc_by(up);
        self.bytes_down.get_or_create(&t).inc_by(down);
    }

    /// `cluster` was ejected.
    pub fn ejection(&self, cluster: &str) {
        self.ejections
            .get_or_create(&Cluster {
                cluster: cluster.to_string(),
            })
            .inc();
    }

    /// A probe of `gateway` finished.
    pub fn probe(&self, gateway: &str, ok: bool) {
        let result = if ok { "ok" } else { "failed" };
        self.probes
            .get_or_create(&Probe {
                gateway: gateway.to_string(),
                result: result.to_string(),
            })
            .inc();
    }

    /// An ingress connection was refused for `reason`.
    pub fn ingress_refused(&self, reason: &str) {
        self.ingress_refused
            .get_or_create(&Reason {
                reason: reason.to_string(),
            })
            .inc();
    }

    /// Bytes moved by a finished ingress connection from `peer`.
    pub fn ingress_bytes(&self, service: &str, peer: &str, up: u64, down: u64) {
        self.ingress_bytes
            .get_or_create(&Self::target(service, peer))
            .inc_by(up + down);
    }

    /// How many VIP listeners are open.
    pub fn egress_listeners(&self, n: usize) {
        self.listeners.set(i64::try_from(n).unwrap_or(i64::MAX));
    }

    /// Prometheus text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

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

/// Decrements the active-connections gauge when dropped.
#[derive(Debug)]
pub struct ActiveGuard(Gauge<i64, std::sync::atomic::AtomicI64>);

impl Drop for ActiveGuard {
    fn drop(&mut self) {
        self.0.dec();
    }
}
