use fedmesh_proto::v1::{GatewayStatus, PeerGatewayProbe};

use super::*;

const NOW: i64 = 1_800_000_000_000;
const DAY: i64 = 24 * 3_600_000;

fn serving_gateway(name: &str, probes: Vec<PeerGatewayProbe>) -> GatewayView {
    GatewayView {
        name: name.into(),
        watches: 1,
        last_seen_ms: NOW,
        reporting: true,
        status: Some((
            GatewayStatus {
                gateway_name: name.into(),
                ready: true,
                snapshot_version: 3,
                probes,
                ..Default::default()
            },
            NOW - 1_000,
        )),
        cert_not_after_ms: NOW + DAY,
    }
}

fn probe(cluster: &str, up: bool) -> PeerGatewayProbe {
    PeerGatewayProbe {
        cluster: cluster.into(),
        address: format!("{cluster}:15443"),
        up,
    }
}

fn failing(lines: &[CheckResult]) -> Vec<&str> {
    lines
        .iter()
        .filter(|l| !l.ok)
        .map(|l| l.name.as_str())
        .collect()
}

#[test]
fn a_connected_ready_gateway_passes() {
    let lines = gateways("gw-1", &[serving_gateway("gw-1", vec![])], NOW);
    assert!(failing(&lines).is_empty(), "{lines:?}");
    assert_eq!(lines[0].detail, "1 of 1 serving");
}

#[test]
fn a_gateway_whose_stream_closed_fails_by_name_and_so_does_the_cluster() {
    let mut dead = serving_gateway("gw-1", vec![]);
    dead.watches = 0;
    dead.reporting = false;
    let lines = gateways("gw-1", &[dead], NOW);
    assert_eq!(failing(&lines), ["gateways", "gateway gw-1"]);
    assert!(
        lines[1].detail.contains("not connected"),
        "{}",
        lines[1].detail
    );
}

#[test]
fn the_configured_gateway_fails_by_name_before_it_ever_connects() {
    let lines = gateways("gw-1", &[], NOW);
    assert_eq!(failing(&lines), ["gateways", "gateway gw-1"]);
}

#[test]
fn a_silent_or_unready_gateway_does_not_serve() {
    let mut silent = serving_gateway("gw-1", vec![]);
    if let Some((_, at)) = silent.status.as_mut() {
        *at = NOW - STATUS_STALE_MS - 1;
    }
    let mut unready = serving_gateway("gw-2", vec![]);
    if let Some((s, _)) = unready.status.as_mut() {
        s.ready = false;
    }
    let lines = gateways("gw-1", &[silent, unready], NOW);
    assert_eq!(
        failing(&lines),
        ["gateways", "gateway gw-1", "gateway gw-2"]
    );
}

#[test]
fn one_dead_gateway_beside_a_serving_one_fails_by_name_but_the_cluster_serves() {
    let mut dead = serving_gateway("gw-2", vec![]);
    dead.watches = 0;
    let lines = gateways("gw-1", &[serving_gateway("gw-1", vec![]), dead], NOW);
    assert_eq!(failing(&lines), ["gateway gw-2"]);
}

#[test]
fn a_certificate_near_its_end_or_past_it_fails() {
    let mut near = serving_gateway("gw-1", vec![]);
    near.cert_not_after_ms = NOW + CERT_MIN_LEFT_MS - 1;
    let mut past = serving_gateway("gw-2", vec![]);
    past.cert_not_after_ms = NOW - 1;
    let lines = gateways("", &[near, past], NOW);
    assert_eq!(
        failing(&lines),
        ["gateways", "gateway gw-1", "gateway gw-2"]
    );
    assert!(lines[2].detail.contains("expired"), "{}", lines[2].detail);
}

#[test]
fn a_peer_passes_when_any_serving_gateway_probes_one_of_its_gateways_up() {
    let views = [
        serving_gateway("gw-1", vec![probe("west", false)]),
        serving_gateway("gw-2", vec![probe("west", true)]),
    ];
    let lines = peer_gateways(&["west".into()], &views, NOW);
    assert!(lines[0].ok, "{lines:?}");
    assert!(lines[0].detail.contains("gw-2"));
}

#[test]
fn a_peer_whose_gateways_all_probe_down_fails_naming_them() {
    let views = [serving_gateway(
        "gw-1",
        vec![probe("west", false), probe("eu", true)],
    )];
    let lines = peer_gateways(&["west".into(), "eu".into()], &views, NOW);
    assert_eq!(failing(&lines), ["peer west gateways"]);
    assert!(lines[0].detail.contains("west:15443 down as gw-1"));
}

#[test]
fn probes_of_a_gateway_that_does_not_serve_are_no_evidence() {
    let mut dead = serving_gateway("gw-1", vec![probe("west", false)]);
    dead.watches = 0;
    let lines = peer_gateways(&["west".into()], &[dead], NOW);
    assert!(lines[0].ok);
    assert!(lines[0].detail.starts_with("not probed"));
}

#[test]
fn export_conflicts_warn_without_failing() {
    use crate::model::{Affinity, ServiceKey};
    use crate::table::GlobalService;
    let key = ServiceKey::new("demo", "hello");
    let mut table = TableSnapshot::default();
    table.services.insert(
        key.clone(),
        GlobalService {
            key,
            vip: None,
            ports: vec![],
            affinity: Affinity::Local,
            weights: Default::default(),
            clusters: vec![],
            conflicts: vec!["port http: 8080 in east, 9090 in west".into()],
        },
    );
    let lines = conflicts(&table);
    assert_eq!(lines.len(), 1);
    assert!(lines[0].ok && lines[0].warn, "{lines:?}");
    assert_eq!(lines[0].name, "service demo/hello");
}
