use super::*;
use crate::exports::ExportEntry;
use crate::model::ExportSpec;
use crate::table::vips::VipAllocator;

fn me() -> LocalCluster {
    LocalCluster {
        name: "east".into(),
        locality: Locality {
            region: "us-east".into(),
            zone: "us-east-1a".into(),
        },
    }
}

fn http(port: u16) -> Vec<PortSpec> {
    vec![PortSpec {
        name: "http".into(),
        port,
        app_protocol: Default::default(),
    }]
}

fn exports(entries: &[(&str, i64, Affinity)]) -> ExportState {
    let map = entries
        .iter()
        .map(|(name, at, affinity)| {
            let key = ServiceKey::new("demo", *name);
            let entry = ExportEntry {
                key: key.clone(),
                ports: http(8080),
                exported_at_ms: *at,
                spec: ExportSpec {
                    affinity: *affinity,
                    ..Default::default()
                },
                healthy: 1,
                total: 1,
                headless: None,
                draining: false,
            };
            (key, Arc::new(entry))
        })
        .collect();
    ExportState::new(1, 1, map)
}

fn peer(name: &str, state: LinkState) -> PeerLink {
    PeerLink {
        name: name.into(),
        locality: Locality {
            region: "us-west".into(),
            zone: "us-west-2a".into(),
        },
        gateway_address: format!("{name}-gw:15443"),
        state,
    }
}

fn import(port: u16, at: i64, affinity: Affinity, healthy: u32) -> ImportedService {
    ImportedService {
        ports: http(port),
        exported_at_ms: at,
        affinity,
        weights: BTreeMap::new(),
        healthy,
        total: healthy,
        headless: None,
        draining: false,
    }
}

fn imports(peer: &str, services: &[(&str, ImportedService)]) -> Imports {
    let map = services
        .iter()
        .map(|(n, i)| (ServiceKey::new("demo", *n), i.clone()))
        .collect();
    Imports::from([(peer.to_string(), map)])
}

fn vips() -> VipAllocator {
    VipAllocator::new("127.77.0.0/16".parse().unwrap(), BTreeMap::new())
}

#[test]
fn same_name_in_two_clusters_is_one_global_service_with_pinned_vips() {
    let table = build(
        &me(),
        &exports(&[("hello", 20, Affinity::Local)]),
        &[peer("west", LinkState::Connected)],
        &imports("west", &[("hello", import(8080, 10, Affinity::Local, 3))]),
        &mut vips(),
    );
    assert_eq!(table.len(), 1);
    let s = &table[&ServiceKey::new("demo", "hello")];
    let names: Vec<&str> = s.clusters.iter().map(|c| c.cluster.as_str()).collect();
    assert_eq!(names, ["west", "east"], "oldest export first");
    assert!(s.conflicts.is_empty());
    let west = &s.clusters[0];
    assert_eq!(
        (west.healthy, west.local, west.gateway_address.as_str()),
        (3, false, "west-gw:15443")
    );
    let vips: std::collections::BTreeSet<_> = std::iter::once(s.vip.unwrap())
        .chain(s.clusters.iter().map(|c| c.pinned_vip.unwrap()))
        .collect();
    assert_eq!(vips.len(), 3, "service VIP and two pinned VIPs all differ");
}

#[test]
fn conflicting_ports_are_flagged_and_the_oldest_export_wins() {
    let table = build(
        &me(),
        &exports(&[("hello", 20, Affinity::Local)]),
        &[peer("west", LinkState::Connected)],
        &imports("west", &[("hello", import(9090, 10, Affinity::Local, 1))]),
        &mut vips(),
    );
    let s = &table[&ServiceKey::new("demo", "hello")];
    assert_eq!(s.ports, http(9090));
    assert_eq!(s.conflicts.len(), 1);
    assert!(
        s.conflicts[0].contains("east exports ports [http:8080/TCP]"),
        "{:?}",
        s.conflicts
    );
}

