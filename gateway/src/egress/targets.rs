//! Stage 3, target choice: the targets to try for one connection, best
//! first ([`crate::select::order`]: locality, affinity, weights, capacity),
//! only usable ones (a remote target whose gateway probes down or whose
//! cluster is ejected is left out). A pinned listener keeps only its
//! cluster: no failover (DESIGN.md, DNS).

use crate::health::Health;
use crate::select::{Rng, order};
use crate::state::{GatewayState, Import, Listener, Target};

/// The targets to try for a connection on `listener`, best first.
pub(super) fn choose<'a>(
    health: &Health,
    state: &GatewayState,
    import: &'a Import,
    listener: &Listener,
    rng: &mut Rng,
) -> Vec<&'a Target> {
    // Usable endpoints now: all a usable target's healthy ones, none of an
    // unusable one (spill-over by capacity weighs levels by this).
    let healthy_now = |t: &Target| if health.usable(t) { t.healthy } else { 0 };
    let mut targets = order(import, &state.locality, healthy_now, rng);
    if let Some(cluster) = &listener.pinned {
        targets.retain(|t| t.cluster == *cluster);
    }
    targets
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::time::Instant;

    use super::*;
    use crate::state::{Affinity, Locality};

    fn target(cluster: &str, local: bool) -> Target {
        Target {
            cluster: cluster.into(),
            locality: Locality::default(),
            healthy: 1,
            total: 1,
            gateway: if local {
                String::new()
            } else {
                format!("{cluster}:15443")
            },
            local,
        }
    }

    fn import() -> Import {
        Import {
            key: ("demo".into(), "hello".into()),
            vip: "127.77.0.1".parse().unwrap(),
            ports: vec![("http".into(), 8080)],
            affinity: Affinity::Local,
            weights: BTreeMap::new(),
            targets: vec![
                target("east", true),
                target("west", false),
                target("eu", false),
            ],
            pinned: BTreeMap::new(),
            listen_ports: BTreeMap::new(),
        }
    }

    fn health() -> Health {
        let c = fedmesh_proto::config::Config::from_yaml(
            "cluster: east\nlocality: { region: r, zone: z }\ndataDir: ./d\n",
            std::path::Path::new("/tmp/x.yaml"),
        )
        .unwrap();
        Health::new(&c.gateway)
    }

    fn listener(pinned: Option<&str>) -> Listener {
        Listener {
            key: ("demo".into(), "hello".into()),
            port: 8080,
            pinned: pinned.map(str::to_string),
        }
    }

    fn clusters(targets: &[&Target]) -> Vec<String> {
        targets.iter().map(|t| t.cluster.clone()).collect()
    }

    #[test]
    fn local_endpoints_come_first_then_every_usable_peer() {
        let (h, imp) = (health(), import());
        let got = choose(
            &h,
            &GatewayState::default(),
            &imp,
            &listener(None),
            &mut Rng::seeded(1),
        );
        assert_eq!(got[0].cluster, "east");
        assert_eq!(got.len(), 3);
    }

    #[test]
    fn an_ejected_cluster_is_not_offered() {
        let (h, imp) = (health(), import());
        for _ in 0..3 {
            h.connect_result("west", false, 4, Instant::now());
        }
        let got = choose(
            &h,
            &GatewayState::default(),
            &imp,
            &listener(None),
            &mut Rng::seeded(1),
        );
        assert_eq!(clusters(&got), ["east", "eu"]);
    }

    #[test]
    fn a_pinned_listener_offers_only_its_cluster() {
        let (h, imp) = (health(), import());
        let got = choose(
            &h,
            &GatewayState::default(),
            &imp,
            &listener(Some("west")),
            &mut Rng::seeded(1),
        );
        assert_eq!(clusters(&got), ["west"]);
        for _ in 0..3 {
            h.probed("west:15443", false);
        }
        let got = choose(
            &h,
            &GatewayState::default(),
            &imp,
            &listener(Some("west")),
            &mut Rng::seeded(1),
        );
        assert!(got.is_empty(), "a pinned VIP never fails over");
    }
}
