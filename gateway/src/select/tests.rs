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
        total: healthy,
        gateway: if local {
            String::new()
        } else {
            format!("{cluster}:15443")
        },
        local,
        draining: false,
    }
}

/// east (us-east-1a, here), east2 (same zone), east-b (us-east-1b),
/// west (us-west), eu; each with one endpoint, healthy.
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

/// Sets `cluster`'s endpoints: `healthy` of `total` ready.
fn endpoints(imp: &mut Import, cluster: &str, healthy: u32, total: u32) {
    let t = imp
        .targets
        .iter_mut()
        .find(|t| t.cluster == cluster)
        .unwrap();
    t.healthy = healthy;
    t.total = total;
}

fn me() -> Locality {
    loc("us-east", "us-east-1a")
}

fn names(ts: &[&Target]) -> Vec<String> {
    ts.iter().map(|t| t.cluster.clone()).collect()
}

fn healthy(t: &Target) -> u32 {
    t.healthy
}

const DRAWS: u32 = 10_000;

/// A cap no test's counts reach: the default `gateway.maxClaimedEndpoints`.
const NO_CAP: u32 = 1_000;

/// How often each cluster comes first, as a share of [`DRAWS`] draws.
fn first_shares(
    imp: &Import,
    healthy_now: impl Fn(&Target) -> u32,
    seed: u64,
) -> BTreeMap<String, f64> {
    first_shares_capped(imp, healthy_now, NO_CAP, seed)
}

/// [`first_shares`] with peers' claims capped at `max_claimed`.
fn first_shares_capped(
    imp: &Import,
    healthy_now: impl Fn(&Target) -> u32,
    max_claimed: u32,
    seed: u64,
) -> BTreeMap<String, f64> {
    let mut rng = Rng::seeded(seed);
    let mut counts: BTreeMap<String, u32> = BTreeMap::new();
    for _ in 0..DRAWS {
        if let Some(first) = order(imp, &me(), &healthy_now, max_claimed, &mut rng).first() {
            *counts.entry(first.cluster.clone()).or_default() += 1;
        }
    }
    counts
        .into_iter()
        .map(|(c, n)| (c, f64::from(n) / f64::from(DRAWS)))
        .collect()
}

/// Asserts the shares match `want` (clusters not named: 0) within 2
/// points: four standard deviations of a share over 10 000 draws.
fn assert_shares(got: &BTreeMap<String, f64>, want: &[(&str, f64)]) {
    for (cluster, share) in got {
        let expected = want
            .iter()
            .find(|(c, _)| c == cluster)
            .map_or(0.0, |(_, s)| *s);
        assert!(
            (share - expected).abs() < 0.02,
            "{cluster} first {share:.4}, want {expected:.4}; all: {got:?}"
        );
    }
    for (cluster, share) in want {
        assert!(
            *share == 0.0 || got.contains_key(*cluster),
            "{cluster} never first; all: {got:?}"
        );
    }
}

#[test]
fn health_is_overprovisioned_and_capped_at_one() {
    assert_eq!(health(10, 10), 1.0);
    assert_eq!(health(8, 10), 1.0, "1.4 × 80 % is over 100 %");
    assert!((health(5, 10) - 0.7).abs() < 1e-12);
    assert!((health(1, 10) - 0.14).abs() < 1e-12);
    assert_eq!(health(0, 10), 0.0);
    assert_eq!(health(0, 0), 0.0);
}

#[test]
fn priority_loads_spill_in_order_and_normalise_when_short() {
    let close =
        |a: [f64; LEVELS], b: [f64; LEVELS]| a.iter().zip(b).all(|(x, y)| (x - y).abs() < 1e-12);
    let spill = priority_loads(&[0.14, 0.7, 1.0, 1.0, 0.0]);
    assert!(close(spill, [0.14, 0.7, 0.16, 0.0, 0.0]), "{spill:?}");
    // 14 % + 70 % = 84 %: scaled by 1 / 0.84.
    let short = priority_loads(&[0.14, 0.7, 0.0, 0.0, 0.0]);
    assert!(
        close(short, [1.0 / 6.0, 5.0 / 6.0, 0.0, 0.0, 0.0]),
        "{short:?}"
    );
    assert_eq!(priority_loads(&[0.0; LEVELS]), [0.0; LEVELS]);
}

