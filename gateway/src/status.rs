//! What this gateway tells its control plane about itself, for `fedctl
//! check`: whether it is ready, the snapshot it serves, the end of its
//! certificate, and each peer gateway as its probes see it.
//!
//! [`StatusSources`] samples the handles the other tasks own (readiness
//! from the admin state, probes from [`crate::health`], the snapshot, the
//! certificate) into a `watch` of [`v1::GatewayStatus`];
//! [`crate::control::ControlLink::report`] sends each change, and the
//! current one every few seconds, on the status stream.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use fedmesh_proto::identity::LiveCert;
use fedmesh_proto::v1;
use tokio::sync::watch;

use crate::admin::AdminState;
use crate::health::Health;
use crate::state::GatewayState;

/// How often the sources are sampled: a probe verdict reaches the control
/// plane within this (plus one round trip).
pub const SAMPLE_EVERY: Duration = Duration::from_millis(500);

/// The handles a status is read from.
#[derive(Debug, Clone)]
pub struct StatusSources {
    /// Readiness, as `/ready` answers.
    pub admin: Arc<AdminState>,
    /// Probe verdicts of peer gateways.
    pub health: Arc<Health>,
    /// The snapshot served.
    pub states: watch::Receiver<Arc<GatewayState>>,
    /// The certificate served.
    pub cert: LiveCert,
}

impl StatusSources {
    /// The status now (without the token and name, which the link adds).
    pub fn sample(&self) -> v1::GatewayStatus {
        let state = self.states.borrow().clone();
        // One entry per peer gateway, however many imports it serves.
        let gateways: BTreeSet<(&str, &str)> = state
            .imports
            .values()
            .flat_map(|i| i.targets.iter())
            .filter(|t| !t.local && !t.gateway.is_empty())
            .map(|t| (t.cluster.as_str(), t.gateway.as_str()))
            .collect();
        let not_after = self.cert.not_after();
        // The root the served leaf chains to: CA rotation waits for it.
        let cert_ca_pin = self
            .cert
            .current()
            .cert
            .get(1..)
            .and_then(<[_]>::last)
            .and_then(|ca| fedmesh_proto::identity::spki_sha256(ca).ok())
            .map(|pin| pin.to_vec())
            .unwrap_or_default();
        v1::GatewayStatus {
            cert_ca_pin,
            ready: self.admin.ready.load(Ordering::Relaxed),
            snapshot_version: state.version,
            cert_not_after_unix_ms: i64::try_from(not_after.unix_timestamp_nanos() / 1_000_000)
                .unwrap_or(i64::MAX),
            probes: gateways
                .into_iter()
                .map(|(cluster, address)| v1::PeerGatewayProbe {
                    cluster: cluster.to_string(),
                    address: address.to_string(),
                    up: self.health.gateway_up(address),
                })
                .collect(),
            ..Default::default()
        }
    }

    /// Samples forever, publishing each change.
    pub async fn publish(self, out: watch::Sender<v1::GatewayStatus>) {
        let mut tick = tokio::time::interval(SAMPLE_EVERY);
        loop {
            tick.tick().await;
            let next = self.sample();
            out.send_if_modified(|current| {
                let changed = *current != next;
                if changed {
                    *current = next;
                }
                changed
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::{Affinity, Import, Locality, Target};
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};

    fn cert() -> LiveCert {
        let key = rcgen::KeyPair::generate().expect("test key generation");
        let params = rcgen::CertificateParams::new(vec!["gw-1".to_string()])
            .expect("test certificate parameters");
        let leaf = params.self_signed(&key).expect("test self-signed leaf");
        let chain = vec![CertificateDer::from(leaf.der().to_vec())];
        let key = PrivateKeyDer::Pkcs8(key.serialize_der().into());
        LiveCert::new(chain, key).expect("a matching test key and leaf")
    }

    fn target(cluster: &str, gateway: &str, local: bool) -> Target {
        Target {
            cluster: cluster.into(),
            locality: Locality::default(),
            healthy: 1,
            total: 1,
            gateway: gateway.into(),
            local,
            draining: false,
        }
    }

    fn import(name: &str, targets: Vec<Target>) -> Import {
        Import {
            key: ("demo".into(), name.into()),
            vip: std::net::Ipv4Addr::new(127, 77, 0, 1),
            ports: vec![],
            affinity: Affinity::Local,
            weights: Default::default(),
            targets,
            pinned: Default::default(),
            listen_ports: Default::default(),
        }
    }

    #[test]
    fn each_peer_gateway_is_reported_once_with_its_probe_verdict() {
        let config = fedmesh_proto::config::Config::from_yaml(
            "cluster: east\nlocality: { region: r, zone: z }\ndataDir: ./d\n",
            std::path::Path::new("fedmesh.yaml"),
        )
        .expect("a minimal config");
        let health = Arc::new(Health::new(&config.gateway));
        let west = "127.0.2.1:15443";
        for _ in 0..config.gateway.probe_failures {
            health.probed(west, false);
        }
        let mut state = GatewayState {
            version: 7,
            ..GatewayState::default()
        };
        for name in ["hello", "world"] {
            let targets = vec![
                target("east", "", true),
                target("west", west, false),
                target("eu", "127.0.3.1:15443", false),
            ];
            state
                .imports
                .insert(("demo".into(), name.into()), import(name, targets));
        }
        let (_tx, states) = watch::channel(Arc::new(state));
        let admin = Arc::new(AdminState::default());
        admin.ready.store(true, Ordering::Relaxed);
        let sources = StatusSources {
            admin,
            health,
            states,
            cert: cert(),
        };
        let s = sources.sample();
        assert!(s.ready);
        assert_eq!(s.snapshot_version, 7);
        assert!(s.cert_not_after_unix_ms > 0);
        let probes: Vec<(&str, bool)> = s
            .probes
            .iter()
            .map(|p| (p.cluster.as_str(), p.up))
            .collect();
        assert_eq!(probes, [("eu", true), ("west", false)]);
    }
}