#[test]
fn stale_peers_are_marked_and_disconnected_ones_withdrawn() {
    let both = imports("west", &[("hello", import(8080, 10, Affinity::Local, 1))]);
    let stale = build(
        &me(),
        &exports(&[]),
        &[peer("west", LinkState::Stale)],
        &both,
        &mut vips(),
    );
    assert!(stale[&ServiceKey::new("demo", "hello")].clusters[0].stale);
    let gone = build(
        &me(),
        &exports(&[]),
        &[peer("west", LinkState::Disconnected)],
        &both,
        &mut vips(),
    );
    assert!(gone.is_empty());
    let unknown = build(&me(), &exports(&[]), &[], &both, &mut vips());
    assert!(
        unknown.is_empty(),
        "imports of a peer that left count for nothing"
    );
}

#[test]
fn own_export_annotations_win_else_the_oldest() {
    let own = build(
        &me(),
        &exports(&[("hello", 20, Affinity::Remote)]),
        &[peer("west", LinkState::Connected)],
        &imports("west", &[("hello", import(8080, 10, Affinity::None, 1))]),
        &mut vips(),
    );
    assert_eq!(
        own[&ServiceKey::new("demo", "hello")].affinity,
        Affinity::Remote
    );
    let imported = build(
        &me(),
        &exports(&[]),
        &[
            peer("west", LinkState::Connected),
            peer("eu", LinkState::Connected),
        ],
        &[
            imports("west", &[("hello", import(8080, 30, Affinity::Remote, 1))]),
            imports("eu", &[("hello", import(8080, 10, Affinity::None, 1))]),
        ]
        .into_iter()
        .flatten()
        .collect(),
        &mut vips(),
    );
    assert_eq!(
        imported[&ServiceKey::new("demo", "hello")].affinity,
        Affinity::None
    );
}

#[test]
fn vips_survive_a_rebuild() {
    let mut v = vips();
    let state = exports(&[("hello", 1, Affinity::Local)]);
    let first = build(&me(), &state, &[], &Imports::new(), &mut v);
    let second = build(&me(), &state, &[], &Imports::new(), &mut v);
    assert_eq!(first, second);
}

fn hello_key() -> ServiceKey {
    ServiceKey::new("demo", "hello")
}

#[test]
fn external_vips_are_used_as_given_and_missing_ones_are_flagged() {
    let given = BTreeMap::from([
        (hello_key().global_vip(), Ipv4Addr::new(10, 96, 0, 10)),
        (hello_key().pinned_vip("east"), Ipv4Addr::new(10, 96, 0, 11)),
    ]);
    let mut external = vips::ExternalVips(Arc::new(given));
    let table = build(
        &me(),
        &exports(&[("hello", 1, Affinity::Local), ("other", 1, Affinity::Local)]),
        &[],
        &Imports::new(),
        &mut external,
    );
    let hello = &table[&ServiceKey::new("demo", "hello")];
    assert_eq!(hello.vip, Some(Ipv4Addr::new(10, 96, 0, 10)));
    assert_eq!(
        hello.clusters[0].pinned_vip,
        Some(Ipv4Addr::new(10, 96, 0, 11))
    );
    let other = &table[&ServiceKey::new("demo", "other")];
    assert_eq!(other.vip, None);
    assert!(
        other.conflicts[0].contains("no VIP yet"),
        "{:?}",
        other.conflicts
    );
}

#[test]
fn endpoint_totals_are_kept_per_cluster_and_never_below_healthy() {
    let mut west = import(8080, 10, Affinity::Local, 4);
    west.total = 10;
    let table = build(
        &me(),
        &exports(&[("hello", 20, Affinity::Local)]),
        &[peer("west", LinkState::Connected)],
        &imports("west", &[("hello", west)]),
        &mut vips(),
    );
    let s = &table[&ServiceKey::new("demo", "hello")];
    let totals: Vec<(&str, u32, u32)> = s
        .clusters
        .iter()
        .map(|c| (c.cluster.as_str(), c.healthy, c.total))
        .collect();
    assert_eq!(totals, [("west", 4, 10), ("east", 1, 1)]);
}