#[test]
fn local_affinity_walks_local_zone_region_then_any() {
    let imp = import(Affinity::Local);
    let order = order(&imp, &me(), healthy, NO_CAP, &mut Rng::seeded(1));
    assert_eq!(names(&order), ["east", "east2", "east-b", "west", "eu"]);
}

#[test]
fn a_fully_healthy_level_takes_everything() {
    let mut imp = import(Affinity::Local);
    endpoints(&mut imp, "east", 10, 10);
    assert_shares(&first_shares(&imp, healthy, 1), &[("east", 1.0)]);
    // 8 of 10 is still 100 % healthy (1.4 × 80 %): nothing moves.
    endpoints(&mut imp, "east", 8, 10);
    assert_shares(&first_shares(&imp, healthy, 2), &[("east", 1.0)]);
}

#[test]
fn a_local_level_at_half_its_endpoints_keeps_70_percent_and_spills_30() {
    let mut imp = import(Affinity::Local);
    endpoints(&mut imp, "east", 5, 10);
    let got = first_shares(&imp, healthy, 3);
    assert_shares(&got, &[("east", 0.7), ("east2", 0.3)]);
}

#[test]
fn one_endpoint_of_ten_keeps_14_percent_and_spills_86() {
    let mut imp = import(Affinity::Local);
    endpoints(&mut imp, "east", 1, 10);
    let got = first_shares(&imp, healthy, 4);
    assert_shares(&got, &[("east", 0.14), ("east2", 0.86)]);
}

#[test]
fn what_a_degraded_level_cannot_take_spills_on_by_the_same_rule() {
    let mut imp = import(Affinity::Local);
    endpoints(&mut imp, "east", 1, 10); // 14 %
    endpoints(&mut imp, "east2", 5, 10); // 70 %
    let got = first_shares(&imp, healthy, 5);
    assert_shares(&got, &[("east", 0.14), ("east2", 0.70), ("east-b", 0.16)]);
}

#[test]
fn degraded_levels_normalise_so_all_traffic_goes_somewhere_healthy() {
    let mut imp = import(Affinity::Local);
    endpoints(&mut imp, "east", 1, 10); // 14 %
    endpoints(&mut imp, "east2", 5, 10); // 70 %
    // Every other peer's gateway is down: 84 % health in all, scaled up.
    let now = |t: &Target| match t.cluster.as_str() {
        "east" | "east2" => t.healthy,
        _ => 0,
    };
    let got = first_shares(&imp, now, 6);
    assert_shares(&got, &[("east", 1.0 / 6.0), ("east2", 5.0 / 6.0)]);
}

#[test]
fn a_level_counts_the_endpoints_of_all_its_clusters_together() {
    let mut imp = import(Affinity::Local);
    imp.targets
        .push(target("east3", loc("us-east", "us-east-1a"), 10, false));
    endpoints(&mut imp, "east", 0, 10);
    endpoints(&mut imp, "east2", 10, 10);
    // east2's gateway probes down: the same-zone level has 10 of 20.
    let now = |t: &Target| if t.cluster == "east2" { 0 } else { t.healthy };
    let got = first_shares(&imp, now, 7);
    assert_shares(&got, &[("east3", 0.7), ("east-b", 0.3)]);
}

#[test]
fn ejected_local_endpoints_count_through_healthy_now() {
    let mut imp = import(Affinity::Local);
    endpoints(&mut imp, "east", 10, 10);
    // The registry says 10 ready; the egress has ejected 5 of them.
    let now = |t: &Target| if t.local { 5 } else { t.healthy };
    let got = first_shares(&imp, now, 8);
    assert_shares(&got, &[("east", 0.7), ("east2", 0.3)]);
}

#[test]
fn an_unknown_total_counts_as_fully_healthy() {
    let mut imp = import(Affinity::Local);
    endpoints(&mut imp, "east", 3, 0);
    assert_shares(&first_shares(&imp, healthy, 9), &[("east", 1.0)]);
}

