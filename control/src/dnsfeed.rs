//! Feeds the DNS server: each service-table snapshot becomes a zone
//! snapshot (`fedmesh_dns::ZoneSnapshot`), published on the watch channel
//! the DNS server reads, so answers change as soon as the table does.
//!
//! Both are persistent maps. A table snapshot shares every unchanged
//! service with the one before; [`zone_update`] finds the changed ones
//! with `OrdMap::diff` (which skips the shared parts) and converts only
//! those, so the zone snapshot shares every unchanged record in turn and
//! the DNS server re-indexes only what changed. [`zone_snapshot`], the
//! whole conversion, is the reference (and what the first snapshot uses).

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use fedmesh_dns::{
    ClusterRecord, EndpointRecord, PortRecord, ServiceRecord, ServiceRecords, ZoneSnapshot,
};
use imbl::ordmap::DiffItem;
use tokio::sync::watch;

use crate::clock;
use crate::model::ServiceKey;
use crate::table::{GlobalService, TableSnapshot};

/// SRV weight of a service port: one target per name, so any value works;
/// the MCS DNS spec leaves it to the implementation.
const SRV_WEIGHT: u16 = 100;

/// The zone for a table snapshot. Services without a VIP (range
/// exhausted) are left out: there is nothing to answer with.
pub fn zone_snapshot(
    table: &TableSnapshot,
    zone: &str,
    ttl: Duration,
    serial: u32,
) -> ZoneSnapshot {
    let services: ServiceRecords = table
        .services
        .values()
        .filter_map(|s| Some((zone_key(&s.key), service_record(table, s)?)))
        .collect();
    ZoneSnapshot {
        zone: zone.to_string(),
        ttl: u32::try_from(ttl.as_secs()).unwrap_or(u32::MAX).max(1),
        services,
        serial,
    }
}

/// The zone for `table`, from `before`, the zone made for the table
/// snapshot `was`: only the services that differ between the two tables,
/// or whose headless endpoints do, are converted again. Equal to
/// [`zone_snapshot`] of `table` with `before`'s zone and TTL.
pub fn zone_update(
    before: &ZoneSnapshot,
    was: &TableSnapshot,
    table: &TableSnapshot,
    serial: u32,
) -> ZoneSnapshot {
    let mut changed: BTreeSet<&ServiceKey> = was
        .services
        .diff(&table.services)
        .map(|item| match item {
            DiffItem::Add(key, _) | DiffItem::Remove(key, _) => key,
            DiffItem::Update { new, .. } => new.0,
        })
        .collect();
    if was.headless != table.headless {
        let keys = was.headless.keys().chain(table.headless.keys());
        changed.extend(keys.filter(|k| was.headless.get(*k) != table.headless.get(*k)));
    }
    let mut services = before.services.clone();
    for key in changed {
        let record = table
            .services
            .get(key)
            .and_then(|s| service_record(table, s));
        match record {
            Some(record) => {
                services.insert(zone_key(key), record);
            }
            None => {
                services.remove(&zone_key(key));
            }
        }
    }
    ZoneSnapshot {
        zone: before.zone.clone(),
        ttl: before.ttl,
        services,
        serial,
    }
}

/// A service's key in the zone snapshot.
fn zone_key(key: &ServiceKey) -> (String, String) {
    (key.namespace.clone(), key.name.clone())
}

/// One service's record, or `None` without a VIP.
fn service_record(table: &TableSnapshot, s: &GlobalService) -> Option<ServiceRecord> {
    Some(ServiceRecord {
        namespace: s.key.namespace.clone(),
        name: s.key.name.clone(),
        vip: s.vip?,
        ports: s
            .ports
            .iter()
            .filter(|p| !p.name.is_empty())
            .map(|p| PortRecord {
                name: p.name.clone(),
                port: p.port,
                weight: SRV_WEIGHT,
            })
            .collect(),
        clusters: s
            .clusters
            .iter()
            .filter_map(|c| {
                Some(ClusterRecord {
                    cluster: c.cluster.clone(),
                    pinned_vip: c.pinned_vip?,
                    endpoints: endpoint_records(table, &s.key, &c.cluster),
                })
            })
            .collect(),
    })
}

