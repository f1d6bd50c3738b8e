//! Draining clusters come last, whatever the affinity or weights.

use std::collections::BTreeMap;

use super::*;

fn loc(region: &str) -> Locality {
    Locality {
        region: region.into(),
        zone: format!("{region}-1a"),
    }
}

fn target(cluster: &str, local: bool, draining: bool) -> Target {
    Target {
        cluster: cluster.into(),
        locality: loc(cluster),
        healthy: 1,
        total: 1,
        gateway: if local {
            String::new()
        } else {
            format!("{cluster}:15443")
        },
        local,
        draining,
    }
}

/// east (here, draining), west and eu.
fn import(weights: &[(&str, u32)]) -> Import {
    Import {
        key: ("demo".into(), "hello".into()),
        vip: "127.77.0.1".parse().unwrap(),
        ports: vec![("http".into(), 8080)],
        affinity: Affinity::Local,
        weights: weights
            .iter()
            .map(|(c, w)| (c.to_string(), *w))
            .collect::<BTreeMap<_, _>>(),
        targets: vec![
            target("east", true, true),
            target("west", false, false),
            target("eu", false, false),
        ],
        pinned: BTreeMap::new(),
        listen_ports: BTreeMap::new(),
    }
}

fn names<'a>(ts: &[&'a Target]) -> Vec<&'a str> {
    ts.iter().map(|t| t.cluster.as_str()).collect()
}

#[test]
fn a_draining_local_cluster_is_tried_only_after_every_peer() {
    let import = import(&[]);
    let mut rng = Rng::seeded(7);
    for _ in 0..200 {
        let got = order(&import, &loc("east"), |t| t.healthy, 1000, &mut rng);
        assert_eq!(got.len(), 3, "a draining cluster is still a last resort");
        assert_eq!(got[2].cluster, "east", "{:?}", names(&got));
    }
}

#[test]
fn a_draining_cluster_with_weight_gets_nothing_while_others_serve() {
    let import = import(&[("east", 90), ("west", 10)]);
    let mut rng = Rng::seeded(11);
    for _ in 0..200 {
        let got = order(&import, &loc("east"), |t| t.healthy, 1000, &mut rng);
        assert_eq!(names(&got), ["west", "eu", "east"]);
    }
}

#[test]
fn a_draining_cluster_serves_when_nothing_else_can() {
    let import = import(&[]);
    let mut rng = Rng::seeded(3);
    let only_east = |t: &Target| u32::from(t.cluster == "east");
    let got = order(&import, &loc("east"), only_east, 1000, &mut rng);
    assert_eq!(names(&got), ["east"]);
}

#[test]
fn an_undrained_cluster_is_first_again() {
    let mut import = import(&[]);
    import.targets[0].draining = false;
    let mut rng = Rng::seeded(5);
    let got = order(&import, &loc("east"), |t| t.healthy, 1000, &mut rng);
    assert_eq!(got[0].cluster, "east", "local endpoints come first");
}
