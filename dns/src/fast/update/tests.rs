//! An updated table against one encoded whole: after each change, every
//! name and type answers byte for byte the same from both.

use std::net::Ipv4Addr;
use std::sync::Arc;

use super::super::tests::{NAMES, TYPES, query, snapshot};
use super::*;
use crate::snapshot::{ClusterRecord, PortRecord, ServiceRecord, zone_name};

/// The names of the sample zone, and of what the changes below add.
fn names() -> Vec<&'static str> {
    let mut names = NAMES.to_vec();
    names.extend([
        "api.dev.svc.clusterset.local.",
        "west.api.dev.svc.clusterset.local.",
        "_grpc._tcp.api.dev.svc.clusterset.local.",
        "_tcp.api.dev.svc.clusterset.local.",
        "west.web.prod.svc.clusterset.local.",
    ]);
    names
}

/// One change to a zone.
type Change = Box<dyn Fn(&mut ZoneSnapshot)>;

/// One change after another to the sample zone.
fn changes() -> Vec<Change> {
    let key = |ns: &str, name: &str| (ns.to_string(), name.to_string());
    vec![
        Box::new(move |z| {
            z.services.remove(&key("prod", "db"));
        }),
        Box::new(move |z| {
            let web = z.services.get_mut(&key("prod", "web")).expect("web");
            web.vip = Ipv4Addr::new(127, 240, 0, 12);
            web.clusters.push(ClusterRecord {
                cluster: "west".into(),
                pinned_vip: Ipv4Addr::new(127, 240, 0, 13),
                endpoints: vec![],
            });
        }),
        Box::new(move |z| {
            let api = ServiceRecord {
                namespace: "dev".into(),
                name: "api".into(),
                vip: Ipv4Addr::new(127, 240, 0, 40),
                ports: vec![PortRecord {
                    name: "grpc".into(),
                    port: 9090,
                    weight: 100,
                }],
                clusters: vec![ClusterRecord {
                    cluster: "west".into(),
                    pinned_vip: Ipv4Addr::new(127, 240, 0, 41),
                    endpoints: vec![],
                }],
            };
            z.services.insert(key("dev", "api"), api);
        }),
        Box::new(move |z| {
            let pg = z.services.get_mut(&key("prod", "pg")).expect("pg");
            pg.clusters[0].endpoints.pop();
        }),
        Box::new(move |z| {
            z.services.remove(&key("dev", "api"));
            z.services.remove(&key("prod", "web"));
        }),
    ]
}

fn whole(snapshot: &Arc<ZoneSnapshot>) -> FastZone {
    let zone = zone_name(&snapshot.zone).expect("valid zone");
    let index = ZoneIndex::build(Arc::clone(snapshot), &zone);
    FastZone::build(Arc::clone(snapshot), Some(&index))
}

#[test]
fn an_updated_table_answers_every_name_as_one_encoded_whole() {
    let mut current = snapshot();
    let first = Arc::new(current.clone());
    let zone = zone_name(&first.zone).expect("valid zone");
    let mut index = ZoneIndex::build(Arc::clone(&first), &zone);
    let mut table = FastZone::build(first, Some(&index));
    for (step, change) in changes().iter().enumerate() {
        change(&mut current);
        current.serial += 1;
        let next = Arc::new(current.clone());
        let (updated, changed) =
            ZoneIndex::update(&index, Arc::clone(&next)).expect("same zone and TTL");
        assert!(
            !changed.services.is_empty(),
            "step {step} changed something"
        );
        table = FastZone::update(&table, Arc::clone(&next), &updated, &changed);
        index = updated;
        let reference = whole(&next);
        let (mut a, mut b) = (Vec::new(), Vec::new());
        for name in names() {
            for qtype in TYPES {
                let packet = query(1, name, qtype, None, true);
                let fast = table.respond(&packet, &mut a);
                assert_eq!(fast, reference.respond(&packet, &mut b), "{name} {qtype}");
                assert_eq!(a, b, "step {step}: {name} {qtype}");
            }
        }
    }
}

#[test]
fn another_ttl_is_indexed_whole() {
    let first = Arc::new(snapshot());
    let zone = zone_name(&first.zone).expect("valid zone");
    let index = ZoneIndex::build(Arc::clone(&first), &zone);
    let mut next = snapshot();
    next.ttl += 1;
    assert!(ZoneIndex::update(&index, Arc::new(next)).is_none());
}
