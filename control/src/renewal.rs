//! Keeps the control plane's own leaf fresh: renewed at two-thirds of its
//! life, in place ([`LiveCert::replace`]), so open connections keep going
//! and new handshakes present the new certificate.

use std::time::Duration;

use fedmesh_proto::identity::{LiveCert, inspect_cert};
use time::OffsetDateTime;
use tracing::{info, warn};

use crate::ca::{ClusterCa, renewal_time};

/// Wait after a failed renewal before trying again.
const RETRY: Duration = Duration::from_secs(60);

/// Renews `cert` from `ca` at two-thirds of its life, forever.
pub async fn keep_renewed(ca: &ClusterCa, cert: LiveCert, lifetime: Duration) {
    loop {
        let current = cert.current();
        let due = current
            .cert
            .first()
            .and_then(|c| inspect_cert(c).ok())
            .map_or_else(OffsetDateTime::now_utc, |i| {
                renewal_time(i.not_before, i.not_after)
            });
        let wait = (due - OffsetDateTime::now_utc()).max(time::Duration::ZERO);
        tokio::time::sleep(wait.unsigned_abs()).await;
        let renewed = ca
            .issue_control_leaf(lifetime)
            .map_err(|e| e.to_string())
            .and_then(|leaf| {
                let key = leaf
                    .key
                    .ok_or_else(|| "the new leaf has no key".to_string())?;
                cert.replace(leaf.chain, key).map_err(|e| e.to_string())
            });
        match renewed {
            Ok(()) => info!(not_after = %cert.not_after(), "control certificate renewed"),
            Err(error) => {
                warn!(%error, "control certificate renewal failed; retrying in 60 s");
                tokio::time::sleep(RETRY).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn leaf_is_replaced_after_two_thirds_of_its_life() {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let ca = ClusterCa::generate("east", "east.fedmesh").unwrap();
        let lifetime = Duration::from_secs(6);
        let leaf = ca.issue_control_leaf(lifetime).unwrap();
        let cert = LiveCert::new(leaf.chain, leaf.key.unwrap()).unwrap();
        let first = cert.not_after();
        let renewer = tokio::spawn({
            let cert = cert.clone();
            async move { keep_renewed(&ca, cert, lifetime).await }
        });
        // Not renewed early: well before two-thirds it is the same leaf.
        tokio::time::sleep(Duration::from_millis(1000)).await;
        assert_eq!(cert.not_after(), first);
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while cert.not_after() == first {
            assert!(std::time::Instant::now() < deadline, "leaf never renewed");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(cert.not_after() > first);
        renewer.abort();
    }
}
