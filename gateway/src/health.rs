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
//! - **Passive outlier detection**: `outlier.consecutiveFailures` failed
//!   connects in a row eject a cluster for `baseEjection`, doubling with
//!   each ejection up to `maxEjection`; at most `maxEjectedPercent` of the
//!   remote clusters are ejected at once.
//!
//! Local endpoints' health comes from the registry (the service table).

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use fedmesh_proto::config::{GatewayConfig, OutlierConfig};
use tokio::sync::watch;
use tokio::task::{AbortHandle, JoinSet};
use tracing::{info, warn};

use crate::state::{GatewayState, Target};

/// How many smoothed connect times a probe may take before it fails (as
/// TCP's retransmission timeout allows for variance, RFC 6298 §2).
pub const PROBE_RTT_FACTOR: u32 = 4;

/// One peer gateway's probe record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Probe {
    up: bool,
    fails: u32,
    successes: u32,
    /// Smoothed connect time of its successful probes.
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

/// One cluster's outlier record.
#[derive(Debug, Clone, Copy, Default)]
struct Outlier {
    consecutive: u32,
    ejections: u32,
    ejected_until: Option<Instant>,
}

/// Health of every remote target, shared by egress and the prober.
#[derive(Debug)]
pub struct Health {
    threshold: u32,
    probe_interval: Duration,
    connect_timeout: Duration,
    outlier: OutlierConfig,
    probes: Mutex<HashMap<String, Probe>>,
    outliers: Mutex<HashMap<String, Outlier>>,
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
            probe_interval: config.probe_interval,
            connect_timeout: config.connect_timeout,
            outlier: config.outlier.clone(),
            probes: Mutex::new(HashMap::new()),
            outliers: Mutex::new(HashMap::new()),
        }
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

    /// Records that a probe of the gateway at `addr` connected in `took`,
    /// for its smoothed connect time (RFC 6298 §2.3: 7/8 old, 1/8 new).
    pub fn connected_in(&self, addr: &str, took: Duration) {
        let mut probes = lock(&self.probes);
        let p = probes.entry(addr.to_string()).or_default();
        p.srtt = Some(p.srtt.map_or(took, |srtt| (srtt * 7 + took) / 8));
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

    /// Records a connect to `cluster`; returns true when it ejected it.
    /// `remote_clusters` is how many remote clusters there are, for the
    /// max-ejected share.
    pub fn connect_result(
        &self,
        cluster: &str,
        ok: bool,
        remote_clusters: usize,
        now: Instant,
    ) -> bool {
        let mut outliers = lock(&self.outliers);
        let ejected_now = outliers
            .values()
            .filter(|o| o.ejected_until.is_some_and(|t| t > now))
            .count();
        let o = outliers.entry(cluster.to_string()).or_default();
        if ok {
            o.consecutive = 0;
            if o.ejected_until.is_some_and(|t| t <= now) {
                // Served again after its ejection ran out: forgiven.
                o.ejected_until = None;
                o.ejections = 0;
            }
            return false;
        }
        o.consecutive = o.consecutive.saturating_add(1);
        let already = o.ejected_until.is_some_and(|t| t > now);
        if already || o.consecutive < self.outlier.consecutive_failures.max(1) {
            return false;
        }
        let cap = remote_clusters * usize::from(self.outlier.max_ejected_percent) / 100;
        if ejected_now + 1 > cap {
            return false;
        }
        let factor = 1u32 << o.ejections.min(16);
        let duration = self
            .outlier
            .base_ejection
            .saturating_mul(factor)
            .min(self.outlier.max_ejection);
        o.ejected_until = Some(now + duration);
        o.ejections = o.ejections.saturating_add(1);
        o.consecutive = 0;
        true
    }

    /// Whether `cluster` is ejected at `now`.
    pub fn ejected(&self, cluster: &str, now: Instant) -> bool {
        lock(&self.outliers)
            .get(cluster)
            .is_some_and(|o| o.ejected_until.is_some_and(|t| t > now))
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Plain counters: a poisoned lock is still consistent.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Probes every peer gateway of the current state, forever: one task per
/// gateway, so that a slow or blackholed gateway's probes never hold back
/// another's.
pub async fn probe_loop(
    health: std::sync::Arc<Health>,
    metrics: std::sync::Arc<crate::metrics::Metrics>,
    mut state: watch::Receiver<std::sync::Arc<GatewayState>>,
    interval: Duration,
) {
    // Dropping the set (when this task ends or is aborted) stops them all.
    let mut probers = JoinSet::new();
    let mut running: HashMap<String, AbortHandle> = HashMap::new();
    loop {
        let current = state.borrow_and_update().clone();
        let gateways: HashSet<String> = current
            .imports
            .values()
            .flat_map(|i| i.targets.iter())
            .filter(|t| !t.local)
            .map(|t| t.gateway.clone())
            .collect();
        running.retain(|addr, task| {
            let keep = gateways.contains(addr);
            if !keep {
                task.abort();
            }
            keep
        });
        health.retain_gateways(&gateways);
        for addr in gateways {
            if let std::collections::hash_map::Entry::Vacant(slot) = running.entry(addr) {
                let addr = slot.key().clone();
                slot.insert(probers.spawn(probe_gateway(
                    health.clone(),
                    metrics.clone(),
                    addr,
                    interval,
                )));
            }
        }
        // Reap the stopped ones.
        while probers.try_join_next().is_some() {}
        if state.changed().await.is_err() {
            return;
        }
    }
}

/// Probes the gateway at `addr` every `interval` (or back to back while
/// probes take longer), forever.
async fn probe_gateway(
    health: std::sync::Arc<Health>,
    metrics: std::sync::Arc<crate::metrics::Metrics>,
    addr: String,
    interval: Duration,
) {
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let started = Instant::now();
        let connect = tokio::net::TcpStream::connect(&addr);
        let ok = matches!(
            tokio::time::timeout(health.probe_timeout(&addr), connect).await,
            Ok(Ok(_))
        );
        if ok {
            health.connected_in(&addr, started.elapsed());
        }
        metrics.probe(&addr, ok);
        match health.probed(&addr, ok) {
            Transition::Down => {
                warn!(gateway = %addr, "peer gateway failed its probes; routing around it")
            }
            Transition::Up => {
                info!(gateway = %addr, "peer gateway passes its probes again")
            }
            Transition::None => {}
        }
    }
}

#[cfg(test)]
mod tests;
