//! The published state of the zone and the index built from it.
//!
//! The control plane converts its global service table into a
//! [`ZoneSnapshot`] and publishes it on a `tokio::sync::watch` channel. The
//! DNS server turns each snapshot it sees into a [`ZoneIndex`] once (lowercase
//! keys, prebuilt names), so a query costs a few hash lookups and never
//! scans the service list. A snapshot's services and the index are
//! persistent maps: the index of a new snapshot is the previous index with
//! the changed services replaced (`update`), so a change costs what
//! changed, not the zone's size.

mod update;

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::sync::Arc;

use hickory_proto::ProtoError;
use hickory_proto::rr::rdata::{NS, SOA};
use hickory_proto::rr::{Name, RData, Record};
use tracing::{debug, warn};

pub(crate) use update::IndexChanges;

/// The services of a zone, keyed by (namespace, name) as published: a
/// persistent map (`imbl::OrdMap`), so a snapshot that changes one service
/// shares every other record with the snapshot before, and the DNS server
/// finds the changed ones with `OrdMap::diff` without scanning the rest.
pub type ServiceRecords = imbl::OrdMap<(String, String), ServiceRecord>;

/// `services` keyed for a [`ZoneSnapshot`]; of two with the same
/// namespace and name, the last one wins.
pub fn service_records(services: impl IntoIterator<Item = ServiceRecord>) -> ServiceRecords {
    services
        .into_iter()
        .map(|s| ((s.namespace.clone(), s.name.clone()), s))
        .collect()
}

/// One published state of the zone.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ZoneSnapshot {
    /// The zone served, e.g. `clusterset.local` (lowercase, no trailing dot).
    pub zone: String,
    /// TTL of every record, in seconds; also the SOA minimum (the
    /// negative-caching TTL, RFC 2308 §4).
    pub ttl: u32,
    /// The services of the zone ([`service_records`] keys a list).
    pub services: ServiceRecords,
    /// SOA serial; the control plane bumps it on every change.
    pub serial: u32,
}

/// One global service: `<name>.<namespace>.svc.<zone>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceRecord {
    /// Kubernetes-style namespace (a DNS label).
    pub namespace: String,
    /// Service name (a DNS label).
    pub name: String,
    /// The address of the A record for `<svc>.<ns>.svc.<zone>`.
    pub vip: Ipv4Addr,
    /// Service ports; only named ones get SRV records.
    pub ports: Vec<PortRecord>,
    /// Clusters with a pinned VIP: `<cluster>.<svc>.<ns>.svc.<zone>`.
    pub clusters: Vec<ClusterRecord>,
}

/// A service port, published as SRV `_<name>._tcp.<svc>.<ns>.svc.<zone>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortRecord {
    /// Port name; empty for an unnamed port (no SRV record).
    pub name: String,
    /// The service port (the SRV port).
    pub port: u16,
    /// The SRV weight.
    pub weight: u16,
}

/// A VIP that reaches the service in one cluster only (no failover).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterRecord {
    /// Cluster name (a DNS label).
    pub cluster: String,
    /// The address of the A record for `<cluster>.<svc>.<ns>.svc.<zone>`.
    pub pinned_vip: Ipv4Addr,
    /// Headless services: the cluster's ready named endpoints, each
    /// `<hostname>.<cluster>.<svc>.<ns>.svc.<zone>` (MCS DNS spec). When
    /// any cluster has one, the service's SRV records list these names.
    pub endpoints: Vec<EndpointRecord>,
}

/// One named endpoint of a headless service (a StatefulSet pod).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointRecord {
    /// Its hostname (a DNS label).
    pub hostname: String,
    /// The address of its A record: a VIP reaching this endpoint only.
    pub vip: Ipv4Addr,
}

/// SOA timers. Nothing transfers this zone (AXFR is refused), so refresh,
/// retry and expire only need to be sane values (RFC 1912 §2.2 ranges).
const SOA_REFRESH: i32 = 3600;
const SOA_RETRY: i32 = 900;
const SOA_EXPIRE: i32 = 604_800;