/// The named endpoints of `cluster` a headless service's DNS answers:
/// ready ones with a VIP (the MCS DNS spec publishes ready endpoints only;
/// a pod that is not ready keeps its VIP and is answered again once ready).
fn endpoint_records(table: &TableSnapshot, key: &ServiceKey, cluster: &str) -> Vec<EndpointRecord> {
    table
        .headless_service(key)
        .and_then(|h| h.clusters.get(cluster))
        .into_iter()
        .flatten()
        .filter(|e| e.ready)
        .filter_map(|e| {
            Some(EndpointRecord {
                hostname: e.hostname.clone(),
                vip: e.vip?,
            })
        })
        .collect()
}

/// Publishes a zone snapshot for every table snapshot, until the table
/// stops. The SOA serial grows with every change and across restarts
/// (seconds since the epoch, or one more than the last).
pub async fn run(
    mut table: watch::Receiver<Arc<TableSnapshot>>,
    zone: String,
    ttl: Duration,
    out: watch::Sender<Arc<ZoneSnapshot>>,
) {
    let mut serial = 0u32;
    let mut last: Option<(Arc<TableSnapshot>, Arc<ZoneSnapshot>)> = None;
    loop {
        let snapshot = table.borrow_and_update().clone();
        let now = u32::try_from(clock::now_unix_ms() / 1000).unwrap_or(u32::MAX);
        serial = now.max(serial.wrapping_add(1));
        let started = std::time::Instant::now();
        let next = Arc::new(match &last {
            Some((was, before)) => zone_update(before, was, &snapshot, serial),
            None => zone_snapshot(&snapshot, &zone, ttl, serial),
        });
        let built = started.elapsed();
        out.send_replace(Arc::clone(&next));
        tracing::debug!(
            zone_us = built.as_micros() as u64,
            version = snapshot.version,
            "stage timing: dnsfeed"
        );
        last = Some((snapshot, next));
        if table.changed().await.is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::model::Locality;
    use crate::model::{Affinity, PortSpec, ServiceKey};
    use crate::table::{ClusterEntry, GlobalService};

    #[test]
    fn every_service_with_a_vip_becomes_a_record_with_named_ports_and_pinned_vips() {
        let key = ServiceKey::new("demo", "hello");
        let entry = ClusterEntry {
            cluster: "east".into(),
            local: true,
            locality: Locality::default(),
            healthy: 1,
            total: 1,
            stale: false,
            pinned_vip: Some("127.77.0.2".parse().unwrap()),
            exported_at_ms: 0,
            gateway_address: String::new(),
            ports: vec![],
            draining: false,
        };
        let service = GlobalService {
            key: key.clone(),
            vip: Some("127.77.0.1".parse().unwrap()),
            ports: vec![
                PortSpec {
                    name: "http".into(),
                    port: 8080,
                    app_protocol: Default::default(),
                },
                PortSpec {
                    name: String::new(),
                    port: 9090,
                    app_protocol: Default::default(),
                },
            ],
            affinity: Affinity::Local,
            weights: BTreeMap::new(),
            clusters: vec![entry],
            conflicts: vec![],
        };
        let mut no_vip = service.clone();
        no_vip.key = ServiceKey::new("demo", "novip");
        no_vip.vip = None;
        let table = TableSnapshot {
            version: 3,
            services: BTreeMap::from([(key, service), (no_vip.key.clone(), no_vip)]).into(),
            ..Default::default()
        };
        let zone = zone_snapshot(&table, "clusterset.local", Duration::from_secs(5), 42);
        assert_eq!(
            zone.services.len(),
            1,
            "a service without a VIP is left out"
        );
        let r = zone.services.values().next().expect("one record");
        assert_eq!(r.vip.to_string(), "127.77.0.1");
        assert_eq!(r.ports.len(), 1, "only named ports get SRV records");
        assert_eq!(r.ports[0].port, 8080);
        assert_eq!(r.clusters[0].cluster, "east");
        assert_eq!(r.clusters[0].pinned_vip.to_string(), "127.77.0.2");
        assert_eq!((zone.ttl, zone.serial), (5, 42));
    }

    #[test]
    fn ready_named_endpoints_with_a_vip_become_endpoint_records_of_their_cluster() {
        use crate::table::headless::{EndpointEntry, HeadlessService};
        let key = ServiceKey::new("demo", "db");
        let entry = ClusterEntry {
            draining: false,
            cluster: "east".into(),
            local: true,
            locality: Locality::default(),
            healthy: 1,
            total: 2,
            stale: false,
            pinned_vip: Some("127.77.0.2".parse().unwrap()),
            exported_at_ms: 0,
            gateway_address: String::new(),
            ports: vec![],
        };
        let service = GlobalService {
            key: key.clone(),
            vip: Some("127.77.0.1".parse().unwrap()),
            ports: vec![],
            affinity: Affinity::Local,
            weights: BTreeMap::new(),
            clusters: vec![entry],
            conflicts: vec![],
        };
        let ep = |hostname: &str, ready, vip: Option<&str>| EndpointEntry {
            hostname: hostname.into(),
            ready,
            vip: vip.map(|v| v.parse().unwrap()),
        };
        let headless = HeadlessService {
            clusters: BTreeMap::from([(
                "east".to_string(),
                vec![
                    ep("db-0", true, Some("127.77.0.3")),
                    ep("db-1", false, Some("127.77.0.4")),
                    ep("db-2", true, None),
                ],
            )]),
        };
        let table = TableSnapshot {
            version: 1,
            services: BTreeMap::from([(key.clone(), service)]).into(),
            headless: BTreeMap::from([(key, headless)]),
            ..Default::default()
        };
        let zone = zone_snapshot(&table, "clusterset.local", Duration::from_secs(5), 1);
        let record = zone.services.values().next().expect("one record");
        let eps = &record.clusters[0].endpoints;
        assert_eq!(
            eps.len(),
            1,
            "not ready and VIP-less endpoints are left out"
        );
        assert_eq!(eps[0].hostname, "db-0");
        assert_eq!(eps[0].vip.to_string(), "127.77.0.3");
    }

    fn service(name: &str, vip: u8, clusters: &[&str]) -> GlobalService {
        let key = ServiceKey::new("demo", name);
        let entry = |cluster: &&str, i: u8| ClusterEntry {
            cluster: (*cluster).into(),
            local: false,
            locality: Locality::default(),
            healthy: 1,
            total: 1,
            stale: false,
            pinned_vip: Some(std::net::Ipv4Addr::new(127, 77, i, vip)),
            exported_at_ms: 0,
            gateway_address: String::new(),
            ports: vec![],
            draining: false,
        };
        GlobalService {
            key,
            vip: Some(std::net::Ipv4Addr::new(127, 77, 0, vip)),
            ports: vec![],
            affinity: Affinity::Local,
            weights: BTreeMap::new(),
            clusters: (1..).zip(clusters).map(|(i, c)| entry(c, i)).collect(),
            conflicts: vec![],
        }
    }

    /// One change to a table.
    type Step = Box<dyn Fn(&mut TableSnapshot)>;

    #[test]
    fn an_updated_zone_equals_the_zone_built_whole() {
        use crate::table::headless::{EndpointEntry, HeadlessService};
        let ttl = Duration::from_secs(5);
        let mut table = TableSnapshot::default();
        for (i, name) in (1..).zip(["a", "b", "c", "d"]) {
            let s = service(name, i, &["east", "west"]);
            table.services.insert(s.key.clone(), s);
        }
        let mut was = table.clone();
        let mut zone = zone_snapshot(&was, "clusterset.local", ttl, 1);
        let steps: Vec<Step> = vec![
            Box::new(|t| {
                t.services.remove(&ServiceKey::new("demo", "b"));
            }),
            Box::new(|t| {
                let s = service("c", 30, &["eu"]);
                t.services.insert(s.key.clone(), s);
            }),
            Box::new(|t| {
                let mut s = service("e", 40, &["east"]);
                s.vip = None;
                t.services.insert(s.key.clone(), s);
            }),
            Box::new(|t| {
                let endpoint = EndpointEntry {
                    hostname: "db-0".into(),
                    ready: true,
                    vip: Some("127.77.9.9".parse().unwrap()),
                };
                let headless = HeadlessService {
                    clusters: BTreeMap::from([("east".to_string(), vec![endpoint])]),
                };
                t.headless.insert(ServiceKey::new("demo", "a"), headless);
            }),
        ];
        for (serial, step) in (2..).zip(steps) {
            step(&mut table);
            let updated = zone_update(&zone, &was, &table, serial);
            let whole = zone_snapshot(&table, "clusterset.local", ttl, serial);
            assert_eq!(updated, whole, "serial {serial}");
            (was, zone) = (table.clone(), updated);
        }
    }
}
