//! Active probes of peer gateways: one task per gateway, so that a slow
//! or blackholed gateway's probes never hold back another's (see the
//! parent module for the timeouts and the up/down rule). A probe is an
//! HTTP/2 PING on the gateway's pool ([`crate::pools`]): while the pool is
//! up no probe opens a TCP or TLS connection of its own, and the round
//! trip it measures is the one client streams see.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::{AbortHandle, JoinSet};
use tracing::{debug, info, warn};

use super::{Health, Transition};
use crate::metrics::Metrics;
use crate::pools::Pools;
use crate::state::GatewayState;
use crate::transport::PeerPool;

/// Probes every peer gateway of the current state, forever: one task per
/// gateway, so that a slow or blackholed gateway's probes never hold back
/// another's.
pub async fn probe_loop(
    health: Arc<Health>,
    metrics: Arc<Metrics>,
    pools: Arc<Pools>,
    mut state: watch::Receiver<Arc<GatewayState>>,
    interval: Duration,
) {
    // Dropping the set (when this task ends or is aborted) stops them all.
    let mut probers = JoinSet::new();
    let mut running: HashMap<String, (String, AbortHandle)> = HashMap::new();
    loop {
        let current = state.borrow_and_update().clone();
        // Gateway address -> its cluster.
        let gateways: HashMap<String, String> = current
            .imports
            .values()
            .flat_map(|i| i.targets.iter())
            .filter(|t| !t.local)
            .map(|t| (t.gateway.clone(), t.cluster.clone()))
            .collect();
        running.retain(|addr, (cluster, task)| {
            let keep = gateways.get(addr) == Some(cluster);
            if !keep {
                task.abort();
            }
            keep
        });
        let addresses: HashSet<String> = gateways.keys().cloned().collect();
        health.retain_gateways(&addresses);
        pools.retain(&addresses);
        for (addr, cluster) in gateways {
            if running.contains_key(&addr) {
                continue;
            }
            let pool = pools.get(&cluster, &addr);
            let task = probers.spawn(probe_gateway(
                health.clone(),
                metrics.clone(),
                pool,
                interval,
            ));
            running.insert(addr, (cluster, task));
        }
        // Reap the stopped ones.
        while probers.try_join_next().is_some() {}
        if state.changed().await.is_err() {
            return;
        }
    }
}

/// PINGs the gateway of `pool` every `interval` (or back to back while
/// probes take longer), forever.
async fn probe_gateway(
    health: Arc<Health>,
    metrics: Arc<Metrics>,
    pool: Arc<PeerPool>,
    interval: Duration,
) {
    let addr = pool.addr().to_string();
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let timeout = health.probe_timeout(&addr);
        let ok = match tokio::time::timeout(timeout, pool.ping(timeout)).await {
            Ok(Ok(rtt)) => {
                health.connected_in(&addr, rtt);
                true
            }
            Ok(Err(error)) => {
                debug!(gateway = %addr, %error, "probe failed");
                false
            }
            Err(_) => false,
        };
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