/// A snapshot indexed for lookups: lowercase keys (RFC 4343: names are
/// case-insensitive) and the names the answers need, built once per
/// snapshot.
#[derive(Debug)]
pub(crate) struct ZoneIndex {
    snapshot: Arc<ZoneSnapshot>,
    zone: Name,
    /// Lowercase namespace → lowercase service name → entry; persistent
    /// maps, so an updated index shares what did not change.
    namespaces: Namespaces,
}

/// The index's services by lowercase namespace, then name.
pub(crate) type Namespaces = imbl::HashMap<String, imbl::HashMap<String, Arc<ServiceEntry>>>;

/// What the answers need about one service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ServiceEntry {
    /// The service VIP.
    pub(crate) vip: Ipv4Addr,
    /// `<svc>.<ns>.svc.<zone>.`, lowercase: the SRV target.
    pub(crate) fqdn: Name,
    /// Pinned VIPs by lowercase cluster name.
    pub(crate) pinned: HashMap<String, Ipv4Addr>,
    /// `(port, weight)` by lowercase port name, in snapshot order.
    pub(crate) ports: HashMap<String, Vec<(u16, u16)>>,
    /// Named endpoints' VIPs by lowercase cluster, then hostname.
    pub(crate) endpoints: HashMap<String, HashMap<String, Ipv4Addr>>,
    /// Every named endpoint's `<hostname>.<cluster>.<svc>.<ns>.svc.<zone>.`
    /// (lowercase) and VIP, sorted: the SRV targets of a headless service.
    pub(crate) endpoint_names: Vec<(Name, Ipv4Addr)>,
}

impl ZoneIndex {
    /// Indexes `snapshot` for the zone `zone` (lowercase, fully qualified).
    ///
    /// A snapshot for another zone (published while a query for this one
    /// was in flight) is served as an empty zone, with its serial and TTL.
    /// A service whose names do not form a valid DNS name is skipped and
    /// logged: a daemon drops bad input and keeps serving.
    pub(crate) fn build(snapshot: Arc<ZoneSnapshot>, zone: &Name) -> Self {
        let mut index = Self {
            snapshot: Arc::clone(&snapshot),
            zone: zone.clone(),
            namespaces: Namespaces::new(),
        };
        let published = zone_name(&snapshot.zone);
        if published.as_ref().ok() != Some(zone) {
            debug!(
                published = %snapshot.zone,
                serving = %zone,
                "zone snapshot is for another zone; answering as if it had no services"
            );
            return index;
        }
        for service in snapshot.services.values() {
            if let Err(error) = index.insert(service) {
                warn!(
                    namespace = %service.namespace,
                    service = %service.name,
                    %error,
                    "service name is not a valid DNS name; leaving it out of DNS"
                );
            }
        }
        index
    }

    fn insert(&mut self, service: &ServiceRecord) -> Result<(), ProtoError> {
        let entry = self.entry_of(service)?;
        let ns = service.namespace.to_ascii_lowercase();
        let svc = service.name.to_ascii_lowercase();
        let mut services = self.namespaces.get(&ns).cloned().unwrap_or_default();
        if services.insert(svc, Arc::new(entry)).is_some() {
            warn!(
                namespace = %service.namespace,
                service = %service.name,
                "service appears twice in the zone snapshot (names differ in case only); the last one wins"
            );
        }
        self.namespaces.insert(ns, services);
        Ok(())
    }

