//! Wires the CA rotation into the running control plane: what a step is
//! checked against (every peer; every local gateway with an open stream and
//! the root its leaf chains to, as it reports), and the task that takes
//! the steps `--auto` and the acknowledgements allow.

use std::sync::Arc;

use crate::api::admin::{CaAdmin, FleetSource};
use crate::api::gateways::GatewayRegistry;
use crate::ca::rotation::{self, CaRotation, Fleet};
use crate::clock;
use crate::peering::PeerSet;

/// Starts the rotation driver and returns the admin side of it.
pub(super) fn start(
    rotation: &Arc<CaRotation>,
    peers: &Arc<PeerSet>,
    gateways: &Arc<GatewayRegistry>,
) -> CaAdmin {
    let fleet = fleet_source(peers.clone(), gateways.clone());
    let source = fleet.clone();
    tokio::spawn(rotation::drive(rotation.clone(), move || source()));
    CaAdmin {
        rotation: rotation.clone(),
        fleet,
    }
}

fn fleet_source(peers: Arc<PeerSet>, gateways: Arc<GatewayRegistry>) -> FleetSource {
    Arc::new(move || Fleet {
        peers: peers.views().into_iter().map(|v| v.record.name).collect(),
        gateways: gateways
            .views("", clock::now_unix_ms())
            .into_iter()
            // A gateway gone away serves nothing; one that comes back gets a
            // leaf of the signing root first.
            .filter(|g| g.watches > 0 || g.reporting)
            .map(|g| {
                let pin = g
                    .status
                    .and_then(|(s, _)| <[u8; 32]>::try_from(s.cert_ca_pin.as_slice()).ok());
                (g.name, pin)
            })
            .collect(),
    })
}
