//! The control plane's Prometheus metrics (prometheus-client), all named
//! `fedmesh_control_*` plus the standard `process_*` series.
//!
//! Most series are gauges read from the state at scrape time: each scrape
//! takes a [`Sample`] and [`ControlMetrics::record`] writes it, clearing the
//! per-peer and per-certificate families first so a removed peer or
//! gateway leaves no series behind. Every series that does not name a peer
//! or gateway exists from start, at 0 (`peers` for each state, every DNS
//! rcode), so an alert's `increase()` sees the first event. Two are
//! counted as they happen: DNS responses (by the DNS server, copied here
//! as a counter) and the propagation histogram (by [`super::propagation`]).
//!
//! [`ControlMetrics::encode`] writes OpenMetrics or the classic text
//! format ([`fedmesh_proto::metrics_text`]).

use std::sync::atomic::AtomicU64;
use std::sync::{Mutex, PoisonError};

use fedmesh_proto::metrics_text::Format;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::{Registry, Unit};

use super::sample::Sample;
use crate::model::LinkState;

/// The link states, as the `state` label spells them.
const STATES: [LinkState; 3] = [
    LinkState::Connected,
    LinkState::Stale,
    LinkState::Disconnected,
];

/// Propagation buckets (seconds): a change is acked by every peer within
/// a few heartbeats, or something is wrong.
const PROPAGATION_BUCKETS: [f64; 12] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