    /// The entry `service` is indexed as.
    fn entry_of(&self, service: &ServiceRecord) -> Result<ServiceEntry, ProtoError> {
        let ns = service.namespace.to_ascii_lowercase();
        let svc = service.name.to_ascii_lowercase();
        let fqdn = Name::from_ascii(format!("{svc}.{ns}.svc"))?.append_domain(&self.zone)?;
        if fqdn.iter().count() != self.zone.iter().count() + 3 {
            return Err(ProtoError::from(
                "namespace and name must be one label each",
            ));
        }
        let mut entry = ServiceEntry {
            vip: service.vip,
            fqdn,
            pinned: HashMap::new(),
            ports: HashMap::new(),
            endpoints: HashMap::new(),
            endpoint_names: Vec::new(),
        };
        for cluster in &service.clusters {
            let cluster_label = cluster.cluster.to_ascii_lowercase();
            entry
                .pinned
                .insert(cluster_label.clone(), cluster.pinned_vip);
            index_endpoints(&mut entry, &cluster_label, &cluster.endpoints);
        }
        entry.endpoint_names.sort();
        for port in service.ports.iter().filter(|p| !p.name.is_empty()) {
            let targets = entry.ports.entry(port.name.to_ascii_lowercase());
            let targets = targets.or_default();
            if !targets.contains(&(port.port, port.weight)) {
                targets.push((port.port, port.weight));
            }
        }
        Ok(entry)
    }

    /// The snapshot this index was built from.
    pub(crate) fn snapshot(&self) -> &Arc<ZoneSnapshot> {
        &self.snapshot
    }

    /// The zone served (lowercase, fully qualified).
    pub(crate) fn zone(&self) -> &Name {
        &self.zone
    }

    /// The TTL of every record.
    pub(crate) fn ttl(&self) -> u32 {
        self.snapshot.ttl
    }

    /// Whether at least one service lives in namespace `ns` (lowercase).
    pub(crate) fn has_namespace(&self, ns: &str) -> bool {
        self.namespaces.get(ns).is_some_and(|s| !s.is_empty())
    }

    /// Every namespace (lowercase) and its services by lowercase name.
    pub(crate) fn namespaces(&self) -> &Namespaces {
        &self.namespaces
    }

    /// The service `svc` in namespace `ns` (both lowercase).
    pub(crate) fn service(&self, ns: &str, svc: &str) -> Option<&ServiceEntry> {
        self.namespaces.get(ns)?.get(svc).map(|e| &**e)
    }

    /// `ns.<zone>.`: the name server named by the SOA and the apex NS record.
    pub(crate) fn name_server(&self) -> Name {
        self.zone
            .prepend_label("ns")
            .expect("zone_name checked that hostmaster.<zone>, which is longer, fits")
    }

    /// The zone's SOA record, owned by `owner` (the apex, in the case asked).
    pub(crate) fn soa_record(&self, owner: Name) -> Record {
        let hostmaster = self
            .zone
            .prepend_label("hostmaster")
            .expect("zone_name checked that hostmaster.<zone> fits");
        // RFC 2308 §4: the SOA minimum is the negative-caching TTL; it is
        // the record TTL too, so negative answers live as long as positive.
        let soa = SOA::new(
            self.name_server(),
            hostmaster,
            self.snapshot.serial,
            SOA_REFRESH,
            SOA_RETRY,
            SOA_EXPIRE,
            self.ttl(),
        );
        Record::from_rdata(owner, self.ttl(), RData::SOA(soa))
    }

    /// The zone's NS record, owned by `owner` (the apex, in the case asked).
    pub(crate) fn ns_record(&self, owner: Name) -> Record {
        Record::from_rdata(owner, self.ttl(), RData::NS(NS(self.name_server())))
    }
}

/// Adds `cluster`'s named endpoints to `entry`. A hostname that does not
/// make one label under the cluster's name is left out and logged.
fn index_endpoints(entry: &mut ServiceEntry, cluster: &str, endpoints: &[EndpointRecord]) {
    for e in endpoints {
        let host = e.hostname.to_ascii_lowercase();
        let name = Name::from_ascii(format!("{host}.{cluster}"))
            .and_then(|n| n.append_domain(&entry.fqdn));
        match name {
            Ok(name) if name.iter().count() == entry.fqdn.iter().count() + 2 => {
                entry.endpoint_names.push((name, e.vip));
                entry
                    .endpoints
                    .entry(cluster.to_string())
                    .or_default()
                    .insert(host, e.vip);
            }
            _ => warn!(
                %cluster,
                hostname = %e.hostname,
                "endpoint hostname is not one DNS label; leaving it out of DNS"
            ),
        }
    }
}

