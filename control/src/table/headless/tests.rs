use std::sync::Arc;

use super::*;
use crate::exports::ExportEntry;
use crate::model::{Affinity, ExportSpec, ImportedService, Locality, NamedEndpoint, PortSpec};
use crate::table::build_all;
use crate::table::vips::VipAllocator;

fn named(hosts: &[&str]) -> NamedEndpoints {
    NamedEndpoints::from_list(hosts.iter().map(|h| NamedEndpoint {
        hostname: h.to_string(),
        ready: true,
    }))
}

fn me() -> LocalCluster {
    LocalCluster {
        name: "east".into(),
        locality: Locality::default(),
    }
}

fn ports() -> Vec<PortSpec> {
    vec![PortSpec {
        app_protocol: Default::default(),
        name: "pg".into(),
        port: 5432,
    }]
}

/// East exports demo/db headless with `hosts`.
fn exports(hosts: &[&str]) -> ExportState {
    let key = ServiceKey::new("demo", "db");
    let entry = ExportEntry {
        draining: false,
        key: key.clone(),
        ports: ports(),
        exported_at_ms: 1,
        spec: ExportSpec::default(),
        healthy: 1,
        total: 1,
        headless: Some(named(hosts)),
    };
    ExportState::new(1, 1, BTreeMap::from([(key, Arc::new(entry))]))
}

fn peer(state: LinkState) -> Vec<PeerLink> {
    vec![PeerLink {
        name: "west".into(),
        locality: Locality::default(),
        gateway_address: "west-gw:15443".into(),
        state,
    }]
}

/// West exports demo/db headless with `hosts`.
fn imports(hosts: &[&str]) -> Imports {
    let import = ImportedService {
        draining: false,
        ports: ports(),
        exported_at_ms: 2,
        affinity: Affinity::Local,
        weights: BTreeMap::new(),
        healthy: 1,
        total: 1,
        headless: Some(named(hosts)),
    };
    Imports::from([(
        "west".to_string(),
        BTreeMap::from([(ServiceKey::new("demo", "db"), import)]),
    )])
}

fn vip_of(h: &BTreeMap<ServiceKey, HeadlessService>, cluster: &str, host: &str) -> Ipv4Addr {
    let service = &h[&ServiceKey::new("demo", "db")];
    let e = service.clusters[cluster]
        .iter()
        .find(|e| e.hostname == host)
        .expect("the endpoint is listed");
    e.vip.expect("a VIP")
}

#[test]
fn every_named_endpoint_of_every_cluster_gets_its_own_vip() {
    let mut vips = VipAllocator::new("127.77.0.0/16".parse().unwrap(), BTreeMap::new());
    let (services, headless) = build_all(
        &me(),
        &exports(&["db-0", "db-1"]),
        &peer(LinkState::Connected),
        &imports(&["db-2"]),
        &mut vips,
    );
    let global = &services[&ServiceKey::new("demo", "db")];
    let mut all = vec![global.vip.unwrap()];
    all.extend(global.clusters.iter().map(|c| c.pinned_vip.unwrap()));
    all.extend([
        vip_of(&headless, "east", "db-0"),
        vip_of(&headless, "east", "db-1"),
        vip_of(&headless, "west", "db-2"),
    ]);
    let distinct: std::collections::BTreeSet<_> = all.iter().collect();
    assert_eq!(
        distinct.len(),
        6,
        "global, 2 pinned, 3 endpoint VIPs: {all:?}"
    );
    let snapshot = TableSnapshot {
        headless,
        ..Default::default()
    };
    assert!(snapshot.is_headless(&ServiceKey::new("demo", "db")));
    assert!(!snapshot.is_headless(&ServiceKey::new("demo", "web")));
}

#[test]
fn a_pod_that_goes_away_and_comes_back_keeps_its_vip_also_after_a_restart() {
    let mut vips = VipAllocator::new("127.77.0.0/16".parse().unwrap(), BTreeMap::new());
    let peers = peer(LinkState::Connected);
    let (_, first) = build_all(
        &me(),
        &exports(&["db-0", "db-1"]),
        &peers,
        &imports(&[]),
        &mut vips,
    );
    let db0 = vip_of(&first, "east", "db-0");
    // db-0 is gone, another pod comes and goes meanwhile.
    let (_, gone) = build_all(
        &me(),
        &exports(&["db-1", "db-5"]),
        &peers,
        &imports(&[]),
        &mut vips,
    );
    assert!(
        gone[&ServiceKey::new("demo", "db")].clusters["east"]
            .iter()
            .all(|e| e.hostname != "db-0")
    );
    let (_, back) = build_all(
        &me(),
        &exports(&["db-0", "db-1"]),
        &peers,
        &imports(&[]),
        &mut vips,
    );
    assert_eq!(
        vip_of(&back, "east", "db-0"),
        db0,
        "same pod name, same VIP"
    );
    // A restart reloads the allocations from the store.
    let (added, _) = vips.take_changes();
    let mut reloaded = VipAllocator::new(
        "127.77.0.0/16".parse().unwrap(),
        added.into_iter().collect(),
    );
    let (_, after) = build_all(
        &me(),
        &exports(&["db-0"]),
        &peers,
        &imports(&[]),
        &mut reloaded,
    );
    assert_eq!(vip_of(&after, "east", "db-0"), db0);
}

#[test]
fn a_full_range_never_takes_a_named_endpoints_vip_in_use() {
    // A /29 has six usable addresses: global, pinned east and west, and
    // three endpoints fill it.
    let mut vips = VipAllocator::new("10.0.0.0/29".parse().unwrap(), BTreeMap::new());
    let peers = peer(LinkState::Connected);
    let (_, h) = build_all(
        &me(),
        &exports(&["db-0", "db-1"]),
        &peers,
        &imports(&["db-2"]),
        &mut vips,
    );
    let before = vip_of(&h, "east", "db-0");
    let (_, h) = build_all(
        &me(),
        &exports(&["db-0", "db-1", "db-3"]),
        &peers,
        &imports(&["db-2"]),
        &mut vips,
    );
    let db3 = &h[&ServiceKey::new("demo", "db")].clusters["east"][2];
    assert_eq!(
        (db3.hostname.as_str(), db3.vip),
        ("db-3", None),
        "range full"
    );
    assert_eq!(
        vip_of(&h, "east", "db-0"),
        before,
        "in use, never reclaimed"
    );
}

#[test]
fn a_disconnected_peers_endpoints_are_left_out_and_a_stale_ones_kept() {
    let mut vips = VipAllocator::new("127.77.0.0/16".parse().unwrap(), BTreeMap::new());
    let (_, h) = build_all(
        &me(),
        &exports(&["db-0"]),
        &peer(LinkState::Disconnected),
        &imports(&["db-2"]),
        &mut vips,
    );
    assert!(
        !h[&ServiceKey::new("demo", "db")]
            .clusters
            .contains_key("west")
    );
    let (_, h) = build_all(
        &me(),
        &exports(&["db-0"]),
        &peer(LinkState::Stale),
        &imports(&["db-2"]),
        &mut vips,
    );
    assert!(
        h[&ServiceKey::new("demo", "db")]
            .clusters
            .contains_key("west")
    );
}
