//! `fedmesh_control_export_propagation_seconds`: the time from a change of
//! this cluster's exports until every connected peer acknowledged what
//! it may see of it.
//!
//! A change starts the clock (a second change before the first is fully
//! acked keeps the first start: the histogram measures how long peers
//! lagged behind the registry). While a change is pending the task checks
//! every [`CHECK_EVERY`] whether each connected peer's acked view equals
//! its current view; when all do, it observes the elapsed time. With no
//! connected peer, a change propagates to nobody and is not observed. When
//! nothing is pending the task only waits for the next change, so it
//! costs nothing in a quiet federation.

use std::time::{Duration, Instant};

use prometheus_client::metrics::histogram::Histogram;

use super::WebInputs;
use crate::exports::diff;
use crate::model::LinkState;

/// How often a pending change is checked (the histogram's resolution).
const CHECK_EVERY: Duration = Duration::from_millis(20);

/// A change still pending after this long is dropped unobserved (a peer
/// that never acks is what the sync-lag series show).
const GIVE_UP_AFTER: Duration = Duration::from_secs(300);

/// Runs until the exports channel closes (shutdown).
pub(super) async fn run(inputs: WebInputs, histogram: Histogram) {
    let mut exports = inputs.exports.clone();
    loop {
        if exports.changed().await.is_err() {
            return;
        }
        let started = Instant::now();
        // Bounded: ends when all peers ack, or after GIVE_UP_AFTER.
        while started.elapsed() < GIVE_UP_AFTER {
            match in_sync(&inputs) {
                Some(true) => {
                    histogram.observe(started.elapsed().as_secs_f64());
                    break;
                }
                None => break,
                Some(false) => tokio::time::sleep(CHECK_EVERY).await,
            }
        }
        // Changes that came while waiting were covered by this clock.
        exports.borrow_and_update();
    }
}

/// Whether every connected peer acked its current view; `None` when no
/// peer is connected.
fn in_sync(inputs: &WebInputs) -> Option<bool> {
    let state = inputs.exports.borrow().clone();
    let mut connected = 0;
    for view in inputs.peers.views() {
        if view.state != LinkState::Connected {
            continue;
        }
        connected += 1;
        let name = &view.record.name;
        let Some((pos, acked)) = inputs.acked.get(name) else {
            return Some(false);
        };
        let (upserts, removals) = diff(&acked, &state.view_for(name));
        if pos.epoch != state.epoch || !upserts.is_empty() || !removals.is_empty() {
            return Some(false);
        }
    }
    (connected > 0).then_some(true)
}
