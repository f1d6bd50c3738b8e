//! Keeps the control plane's own leaf fresh: renewed at two-thirds of its
//! life, and at once when another root starts signing (CA rotation), in
//! place ([`LiveCert::replace`]), so open connections keep going and new
//! handshakes present the new certificate.

use std::sync::Arc;
use std::time::Duration;

use fedmesh_proto::identity::{LiveCert, inspect_cert};
use time::OffsetDateTime;
use tokio::sync::watch;
use tracing::{info, warn};

use crate::ca::rotation::{CaView, issuer_pin};
use crate::ca::{ClusterCa, renewal_time};

/// Wait after a failed renewal before trying again.
const RETRY: Duration = Duration::from_secs(60);

/// Renews `cert` from the signing root of `ca` at two-thirds of its life,
/// or as soon as the signer is not the root that issued it, forever.
pub async fn keep_renewed(
    mut ca: watch::Receiver<Arc<CaView>>,
    cert: LiveCert,
    lifetime: Duration,
) {
    loop {
        let current = cert.current();
        let signer = ca.borrow_and_update().signer.clone();
        if issuer_pin(&current.cert) == Some(signer.pin()) {
            let due = current
                .cert
                .first()
                .and_then(|c| inspect_cert(c).ok())
                .map_or_else(OffsetDateTime::now_utc, |i| {
                    renewal_time(i.not_before, i.not_after)
                });
            let wait = (due - OffsetDateTime::now_utc()).max(time::Duration::ZERO);
            tokio::select! {
                () = tokio::time::sleep(wait.unsigned_abs()) => {}
                // The signer may have changed: look again before renewing.
                changed = ca.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    continue;
                }
            }
        }
        match renew(&signer, &cert, lifetime) {
            Ok(()) => info!(not_after = %cert.not_after(), "control certificate renewed"),
            Err(error) => {
                warn!(%error, "control certificate renewal failed; retrying in 60 s");
                tokio::time::sleep(RETRY).await;
            }
        }
    }
}

fn renew(ca: &ClusterCa, cert: &LiveCert, lifetime: Duration) -> Result<(), String> {
    let leaf = ca.issue_control_leaf(lifetime).map_err(|e| e.to_string())?;
    let key = leaf
        .key
        .ok_or_else(|| "the new leaf has no key".to_string())?;
    cert.replace(leaf.chain, key).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ca::rotation::CaRotation;
    use crate::store::Store;

    fn rotation(dir: &tempfile::TempDir) -> Arc<CaRotation> {
        let store = Arc::new(Store::open(dir.path()).unwrap());
        let ca = ClusterCa::generate("east", "east.fedmesh").unwrap();
        Arc::new(CaRotation::load(store, ca, "east", false).unwrap())
    }

    async fn wait_until(what: &str, done: impl Fn() -> bool) {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while !done() {
            assert!(std::time::Instant::now() < deadline, "{what}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    #[tokio::test]
    async fn leaf_is_replaced_after_two_thirds_of_its_life() {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let dir = tempfile::tempdir().unwrap();
        let ca = rotation(&dir);
        let lifetime = Duration::from_secs(6);
        let leaf = ca.signer().issue_control_leaf(lifetime).unwrap();
        let cert = LiveCert::new(leaf.chain, leaf.key.unwrap()).unwrap();
        let first = cert.not_after();
        let renewer = tokio::spawn(keep_renewed(ca.subscribe(), cert.clone(), lifetime));
        // Not renewed early: well before two-thirds it is the same leaf.
        tokio::time::sleep(Duration::from_millis(1000)).await;
        assert_eq!(cert.not_after(), first);
        wait_until("leaf never renewed", || cert.not_after() != first).await;
        assert!(cert.not_after() > first);
        renewer.abort();
    }

    #[tokio::test]
    async fn a_new_signing_root_reissues_the_leaf_at_once() {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let dir = tempfile::tempdir().unwrap();
        let ca = rotation(&dir);
        let leaf = ca
            .signer()
            .issue_control_leaf(crate::ca::LEAF_LIFETIME)
            .unwrap();
        let cert = LiveCert::new(leaf.chain, leaf.key.unwrap()).unwrap();
        let old = ca.signer().pin();
        let renewer = tokio::spawn(keep_renewed(
            ca.subscribe(),
            cert.clone(),
            crate::ca::LEAF_LIFETIME,
        ));
        ca.start(false, true).unwrap();
        // In overlap the old root still signs: same leaf.
        assert_eq!(issuer_pin(&cert.current().cert), Some(old));
        ca.issue(&Default::default(), Duration::ZERO).unwrap();
        let new = ca.signer().pin();
        wait_until("leaf not reissued from the new root", || {
            issuer_pin(&cert.current().cert) == Some(new)
        })
        .await;
        renewer.abort();
    }
}