#[test]
fn unhealthy_and_unusable_targets_are_skipped_so_the_next_level_serves() {
    let mut imp = import(Affinity::Local);
    imp.targets[4].healthy = 0; // east's own endpoints are down
    let now = |t: &Target| if t.cluster == "east2" { 0 } else { t.healthy };
    for seed in 0..200 {
        let got = names(&order(&imp, &me(), now, NO_CAP, &mut Rng::seeded(seed)));
        assert_eq!(got[0], "east-b", "{got:?}");
        assert_eq!(got.len(), 3, "{got:?}: west and eu follow, east does not");
    }
}

#[test]
fn a_target_with_nothing_usable_now_is_never_first_and_never_listed() {
    let mut imp = import(Affinity::None);
    endpoints(&mut imp, "east2", 9, 10);
    let now = |t: &Target| if t.cluster == "east2" { 0 } else { t.healthy };
    let mut rng = Rng::seeded(10);
    for _ in 0..DRAWS {
        let order = order(&imp, &me(), now, NO_CAP, &mut rng);
        assert_eq!(order.len(), 4);
        assert!(order.iter().all(|t| t.cluster != "east2"));
    }
}

#[test]
fn failover_order_is_the_rest_of_the_drawn_level_then_the_others_in_order() {
    let mut imp = import(Affinity::Local);
    imp.targets
        .push(target("east3", loc("us-east", "us-east-1a"), 1, false));
    endpoints(&mut imp, "east", 1, 10);
    let mut rng = Rng::seeded(11);
    let mut firsts = BTreeMap::<String, u32>::new();
    for _ in 0..2000 {
        let got = names(&order(&imp, &me(), healthy, NO_CAP, &mut rng));
        *firsts.entry(got[0].clone()).or_default() += 1;
        let same_zone = |n: &str| n == "east2" || n == "east3";
        if got[0] == "east" {
            assert!(same_zone(&got[1]) && same_zone(&got[2]), "{got:?}");
        } else {
            // Drawn from the same zone: its other cluster, then local.
            assert!(same_zone(&got[0]) && same_zone(&got[1]), "{got:?}");
            assert_eq!(got[2], "east", "{got:?}");
        }
        // Then the region, then any (west and eu, one level).
        assert_eq!(got[3], "east-b", "{got:?}");
        let mut any = got[4..].to_vec();
        any.sort();
        assert_eq!(any, ["eu", "west"], "{got:?}");
    }
    assert_eq!(firsts.len(), 3, "east, east2 and east3 each go first");
}

#[test]
fn every_usable_target_is_listed_so_a_pinned_vip_finds_its_cluster() {
    let mut imp = import(Affinity::Local);
    endpoints(&mut imp, "east", 10, 10);
    let mut rng = Rng::seeded(12);
    // eu gets no share (the local level is fully healthy), yet is listed:
    // a pinned VIP keeps only its cluster from this list.
    for _ in 0..200 {
        let mut order = order(&imp, &me(), healthy, NO_CAP, &mut rng);
        assert_eq!(order.len(), 5);
        order.retain(|t| t.cluster == "eu");
        assert_eq!(names(&order), ["eu"]);
    }
}

#[test]
fn remote_affinity_puts_this_cluster_last() {
    let imp = import(Affinity::Remote);
    let order = order(&imp, &me(), healthy, NO_CAP, &mut Rng::seeded(3));
    assert_eq!(names(&order)[0], "east2");
    assert_eq!(names(&order).last().unwrap(), "east");
}

#[test]
fn remote_affinity_spills_to_this_cluster_by_the_same_rule() {
    let mut imp = import(Affinity::Remote);
    imp.targets
        .retain(|t| t.cluster == "east" || t.cluster == "west");
    endpoints(&mut imp, "west", 1, 10);
    let got = first_shares(&imp, healthy, 13);
    assert_shares(&got, &[("west", 0.14), ("east", 0.86)]);
}

#[test]
fn no_affinity_spreads_over_everything_by_capacity() {
    let mut imp = import(Affinity::None);
    imp.targets[0].healthy = 9; // eu has 9 endpoints, the other four 1 each
    // eu holds 9 of 13 endpoints: first about 69 % of the time.
    let got = first_shares(&imp, healthy, 7);
    let rest = 1.0 / 13.0;
    assert_shares(
        &got,
        &[
            ("eu", 9.0 / 13.0),
            ("west", rest),
            ("east-b", rest),
            ("east2", rest),
            ("east", rest),
        ],
    );
}