/// Parses a zone as written in a snapshot or config (`clusterset.local`,
/// with or without the trailing dot) into a lowercase, fully qualified name.
///
/// # Errors
///
/// The zone is empty, the root, not a valid DNS name, or too long to hold
/// `hostmaster.<zone>` (the SOA rname).
pub(crate) fn zone_name(zone: &str) -> Result<Name, ProtoError> {
    let mut name = Name::from_ascii(zone)?.to_lowercase();
    name.set_fqdn(true);
    if name.is_root() {
        return Err(ProtoError::from("the zone must be a name below the root"));
    }
    // The invariant `ZoneIndex::soa_record` and `name_server` rely on.
    name.prepend_label("hostmaster")?;
    Ok(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn service(ns: &str, name: &str) -> ServiceRecord {
        ServiceRecord {
            namespace: ns.into(),
            name: name.into(),
            vip: Ipv4Addr::new(10, 0, 0, 1),
            ports: vec![],
            clusters: vec![],
        }
    }

    fn index(services: Vec<ServiceRecord>) -> ZoneIndex {
        let snapshot = ZoneSnapshot {
            zone: "clusterset.local".into(),
            ttl: 5,
            services: service_records(services),
            serial: 1,
        };
        let zone = zone_name("clusterset.local").expect("valid zone");
        ZoneIndex::build(Arc::new(snapshot), &zone)
    }

    #[test]
    fn zone_names_are_lowercase_and_fully_qualified() {
        let zone = zone_name("ClusterSet.Local.").expect("valid zone");
        assert!(zone.is_fqdn());
        assert_eq!(zone.to_ascii(), "clusterset.local.");
        assert_eq!(zone_name("clusterset.local").expect("valid"), zone);
    }

    #[test]
    fn empty_and_root_zones_are_rejected() {
        assert!(zone_name("").is_err());
        assert!(zone_name(".").is_err());
        assert!(zone_name("bad..zone").is_err());
    }

    #[test]
    fn services_are_indexed_by_lowercase_names() {
        let index = index(vec![service("Prod", "Web")]);
        let entry = index.service("prod", "web").expect("indexed");
        assert_eq!(entry.fqdn.to_ascii(), "web.prod.svc.clusterset.local.");
        assert!(index.has_namespace("prod"));
        assert!(!index.has_namespace("dev"));
    }

    #[test]
    fn a_service_with_a_dotted_name_is_left_out() {
        let index = index(vec![service("prod", "a.b"), service("prod", "ok")]);
        assert!(index.service("prod", "a.b").is_none());
        assert!(index.service("prod", "ok").is_some());
    }

    #[test]
    fn only_named_ports_are_indexed_and_duplicates_collapse() {
        let mut web = service("prod", "web");
        web.ports = vec![
            PortRecord {
                name: "HTTP".into(),
                port: 80,
                weight: 1,
            },
            PortRecord {
                name: "http".into(),
                port: 80,
                weight: 1,
            },
            PortRecord {
                name: String::new(),
                port: 9090,
                weight: 1,
            },
        ];
        let index = index(vec![web]);
        let entry = index.service("prod", "web").expect("indexed");
        assert_eq!(entry.ports.len(), 1);
        assert_eq!(entry.ports["http"], vec![(80, 1)]);
    }

    #[test]
    fn a_snapshot_for_another_zone_is_served_empty() {
        let snapshot = ZoneSnapshot {
            zone: "other.local".into(),
            ttl: 5,
            services: service_records([service("prod", "web")]),
            serial: 1,
        };
        let zone = zone_name("clusterset.local").expect("valid zone");
        let index = ZoneIndex::build(Arc::new(snapshot), &zone);
        assert!(index.service("prod", "web").is_none());
    }
}
