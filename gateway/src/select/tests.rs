use std::collections::BTreeMap;

use super::*;

fn loc(region: &str, zone: &str) -> Locality {
    Locality {
        region: region.into(),
        zone: zone.into(),
    }
}

fn target(cluster: &str, l: Locality, healthy: u32, local: bool) -> Target {
    Target {
        cluster: cluster.into(),
        locality: l,
        healthy,
        gateway: if local {
            String::new()
        } else {
            format!("{cluster}:15443")
        },
        local,
    }
}

/// east (us-east-1a, here), east2 (same zone), east-b (us-east-1b),
/// west (us-west), eu.
fn import(affinity: Affinity) -> Import {
    Import {
        key: ("demo".into(), "hello".into()),
        vip: "127.77.0.1".parse().unwrap(),
        ports: vec![("http".into(), 8080)],
        affinity,
        weights: BTreeMap::new(),
        targets: vec![
            target("eu", loc("eu-central", "eu-central-1a"), 1, false),
            target("west", loc("us-west", "us-west-2a"), 1, false),
            target("east-b", loc("us-east", "us-east-1b"), 1, false),
            target("east2", loc("us-east", "us-east-1a"), 1, false),
            target("east", loc("us-east", "us-east-1a"), 1, true),
        ],
        pinned: BTreeMap::new(),
        listen_ports: BTreeMap::new(),
    }
}

fn me() -> Locality {
    loc("us-east", "us-east-1a")
}

fn names(ts: &[&Target]) -> Vec<String> {
    ts.iter().map(|t| t.cluster.clone()).collect()
}

#[test]
fn local_affinity_walks_local_zone_region_then_any() {
    let imp = import(Affinity::Local);
    let order = order(&imp, &me(), |_| true, &mut Rng::seeded(1));
    let names = names(&order);
    assert_eq!(&names[..3], ["east", "east2", "east-b"]);
    assert_eq!(names.len(), 5);
}

#[test]
fn unhealthy_and_unusable_targets_are_skipped_so_the_next_level_serves() {
    let mut imp = import(Affinity::Local);
    imp.targets[4].healthy = 0; // east's own endpoints are down
    let order = order(&imp, &me(), |t| t.cluster != "east2", &mut Rng::seeded(1));
    assert_eq!(names(&order)[0], "east-b");
    assert!(!names(&order).contains(&"east".to_string()));
}

#[test]
fn remote_affinity_puts_this_cluster_last() {
    let imp = import(Affinity::Remote);
    let order = order(&imp, &me(), |_| true, &mut Rng::seeded(3));
    assert_eq!(names(&order)[0], "east2");
    assert_eq!(names(&order).last().unwrap(), "east");
}

#[test]
fn no_affinity_spreads_over_everything_by_capacity() {
    let mut imp = import(Affinity::None);
    imp.targets[0].healthy = 9; // eu has 9 endpoints, the other four 1 each
    let mut rng = Rng::seeded(7);
    let firsts = (0..2000)
        .filter(|_| order(&imp, &me(), |_| true, &mut rng)[0].cluster == "eu")
        .count();
    // eu holds 9 of 13 endpoints: first about 69 % of the time.
    assert!((1200..1550).contains(&firsts), "eu first {firsts}/2000");
}

#[test]
fn weights_override_locality_and_skip_clusters_without_endpoints() {
    let mut imp = import(Affinity::Local);
    imp.weights = BTreeMap::from([("west".to_string(), 90), ("eu".to_string(), 10)]);
    let mut rng = Rng::seeded(11);
    let west_first = (0..2000)
        .filter(|_| order(&imp, &me(), |_| true, &mut rng)[0].cluster == "west")
        .count();
    assert!(
        (1700..1900).contains(&west_first),
        "west first {west_first}/2000"
    );
    // Unweighted clusters are kept as a last resort, in locality order.
    let all = order(&imp, &me(), |_| true, &mut rng);
    assert_eq!(names(&all)[2], "east");
    // West has no healthy endpoint: eu gets all of it.
    imp.targets[1].healthy = 0;
    assert!((0..200).all(|_| order(&imp, &me(), |_| true, &mut rng)[0].cluster == "eu"));
}

#[test]
fn nothing_usable_means_nothing_to_try() {
    let imp = import(Affinity::Local);
    assert!(order(&imp, &me(), |_| false, &mut Rng::seeded(1)).is_empty());
}
