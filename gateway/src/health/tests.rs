use std::collections::HashSet;
use std::net::SocketAddr;

use super::*;

fn config() -> GatewayConfig {
    let c = fedmesh_proto::config::Config::from_yaml(
        "cluster: east\nlocality: { region: r, zone: z }\ndataDir: ./d\n",
        std::path::Path::new("/tmp/x.yaml"),
    )
    .unwrap();
    c.gateway
}

#[test]
fn a_gateway_goes_down_after_consecutive_failures_and_back_after_as_many_successes() {
    let h = Health::new(&config()); // probeFailures: 3
    assert!(h.gateway_up("gw:1"), "unknown gateways are tried");
    assert_eq!(h.probed("gw:1", false), Transition::None);
    assert_eq!(h.probed("gw:1", false), Transition::None);
    assert_eq!(h.probed("gw:1", false), Transition::Down);
    assert!(!h.gateway_up("gw:1"));
    // One good probe is not enough to fail back (no flapping).
    assert_eq!(h.probed("gw:1", true), Transition::None);
    assert_eq!(h.probed("gw:1", false), Transition::None);
    assert_eq!(h.probed("gw:1", true), Transition::None);
    assert_eq!(h.probed("gw:1", true), Transition::None);
    assert_eq!(h.probed("gw:1", true), Transition::Up);
    assert!(h.gateway_up("gw:1"));
}

#[test]
fn consecutive_connect_failures_eject_for_a_growing_capped_interval() {
    let h = Health::new(&config()); // 3 failures, 5 s base, 60 s max, 50 %
    let t0 = Instant::now();
    assert!(!h.connect_result("west", false, 4, t0));
    assert!(!h.connect_result("west", false, 4, t0));
    assert!(h.connect_result("west", false, 4, t0));
    assert!(h.ejected("west", t0 + Duration::from_secs(4)));
    assert!(!h.ejected("west", t0 + Duration::from_secs(6)));
    // A second ejection lasts twice as long.
    let t1 = t0 + Duration::from_secs(6);
    for _ in 0..3 {
        h.connect_result("west", false, 4, t1);
    }
    assert!(h.ejected("west", t1 + Duration::from_secs(9)));
    assert!(!h.ejected("west", t1 + Duration::from_secs(11)));
    // Capped at maxEjection.
    let mut t = t1 + Duration::from_secs(11);
    for _ in 0..10 {
        for _ in 0..3 {
            h.connect_result("west", false, 4, t);
        }
        t += Duration::from_secs(61);
    }
    for _ in 0..3 {
        h.connect_result("west", false, 4, t);
    }
    assert!(!h.ejected("west", t + Duration::from_secs(61)));
}

#[test]
fn a_success_resets_the_count() {
    let h = Health::new(&config());
    let t = Instant::now();
    h.connect_result("west", false, 4, t);
    h.connect_result("west", false, 4, t);
    h.connect_result("west", true, 4, t);
    assert!(!h.connect_result("west", false, 4, t));
    assert!(!h.ejected("west", t));
}

#[test]
fn no_more_than_the_max_share_is_ejected() {
    let h = Health::new(&config()); // 50 % of 2 remote clusters = 1
    let t = Instant::now();
    for _ in 0..3 {
        h.connect_result("west", false, 2, t);
    }
    for _ in 0..3 {
        h.connect_result("eu", false, 2, t);
    }
    assert!(h.ejected("west", t));
    assert!(
        !h.ejected("eu", t),
        "ejecting eu too would exceed maxEjectedPercent"
    );
}

#[test]
fn a_probe_may_take_connect_timeout_until_the_gateway_answered_once() {
    let h = Health::new(&config()); // probeInterval 200ms, connectTimeout 1s
    assert_eq!(h.probe_timeout("gw:1"), Duration::from_secs(1));
}

#[test]
fn a_nearby_gateways_probes_fail_within_the_probe_interval() {
    let h = Health::new(&config());
    h.connected_in("gw:1", Duration::from_micros(300));
    assert_eq!(h.probe_timeout("gw:1"), Duration::from_millis(200));
}

#[test]
fn a_distant_gateways_probes_may_take_a_few_round_trips_up_to_connect_timeout() {
    let h = Health::new(&config());
    // 240 ms away: four times that is within connectTimeout.
    h.connected_in("far:1", Duration::from_millis(240));
    assert_eq!(h.probe_timeout("far:1"), Duration::from_millis(960));
    // Farther than egress could connect anyway: capped at connectTimeout.
    h.connected_in("farther:1", Duration::from_millis(600));
    assert_eq!(h.probe_timeout("farther:1"), Duration::from_secs(1));
}

#[test]
fn the_connect_time_is_smoothed_not_replaced() {
    let h = Health::new(&config());
    h.connected_in("gw:1", Duration::from_millis(240));
    h.connected_in("gw:1", Duration::from_millis(80));
    // 7/8 × 240 + 1/8 × 80 = 220 ms, × 4.
    assert_eq!(h.probe_timeout("gw:1"), Duration::from_millis(880));
}

#[test]
fn a_forgotten_gateway_starts_over() {
    let h = Health::new(&config());
    h.connected_in("gw:1", Duration::from_millis(1));
    h.retain_gateways(&HashSet::new());
    assert_eq!(h.probe_timeout("gw:1"), Duration::from_secs(1));
}

#[test]
fn a_failing_endpoint_is_ejected_on_its_own() {
    let h = Health::new(&config()); // 3 failures, 50 %
    let t = Instant::now();
    let bad: SocketAddr = "10.0.0.1:80".parse().unwrap();
    let good: SocketAddr = "10.0.0.2:80".parse().unwrap();
    let group = [bad, good];
    assert!(!h.endpoint_result(bad, false, &group, t));
    assert!(!h.endpoint_result(bad, false, &group, t));
    assert!(h.endpoint_result(bad, false, &group, t));
    assert!(h.endpoint_ejected(&bad, t));
    assert!(!h.endpoint_ejected(&good, t));
    assert!(!h.ejected("east", t), "an endpoint is not its cluster");
    // The other half of the service stays in, whatever it does.
    for _ in 0..3 {
        h.endpoint_result(good, false, &group, t);
    }
    assert!(!h.endpoint_ejected(&good, t), "maxEjectedPercent keeps it");
    // After the ejection, one success forgives it.
    let later = t + Duration::from_secs(6);
    assert!(!h.endpoint_ejected(&bad, later));
    h.endpoint_result(bad, true, &group, later);
    for _ in 0..2 {
        h.endpoint_result(bad, false, &group, later);
    }
    assert!(!h.endpoint_ejected(&bad, later), "the count started over");
}

#[test]
fn endpoint_shares_are_counted_per_service() {
    let h = Health::new(&config());
    let t = Instant::now();
    let a: SocketAddr = "10.0.0.1:80".parse().unwrap();
    let b: SocketAddr = "10.0.1.1:80".parse().unwrap();
    let c: SocketAddr = "10.0.1.2:80".parse().unwrap();
    for _ in 0..3 {
        h.endpoint_result(a, false, &[a, "10.0.0.2:80".parse().unwrap()], t);
    }
    // b's service has two endpoints, none ejected: a's ejection elsewhere
    // does not use up its share.
    for _ in 0..3 {
        h.endpoint_result(b, false, &[b, c], t);
    }
    assert!(h.endpoint_ejected(&a, t) && h.endpoint_ejected(&b, t));
}