#[test]
fn weights_override_locality_and_skip_clusters_without_endpoints() {
    let mut imp = import(Affinity::Local);
    imp.weights = BTreeMap::from([("west".to_string(), 90), ("eu".to_string(), 10)]);
    assert_shares(
        &first_shares(&imp, healthy, 11),
        &[("west", 0.9), ("eu", 0.1)],
    );
    // Unweighted clusters are kept as a last resort, in locality order.
    let mut rng = Rng::seeded(11);
    let all = order(&imp, &me(), healthy, NO_CAP, &mut rng);
    assert_eq!(names(&all)[2..], ["east", "east2", "east-b"]);
    // West has no healthy endpoint: eu gets all of it.
    imp.targets[1].healthy = 0;
    assert!((0..200).all(|_| order(&imp, &me(), healthy, NO_CAP, &mut rng)[0].cluster == "eu"));
}

#[test]
fn a_weighted_cluster_at_half_its_endpoints_keeps_70_percent_of_its_weight() {
    let mut imp = import(Affinity::Local);
    imp.weights = BTreeMap::from([("west".to_string(), 90), ("eu".to_string(), 10)]);
    endpoints(&mut imp, "west", 5, 10);
    // Effective weights 90 × 0.7 = 63 and 10 × 1 = 10: 63/73 and 10/73.
    let got = first_shares(&imp, healthy, 14);
    // 86.3 % / 13.7 %: not 63 / 37, which would let the small cluster
    // take the whole loss.
    assert_shares(&got, &[("west", 63.0 / 73.0), ("eu", 10.0 / 73.0)]);
}

#[test]
fn nothing_usable_means_nothing_to_try() {
    let imp = import(Affinity::Local);
    assert!(order(&imp, &me(), |_| 0, NO_CAP, &mut Rng::seeded(1)).is_empty());
}

/// Two peers in this cluster's zone: east with one endpoint, eu claiming
/// more (the hostile peer of issue 13, defect 1).
fn claimed(eu_healthy: u32, eu_total: u32) -> Import {
    let mut imp = import(Affinity::Local);
    let zone = me();
    imp.targets = vec![
        target("east", zone.clone(), 1, false),
        target("eu", zone, eu_healthy, false),
    ];
    endpoints(&mut imp, "eu", eu_healthy, eu_total);
    imp
}

#[test]
fn claimed_endpoints_win_a_share_only_up_to_the_cap() {
    let imp = claimed(9, 9);
    // Uncapped, nine claimed endpoints take 90 % of the level.
    assert_shares(
        &first_shares_capped(&imp, healthy, NO_CAP, 21),
        &[("east", 0.1), ("eu", 0.9)],
    );
    // Capped at 1, eu weighs as much as east's one endpoint.
    assert_shares(
        &first_shares_capped(&imp, healthy, 1, 22),
        &[("east", 0.5), ("eu", 0.5)],
    );
    // Capped at 3: 3 of 4.
    assert_shares(
        &first_shares_capped(&imp, healthy, 3, 23),
        &[("east", 0.25), ("eu", 0.75)],
    );
}

#[test]
fn claimed_unready_endpoints_push_out_at_most_the_caps_share() {
    // eu claims 1 000 endpoints, none ready, beside east's one ready in
    // the same zone; west (another region, a later level) takes what the
    // zone spills.
    let mut imp = claimed(0, 1_000);
    imp.targets
        .push(target("west", loc("us-west", "us-west-2a"), 1, false));
    // Uncapped, the zone's health is 1.4 × 1 / 1001: west takes it all.
    let uncapped = first_shares_capped(&imp, healthy, NO_CAP, 24);
    assert!(uncapped["west"] > 0.99, "{uncapped:?}");
    // Capped at 1, the zone is 1 of 2 ready: 70 % stays with east.
    assert_shares(
        &first_shares_capped(&imp, healthy, 1, 25),
        &[("east", 0.7), ("west", 0.3)],
    );
}

#[test]
fn this_clusters_own_counts_are_not_capped() {
    let mut imp = import(Affinity::None);
    imp.targets
        .retain(|t| t.cluster == "east" || t.cluster == "eu");
    endpoints(&mut imp, "east", 9, 9);
    assert_shares(
        &first_shares_capped(&imp, healthy, 1, 26),
        &[("east", 0.9), ("eu", 0.1)],
    );
}
