//! Stage 3, target choice: the targets to try for one connection, best
//! first ([`crate::select::order`]: locality, affinity, weights, capacity),
//! only usable ones (a remote target whose gateway probes down or whose
//! cluster is ejected is left out). This cluster's own target counts only
//! its endpoints that egress has not ejected, so spill-over moves a share
//! of the traffic away as local endpoints fail. A pinned listener keeps
//! only its cluster: no failover (DESIGN.md, DNS).

use std::time::Instant;

use crate::dial;
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
    // Usable endpoints now (spill-over by capacity weighs levels by this):
    // local ones not ejected; all a usable remote target's healthy ones,
    // none of an unusable one.
    let now = Instant::now();
    let local_now = state.exports.get(&import.key).map_or(0, |export| {
        let candidates = dial::candidates(export, listener.port);
        let usable = candidates
            .iter()
            .filter(|a| !health.endpoint_ejected(a, now))
            .count();
        u32::try_from(usable).unwrap_or(u32::MAX)
    });
    let healthy_now = |t: &Target| match (t.local, health.usable(t)) {
        (true, _) => local_now.min(t.healthy),
        (false, true) => t.healthy,
        (false, false) => 0,
    };
    let mut targets = order(
        import,
        &state.locality,
        healthy_now,
        health.max_claimed_endpoints(),
        rng,
    );
    if let Some(cluster) = &listener.pinned {
        targets.retain(|t| t.cluster == *cluster);
    }
    targets
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, HashMap};
    use std::net::SocketAddr;

    use super::*;
    use crate::state::{Affinity, Endpoint, Export, Locality};

    fn target(cluster: &str, local: bool) -> Target {
        let n = if local { 2 } else { 1 };
        Target {
            cluster: cluster.into(),
            locality: Locality::default(),
            healthy: n,
            total: n,
            gateway: if local {
                String::new()
            } else {
                format!("{cluster}:15443")
            },
            local,
            draining: false,
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

    const LOCAL: [&str; 2] = ["10.0.0.1", "10.0.0.2"];

    /// This cluster exports demo/hello with two ready endpoints.
    fn local_state() -> GatewayState {
        let endpoint = |ip: &str| Endpoint {
            address: ip.parse().unwrap(),
            ready: true,
            ports: BTreeMap::from([("http".to_string(), 9000)]),
            hostname: None,
        };
        let export = Export {
            ports: vec![("http".into(), 8080)],
            endpoints: LOCAL.iter().map(|ip| endpoint(ip)).collect(),
            export_to: Vec::new(),
        };
        GatewayState {
            exports: HashMap::from([(("demo".to_string(), "hello".to_string()), export)]),
            ..Default::default()
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
            endpoint: None,
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
            &local_state(),
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
            &local_state(),
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
            &local_state(),
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
            &local_state(),
            &imp,
            &listener(Some("west")),
            &mut Rng::seeded(1),
        );
        assert!(got.is_empty(), "a pinned VIP never fails over");
    }

    #[test]
    fn an_ejected_local_endpoint_spills_a_share_of_the_traffic_to_peers() {
        let (h, imp) = (health(), import());
        let group: Vec<SocketAddr> = LOCAL
            .iter()
            .map(|ip| format!("{ip}:9000").parse().unwrap())
            .collect();
        for _ in 0..3 {
            h.endpoint_result(group[0], false, &group, Instant::now());
        }
        let state = local_state();
        let mut rng = Rng::seeded(7);
        let draws = 10_000;
        let local_first = (0..draws)
            .filter(|_| choose(&h, &state, &imp, &listener(None), &mut rng)[0].local)
            .count();
        // One of two local endpoints left: 1.4 × 1/2 = 70 % stays local.
        let share = local_first as f64 / f64::from(draws);
        assert!((share - 0.7).abs() < 0.02, "local share {share}");
    }
}
