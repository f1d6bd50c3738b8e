//! Health of remote targets (DESIGN.md, Gateway: Health).
//!
//! - **Active probes**: every `probeInterval`, a TCP connect to each peer
//!   gateway, bounded by the interval itself, so a blackholed gateway (no
//!   RST, packets dropped) fails its probes as surely as a closed port.
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
use tracing::{info, warn};

use crate::state::{GatewayState, Target};

/// One peer gateway's probe record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Probe {
    up: bool,
    fails: u32,
    successes: u32,
}

impl Default for Probe {
    fn default() -> Self {
        // Optimistic: a new gateway is tried until probes say otherwise.
        Self {
            up: true,
            fails: 0,
            successes: 0,
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

/// Probes every peer gateway of the current state, forever.
pub async fn probe_loop(
    health: std::sync::Arc<Health>,
    metrics: std::sync::Arc<crate::metrics::Metrics>,
    mut state: watch::Receiver<std::sync::Arc<GatewayState>>,
    interval: Duration,
) {
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let current = state.borrow_and_update().clone();
        let gateways: HashSet<String> = current
            .imports
            .values()
            .flat_map(|i| i.targets.iter())
            .filter(|t| !t.local)
            .map(|t| t.gateway.clone())
            .collect();
        health.retain_gateways(&gateways);
        let probes = gateways.into_iter().map(|addr| {
            let health = health.clone();
            let metrics = metrics.clone();
            async move {
                let ok = matches!(
                    tokio::time::timeout(interval, tokio::net::TcpStream::connect(&addr)).await,
                    Ok(Ok(_))
                );
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
        });
        let all: Vec<_> = probes.map(tokio::spawn).collect();
        for p in all {
            let _ = p.await;
        }
    }
}

#[cfg(test)]
mod tests;
