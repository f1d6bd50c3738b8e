//! Health of remote targets (DESIGN.md, Gateway: Health).
//!
//! - **Active probes**: every `probeInterval`, a TCP connect to each peer
//!   gateway, each gateway probed by its own task. A probe may take a few
//!   times the gateway's smoothed connect time ([`PROBE_RTT_FACTOR`]),
//!   never less than `probeInterval` and never more than `connectTimeout`
//!   (what egress itself waits), and `connectTimeout` until the gateway
//!   has answered once. So a nearby blackholed gateway (no RST, packets
//!   dropped) fails its probes within an interval each, as surely as a
//!   closed port, while one a 300 ms round trip away is slow, not down:
//!   a fixed `probeInterval` bound would fail every probe of a gateway
//!   farther away than that and route around a cluster that can serve.
//!   `probeFailures` consecutive failures mark it down; as many consecutive
//!   successes bring it back (failback without flapping).
//! - **Passive outlier detection** ([`outlier`]), per endpoint and per
//!   cluster: an endpoint whose dials fail is ejected on its own (at the
//!   ingress, and for local endpoints at the egress), so one bad endpoint
//!   never looks like a dead cluster; a cluster is ejected only when its
//!   ingress answers that it has nothing to serve with.
//!
//! Local endpoints' readiness comes from the registry (the service table);
//! ejection comes on top of it.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use fedmesh_proto::config::GatewayConfig;

use crate::model::Target;

pub mod outlier;
pub mod probes;

pub use outlier::Outliers;

/// How many smoothed connect times a probe may take before it fails (as
/// TCP's retransmission timeout allows for variance, RFC 6298 §2).
pub const PROBE_RTT_FACTOR: u32 = 4;

/// One peer gateway's probe record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Probe {
    up: bool,
    fails: u32,
    successes: u32,
    /// Smoothed round trip of its successful probes.
    srtt: Option<Duration>,
}

impl Default for Probe {
    fn default() -> Self {
        // Optimistic: a new gateway is tried until probes say otherwise.
        Self {
            up: true,
            fails: 0,
            successes: 0,
            srtt: None,
        }
    }
}

/// Health of every target and endpoint, shared by egress, ingress and the
/// prober.
#[derive(Debug)]
pub struct Health {
    threshold: u32,
    /// `gateway.maxClaimedEndpoints`: how much of a peer's claimed
    /// endpoint count target choice believes.
    max_claimed_endpoints: u32,
    probe_interval: Duration,
    connect_timeout: Duration,
    probes: Mutex<HashMap<String, Probe>>,
    clusters: Outliers<String>,
    endpoints: Outliers<SocketAddr>,
}

/// What changed with a probe result, for logs and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    /// No change.
    None,
    /// The gateway went down.
    Down,
    /// The gateway came back.
    Up,
}

impl Health {
    /// Health with the gateway's probe and outlier settings.
    pub fn new(config: &GatewayConfig) -> Self {
        Self {
            threshold: config.probe_failures.max(1),
            max_claimed_endpoints: config.max_claimed_endpoints.max(1),
            probe_interval: config.probe_interval,
            connect_timeout: config.connect_timeout,
            probes: Mutex::new(HashMap::new()),
            clusters: Outliers::new(config.outlier.clone()),
            endpoints: Outliers::new(config.outlier.clone()),
        }
    }

    /// The most endpoints a peer is believed to have when balancing
    /// (`gateway.maxClaimedEndpoints`, at least 1).
    pub fn max_claimed_endpoints(&self) -> u32 {
        self.max_claimed_endpoints
    }

    /// Whether egress may try `target` now.
    pub fn usable(&self, target: &Target) -> bool {
        target.local
            || (self.gateway_up(&target.gateway) && !self.ejected(&target.cluster, Instant::now()))
    }

    /// Whether the peer gateway at `addr` probes up.
    pub fn gateway_up(&self, addr: &str) -> bool {
        lock(&self.probes).get(addr).is_none_or(|p| p.up)
    }

    /// Records a probe of the gateway at `addr`.
    pub fn probed(&self, addr: &str, ok: bool) -> Transition {
        let mut probes = lock(&self.probes);
        let p = probes.entry(addr.to_string()).or_default();
        if ok {
            p.fails = 0;
            p.successes = p.successes.saturating_add(1);
            if !p.up && p.successes >= self.threshold {
                p.up = true;
                return Transition::Up;
            }
        } else {
            p.successes = 0;
            p.fails = p.fails.saturating_add(1);
            if p.up && p.fails >= self.threshold {
                p.up = false;
                return Transition::Down;
            }
        }
        Transition::None
    }

    /// Records that a probe of the gateway at `addr` answered in `took`,
    /// for its smoothed round trip (RFC 6298 §2.3: 7/8 old, 1/8 new).
    pub fn connected_in(&self, addr: &str, took: Duration) {
        let mut probes = lock(&self.probes);
        let p = probes.entry(addr.to_string()).or_default();
        p.srtt = Some(p.srtt.map_or(took, |srtt| (srtt * 7 + took) / 8));
    }

    /// The smoothed round trip to the gateway at `addr`, once measured.
    pub fn rtt(&self, addr: &str) -> Option<Duration> {
        lock(&self.probes).get(addr).and_then(|p| p.srtt)
    }

    /// How long the next probe of the gateway at `addr` may take (see the
    /// module docs).
    pub fn probe_timeout(&self, addr: &str) -> Duration {
        let most = self.connect_timeout.max(self.probe_interval);
        match lock(&self.probes).get(addr).and_then(|p| p.srtt) {
            None => most,
            Some(srtt) => srtt
                .saturating_mul(PROBE_RTT_FACTOR)
                .clamp(self.probe_interval, most),
        }
    }

    /// Forgets gateways no longer in any target.
    pub fn retain_gateways(&self, keep: &HashSet<String>) {
        lock(&self.probes).retain(|addr, _| keep.contains(addr));
    }

    /// Records an attempt's outcome for `cluster`'s outlier record; only
    /// attempts its ingress answered count (`AttemptError::ejects_cluster`).
    /// Returns true when it ejected the cluster. `remote_clusters` is how
    /// many remote clusters serve the service, for the max-ejected share.
    pub fn connect_result(
        &self,
        cluster: &str,
        ok: bool,
        remote_clusters: usize,
        now: Instant,
    ) -> bool {
        let ejected = self.clusters.ejected_count(now);
        self.clusters
            .record(&cluster.to_string(), ok, remote_clusters, ejected, now)
    }

    /// Whether `cluster` is ejected at `now`.
    pub fn ejected(&self, cluster: &str, now: Instant) -> bool {
        self.clusters.ejected(&cluster.to_string(), now)
    }

    /// Records a dial of the endpoint `addr`, one of `group` (the
    /// service's endpoints for the port); returns true when it ejected it.
    pub fn endpoint_result(
        &self,
        addr: SocketAddr,
        ok: bool,
        group: &[SocketAddr],
        now: Instant,
    ) -> bool {
        let ejected = self.endpoints.ejected_among(group, now);
        self.endpoints.record(&addr, ok, group.len(), ejected, now)
    }

    /// Whether the endpoint `addr` is ejected at `now`.
    pub fn endpoint_ejected(&self, addr: &SocketAddr, now: Instant) -> bool {
        self.endpoints.ejected(addr, now)
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Plain counters: a poisoned lock is still consistent.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests;