type FloatGauge = Gauge<f64, AtomicU64>;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabels {
    state: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PeerLabels {
    peer: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PeerStateLabels {
    peer: String,
    state: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CertLabels {
    cert: &'static str,
    name: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EndpointLabels {
    namespace: String,
    service: String,
    cluster: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RcodeLabels {
    rcode: &'static str,
}

/// Every metric of the web port, registered once.
pub struct ControlMetrics {
    registry: Registry,
    /// One scrape at a time: a scrape clears and refills families.
    scrape: Mutex<()>,
    peers: Family<StateLabels, Gauge>,
    peer_state: Family<PeerStateLabels, Gauge>,
    heartbeat_age: Family<PeerLabels, FloatGauge>,
    acked_version: Family<PeerLabels, Gauge>,
    sync_pending: Family<PeerLabels, Gauge>,
    imports: Family<PeerLabels, Gauge>,
    refused: Family<PeerLabels, Gauge>,
    exports: Gauge,
    exports_version: Gauge,
    services: Gauge,
    endpoints: Family<EndpointLabels, Gauge>,
    gateways: Gauge,
    gateways_ready: Gauge,
    cert_expiry: Family<CertLabels, Gauge>,
    dns: Family<RcodeLabels, Counter>,
    propagation: Histogram,
    process: ProcessFamilies,
}

/// The standard `process_*` series.
#[derive(Default)]
struct ProcessFamilies {
    rss: Gauge,
    cpu: Counter<f64, AtomicU64>,
    fds: Gauge,
    start: FloatGauge,
}

impl std::fmt::Debug for ControlMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ControlMetrics").finish_non_exhaustive()
    }
}

impl Default for ControlMetrics {
    fn default() -> Self {
        Self::new()
    }
}

impl ControlMetrics {
    /// Every family registered, the state-less series at 0.
    pub fn new() -> Self {
        let mut m = Self {
            registry: Registry::default(),
            scrape: Mutex::new(()),
            peers: Family::default(),
            peer_state: Family::default(),
            heartbeat_age: Family::default(),
            acked_version: Family::default(),
            sync_pending: Family::default(),
            imports: Family::default(),
            refused: Family::default(),
            exports: Gauge::default(),
            exports_version: Gauge::default(),
            services: Gauge::default(),
            endpoints: Family::default(),
            gateways: Gauge::default(),
            gateways_ready: Gauge::default(),
            cert_expiry: Family::default(),
            dns: Family::default(),
            propagation: Histogram::new(PROPAGATION_BUCKETS),
            process: ProcessFamilies::default(),
        };
        m.registry = m.registry();
        for state in STATES {
            let _ = m.peers.get_or_create(&StateLabels {
                state: state.as_str(),
            });
        }
        for rcode in fedmesh_dns::RCODES {
            let _ = m.dns.get_or_create(&RcodeLabels { rcode });
        }
        m
    }

    /// The propagation histogram, for [`super::propagation`] to observe.
    pub(super) fn propagation(&self) -> Histogram {
        self.propagation.clone()
    }

    fn registry(&self) -> Registry {
        let mut root = Registry::default();
        self.register_process(&mut root);
        let r = root.sub_registry_with_prefix("fedmesh_control");
        self.register_peers(r);
        self.register_cluster(r);
        let build = Info::new(vec![
            ("version", env!("CARGO_PKG_VERSION")),
            // Set by release builds; a plain `cargo build` has none.
            (
                "commit",
                option_env!("FEDMESH_GIT_COMMIT").unwrap_or("unknown"),
            ),
        ]);
        r.register("build", "The fedctl build serving this port", build);
        root
    }

    /// The standard process series, named as every Prometheus client
    /// library names them.
    fn register_process(&self, r: &mut Registry) {
        let p = &self.process;
        r.register_with_unit(
            "process_resident_memory",
            "Resident memory size",
            Unit::Bytes,
            p.rss.clone(),
        );
        r.register_with_unit(
            "process_cpu",
            "User and system CPU time spent",
            Unit::Seconds,
            p.cpu.clone(),
        );
        r.register("process_open_fds", "Open file descriptors", p.fds.clone());
        r.register_with_unit(
            "process_start_time",
            "Start time of the process since the unix epoch",
            Unit::Seconds,
            p.start.clone(),
        );
    }

    fn register_peers(&self, r: &mut Registry) {
        r.register("peers", "Peers by link state", self.peers.clone());
        r.register(
            "peer_state",
            "1 for the link state each peer is in, 0 for the others",
            self.peer_state.clone(),
        );
        r.register_with_unit(
            "peer_heartbeat_age",
            "Time since each peer was last heard on its sync stream",
            Unit::Seconds,
            self.heartbeat_age.clone(),
        );
        r.register(
            "peer_acked_exports_version",
            "The version of this cluster's exports each peer last acknowledged",
            self.acked_version.clone(),
        );
        r.register(
            "peer_sync_pending_exports",
            "Exports (changed or withdrawn) each peer has not acknowledged yet; 0 when in sync",
            self.sync_pending.clone(),
        );
        r.register(
            "peer_imports",
            "Services imported from each peer",
            self.imports.clone(),
        );
        r.register(
            "peer_refused_exports",
            "Exports of each peer refused here by the imports policy",
            self.refused.clone(),
        );
    }

    fn register_cluster(&self, r: &mut Registry) {
        r.register(
            "exports",
            "Services this cluster exports",
            self.exports.clone(),
        );
        r.register(
            "exports_version",
            "The version of this cluster's exports (grows with every change)",
            self.exports_version.clone(),
        );
        r.register(
            "services",
            "Services in the global service table",
            self.services.clone(),
        );
        r.register(
            "service_endpoints_healthy",
            "Healthy endpoints of each global service in each cluster serving it",
            self.endpoints.clone(),
        );
        r.register(
            "gateways",
            "This cluster's gateways known to the control plane",
            self.gateways.clone(),
        );
        r.register(
            "gateways_ready",
            "This cluster's gateways connected to the control plane and reporting ready",
            self.gateways_ready.clone(),
        );
        r.register_with_unit(
            "cert_expiry_timestamp",
            "When each certificate expires (unix time): this cluster's root, the control leaf, each gateway's leaf, each peer's newest root",
            Unit::Seconds,
            self.cert_expiry.clone(),
        );
        r.register(
            "dns_queries",
            "DNS responses sent, by response code",
            self.dns.clone(),
        );
        r.register_with_unit(
            "export_propagation",
            "Time from a change of this cluster's exports until every connected peer acknowledged it",
            Unit::Seconds,
            self.propagation.clone(),
        );
    }

    /// Writes a scrape's reading into the families, then encodes them.
    pub(super) fn encode(&self, sample: &Sample, format: Format) -> String {
        let _one = self.scrape.lock().unwrap_or_else(PoisonError::into_inner);
        self.record(sample);
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        format.render(out)
    }

    /// Sets every read series from `sample`.
    fn record(&self, sample: &Sample) {
        self.record_peers(sample);
        self.exports.set(gauge(sample.exports));
        self.exports_version.set(gauge(sample.exports_version));
        self.services.set(gauge(sample.services));
        self.endpoints.clear();
        for e in &sample.endpoints {
            let labels = EndpointLabels {
                namespace: e.namespace.clone(),
                service: e.service.clone(),
                cluster: e.cluster.clone(),
            };
            self.endpoints
                .get_or_create(&labels)
                .set(i64::from(e.healthy));
        }
        self.gateways.set(gauge(sample.gateways));
        self.gateways_ready.set(gauge(sample.gateways_ready));
        self.cert_expiry.clear();
        for cert in &sample.certs {
            let labels = CertLabels {
                cert: cert.kind,
                name: cert.name.clone(),
            };
            self.cert_expiry
                .get_or_create(&labels)
                .set(cert.not_after_s);
        }
        for (rcode, total) in &sample.dns {
            let counter = self.dns.get_or_create(&RcodeLabels { rcode });
            // The DNS server's counts only grow: move ours up to them.
            counter.inc_by(total.saturating_sub(counter.get()));
        }
        if let Some(p) = &sample.process {
            self.process.rss.set(gauge(p.rss_bytes));
            self.process.fds.set(gauge(p.open_fds));
            self.process.start.set(p.start_time_s);
            let cpu = &self.process.cpu;
            cpu.inc_by((p.cpu_s - cpu.get()).max(0.0));
        }
    }

    fn record_peers(&self, sample: &Sample) {
        for family in [
            &self.acked_version,
            &self.sync_pending,
            &self.imports,
            &self.refused,
        ] {
            family.clear();
        }
        self.heartbeat_age.clear();
        self.peer_state.clear();
        for state in STATES {
            let n = sample.peers.iter().filter(|p| p.state == state).count();
            let labels = StateLabels {
                state: state.as_str(),
            };
            self.peers.get_or_create(&labels).set(gauge(n as u64));
        }
        for p in &sample.peers {
            let peer = PeerLabels {
                peer: p.name.clone(),
            };
            for state in STATES {
                let labels = PeerStateLabels {
                    peer: p.name.clone(),
                    state: state.as_str(),
                };
                let on = i64::from(p.state == state);
                self.peer_state.get_or_create(&labels).set(on);
            }
            self.heartbeat_age
                .get_or_create(&peer)
                .set(p.heartbeat_age_s);
            self.acked_version
                .get_or_create(&peer)
                .set(gauge(p.acked_version));
            self.sync_pending.get_or_create(&peer).set(gauge(p.pending));
            self.imports.get_or_create(&peer).set(gauge(p.imports));
            self.refused.get_or_create(&peer).set(gauge(p.refused));
        }
    }
}

/// A count as a gauge value (saturating: no count comes near `i64::MAX`).
fn gauge(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests;
