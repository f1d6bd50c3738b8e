//! Active probes of peer gateways: one task per gateway, so that a slow
//! or blackholed gateway's probes never hold back another's (see the
//! parent module for the timeouts and the up/down rule).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tokio::task::{AbortHandle, JoinSet};
use tracing::{info, warn};

use super::{Health, Transition};
use crate::metrics::Metrics;
use crate::state::GatewayState;

/// Probes every peer gateway of the current state, forever: one task per
/// gateway, so that a slow or blackholed gateway's probes never hold back
/// another's.
pub async fn probe_loop(
    health: Arc<Health>,
    metrics: Arc<Metrics>,
    mut state: watch::Receiver<Arc<GatewayState>>,
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
    health: Arc<Health>,
    metrics: Arc<Metrics>,
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
