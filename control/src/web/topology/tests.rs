//! The topology built from hand-made views.

use std::collections::BTreeMap;

use fedmesh_proto::v1;

use super::build;
use crate::api::gateways::GatewayView;
use crate::model::{LinkState, Locality, ServiceKey};
use crate::peering::PeerView;
use crate::store::{PeerRecord, Role};
use crate::table::{ClusterEntry, GlobalService, TableSnapshot};

const NOW: i64 = 1_000_000;

fn locality(region: &str) -> Locality {
    Locality {
        region: region.into(),
        zone: format!("{region}-1a"),
    }
}

fn peer(name: &str, region: &str, state: LinkState, heard: Option<i64>) -> PeerView {
    PeerView {
        record: PeerRecord {
            name: name.into(),
            locality: locality(region),
            gateway_address: format!("{name}.example:15443"),
            role: Role::Dialer,
            trust_domain: format!("{name}.fedmesh"),
            roots_pem: Vec::new(),
            endpoint: format!("{name}.example:15017"),
            joined_unix_ms: 0,
        },
        state,
        since_ms: NOW - 5_000,
        last_heard_ms: heard,
        last_error: None,
    }
}

fn gateway(name: &str, watches: u32, ready: bool, probes: &[(&str, bool)]) -> GatewayView {
    let status = v1::GatewayStatus {
        gateway_name: name.into(),
        ready,
        probes: probes
            .iter()
            .map(|(cluster, up)| v1::PeerGatewayProbe {
                cluster: (*cluster).into(),
                address: format!("{cluster}.example:15443"),
                up: *up,
            })
            .collect(),
        ..Default::default()
    };
    GatewayView {
        name: name.into(),
        watches,
        last_seen_ms: NOW,
        reporting: true,
        status: Some((status, NOW - 1_000)),
        cert_not_after_ms: 0,
    }
}

fn table() -> TableSnapshot {
    let key = ServiceKey::new("demo", "hello");
    let entry = |cluster: &str, local: bool| ClusterEntry {
        draining: false,
        cluster: cluster.into(),
        local,
        locality: locality("us-east"),
        healthy: 2,
        total: 3,
        stale: false,
        pinned_vip: None,
        exported_at_ms: 0,
        gateway_address: String::new(),
        ports: Vec::new(),
    };
    let service = GlobalService {
        key: key.clone(),
        vip: Some("127.77.0.1".parse().expect("ip")),
        ports: Vec::new(),
        affinity: Default::default(),
        weights: BTreeMap::new(),
        clusters: vec![entry("east", true), entry("west", false)],
        conflicts: Vec::new(),
    };
    TableSnapshot {
        version: 1,
        services: BTreeMap::from([(key, service)]).into(),
        ..Default::default()
    }
}

#[test]
fn every_cluster_and_link_is_named_with_its_state() {
    let peers = [
        peer("eu", "eu-west", LinkState::Disconnected, None),
        peer("west", "us-west", LinkState::Connected, Some(NOW - 250)),
    ];
    let t = build(("east", &locality("us-east")), &peers, &[], &table(), NOW);
    let names: Vec<_> = t
        .clusters
        .iter()
        .map(|c| (c.name.as_str(), c.local))
        .collect();
    assert_eq!(names, [("east", true), ("eu", false), ("west", false)]);
    let links: Vec<_> = t.links.iter().map(|l| (l.to.as_str(), l.state)).collect();
    assert_eq!(links, [("eu", "disconnected"), ("west", "connected")]);
    assert_eq!(t.links[0].heartbeat_age_seconds, None);
    assert_eq!(t.links[1].heartbeat_age_seconds, Some(0.25));
    assert_eq!(t.clusters[2].region, "us-west");
}

#[test]
fn peer_gateways_carry_the_probes_of_local_gateways() {
    let peers = [peer("west", "us-west", LinkState::Connected, Some(NOW))];
    let gateways = [
        gateway("gw-1", 1, true, &[("west", true)]),
        gateway("gw-2", 0, true, &[("west", false)]),
    ];
    let t = build(
        ("east", &locality("us-east")),
        &peers,
        &gateways,
        &table(),
        NOW,
    );
    let local: Vec<_> = t
        .gateways
        .iter()
        .filter(|g| g.local)
        .map(|g| (g.name.as_str(), g.health))
        .collect();
    assert_eq!(local, [("gw-1", "healthy"), ("gw-2", "unhealthy")]);
    let west = t
        .gateways
        .iter()
        .find(|g| g.cluster == "west")
        .expect("west's gateway");
    assert_eq!(
        (west.name.as_str(), west.health),
        ("west.example:15443", "healthy")
    );
    assert_eq!(west.probes.len(), 2);
}

#[test]
fn a_peer_gateway_nobody_probes_is_unknown_and_a_stale_report_does_not_count() {
    let peers = [peer("west", "us-west", LinkState::Connected, Some(NOW))];
    let mut old = gateway("gw-1", 1, true, &[("west", true)]);
    old.status.as_mut().expect("status").1 = NOW - 60_000;
    let t = build(
        ("east", &locality("us-east")),
        &peers,
        &[old],
        &table(),
        NOW,
    );
    let west = t
        .gateways
        .iter()
        .find(|g| g.cluster == "west")
        .expect("west's gateway");
    assert_eq!(west.health, "unknown");
    let gw = t.gateways.iter().find(|g| g.local).expect("gw-1");
    assert_eq!((gw.health, gw.ready), ("unknown", None));
}

#[test]
fn services_name_the_clusters_serving_them() {
    let t = build(("east", &locality("us-east")), &[], &[], &table(), NOW);
    let json = serde_json::to_value(&t).expect("serializes");
    let s = &json["services"][0];
    assert_eq!(s["namespace"], "demo");
    assert_eq!(s["vip"], "127.77.0.1");
    assert_eq!(s["clusters"][1]["cluster"], "west");
    assert_eq!(s["clusters"][1]["healthy"], 2);
    assert_eq!(json["links"], serde_json::json!([]));
}
