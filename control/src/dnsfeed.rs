//! Feeds the DNS server: each service-table snapshot becomes a zone
//! snapshot (`fedmesh_dns::ZoneSnapshot`), published on the watch channel
//! the DNS server reads, so answers change as soon as the table does.

use std::sync::Arc;
use std::time::Duration;

use fedmesh_dns::{ClusterRecord, EndpointRecord, PortRecord, ServiceRecord, ZoneSnapshot};
use tokio::sync::watch;

use crate::clock;
use crate::model::ServiceKey;
use crate::table::TableSnapshot;

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
    let services = table
        .services
        .values()
        .filter_map(|s| {
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
        })
        .collect();
    ZoneSnapshot {
        zone: zone.to_string(),
        ttl: u32::try_from(ttl.as_secs()).unwrap_or(u32::MAX).max(1),
        services,
        serial,
    }
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
    loop {
        let snapshot = table.borrow_and_update().clone();
        let now = u32::try_from(clock::now_unix_ms() / 1000).unwrap_or(u32::MAX);
        serial = now.max(serial.wrapping_add(1));
        out.send_replace(Arc::new(zone_snapshot(&snapshot, &zone, ttl, serial)));
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
            services: BTreeMap::from([(key, service), (no_vip.key.clone(), no_vip)]),
            ..Default::default()
        };
        let zone = zone_snapshot(&table, "clusterset.local", Duration::from_secs(5), 42);
        assert_eq!(
            zone.services.len(),
            1,
            "a service without a VIP is left out"
        );
        let r = &zone.services[0];
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
            services: BTreeMap::from([(key.clone(), service)]),
            headless: BTreeMap::from([(key, headless)]),
            ..Default::default()
        };
        let zone = zone_snapshot(&table, "clusterset.local", Duration::from_secs(5), 1);
        let eps = &zone.services[0].clusters[0].endpoints;
        assert_eq!(
            eps.len(),
            1,
            "not ready and VIP-less endpoints are left out"
        );
        assert_eq!(eps[0].hostname, "db-0");
        assert_eq!(eps[0].vip.to_string(), "127.77.0.3");
    }
}
