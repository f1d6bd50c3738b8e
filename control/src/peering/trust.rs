//! Trust bundles on the peering stream (CA rotation by overlap, DESIGN.md
//! Operations): send this cluster's published roots when they change (and
//! after Hello while a rotation runs), store a peer's roots and answer with
//! a [`v1::TrustBundleAck`], and hand a peer's ack to the rotation.
//!
//! A peer of an earlier release stores the bundle but never acks; the
//! rotation then waits until `fedctl ca rotate --force`.

use fedmesh_proto::v1::{self, sync_message::Msg};
use rustls_pki_types::CertificateDer;
use tracing::{debug, info, warn};

use super::handles::PeeringHandles;
use super::info::parse_roots;
use crate::ca::rotation::{CaView, roots_digest};

/// The bundle of `view` as a sync message.
pub fn bundle(view: &CaView) -> Msg {
    Msg::Trust(v1::TrustBundleUpdate {
        ca_roots_pem: view.roots_pem.clone(),
    })
}

/// The peer's roots, checked; the ack to send once they are stored.
///
/// # Errors
/// When a root does not parse (the session ends: the peer is broken).
pub fn received(update: &v1::TrustBundleUpdate) -> Result<Msg, String> {
    let roots: Vec<CertificateDer<'static>> =
        parse_roots(&update.ca_roots_pem).map_err(|e| format!("bad trust bundle update: {e}"))?;
    if roots.is_empty() {
        return Err("bad trust bundle update: no roots".into());
    }
    Ok(Msg::TrustAck(v1::TrustBundleAck {
        roots_digest: roots_digest(&roots),
    }))
}

/// A peer acknowledged a bundle: record it in the rotation (a store
/// write, so off the async threads).
pub async fn acked(h: &PeeringHandles, peer: &str, ack: v1::TrustBundleAck) {
    let ca = h.ca.clone();
    let name = peer.to_string();
    let digest = ack.roots_digest;
    match tokio::task::spawn_blocking(move || ca.acked(&name, &digest)).await {
        Ok(Ok(true)) => info!(%peer, "peer acknowledged this cluster's CA roots"),
        Ok(Ok(false)) => debug!(%peer, "ignoring an ack of an earlier trust bundle"),
        Ok(Err(error)) => warn!(%peer, %error, "cannot record the peer's ack"),
        Err(error) => warn!(%peer, %error, "cannot record the peer's ack"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ca::ClusterCa;

    #[test]
    fn a_bundle_is_acked_by_the_digest_of_its_roots() {
        let a = ClusterCa::generate("east", "east.fedmesh").unwrap();
        let b = ClusterCa::generate("east", "east.fedmesh").unwrap();
        let update = v1::TrustBundleUpdate {
            ca_roots_pem: vec![b.cert_pem().into(), a.cert_pem().into()],
        };
        let Ok(Msg::TrustAck(ack)) = received(&update) else {
            panic!("no ack");
        };
        let roots = [a.cert_der().clone(), b.cert_der().clone()];
        assert_eq!(ack.roots_digest, roots_digest(&roots));
    }

    #[tokio::test]
    async fn a_rotation_reaches_a_connected_peer_which_trusts_and_acks_it() {
        use crate::ca::rotation::Phase;
        use crate::peering::testkit::{eventually, side, wire};
        use crate::store::Role;
        let slow = std::time::Duration::from_secs(30);
        let (east, west) = (side("east", slow), side("west", slow));
        east.add_peer(&west, Role::Acceptor);
        west.add_peer(&east, Role::Dialer);
        let (_e, _w) = wire(&east, &west);
        eventually("connected", || {
            west.state("east") == Some(crate::model::LinkState::Connected)
        })
        .await;
        east.h.ca.start(false, false).unwrap();
        let view = east.h.ca.view();
        assert_eq!(view.phase, Phase::Overlap);
        eventually("west acked both roots", || {
            east.h.ca.record().is_some_and(|r| r.acked.contains("west"))
        })
        .await;
        // Acked only once stored: west's record and trust hold both roots.
        let stored = west.h.store.peers().unwrap();
        assert_eq!(stored[0].roots_pem, view.roots_pem);
        let trusted = west.h.peers.trust().snapshot();
        assert_eq!(trusted.get("east").map(|p| p.roots.len()), Some(2));
    }

    #[tokio::test]
    async fn a_peer_connecting_during_a_rotation_gets_both_roots_and_acks() {
        use crate::peering::testkit::{eventually, side, wire};
        use crate::store::Role;
        let slow = std::time::Duration::from_secs(30);
        let (east, west) = (side("east", slow), side("west", slow));
        east.add_peer(&west, Role::Acceptor);
        west.add_peer(&east, Role::Dialer);
        east.h.ca.start(false, false).unwrap();
        let (_e, _w) = wire(&east, &west);
        eventually("west acked", || {
            east.h.ca.record().is_some_and(|r| r.acked.contains("west"))
        })
        .await;
        assert_eq!(west.h.store.peers().unwrap()[0].roots_pem.len(), 2);
    }

    #[test]
    fn a_bundle_without_good_roots_is_refused() {
        let empty = v1::TrustBundleUpdate::default();
        assert!(received(&empty).is_err());
        let junk = v1::TrustBundleUpdate {
            ca_roots_pem: vec!["junk".into()],
        };
        assert!(received(&junk).unwrap_err().contains("bad trust bundle"));
    }
}
