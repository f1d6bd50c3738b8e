//! The global service table: every cluster's exports of a service merged
//! into one global service (namespace sameness), with a VIP, a pinned VIP
//! per cluster, conflicts flagged and stale peers marked.
//!
//! One owner task ([`run`], in `owner`) holds the imports and the VIP
//! allocator, applies events, merges again only the services they touch
//! ([`incremental`]; [`build`], a pure function over everything, is the
//! reference and the fallback) and publishes [`TableSnapshot`]s on a
//! `watch` channel read by DNS, the admin API and gateways. A snapshot's
//! services are a persistent map: it shares every unchanged service with
//! the snapshot before, and readers find what changed with
//! `OrdMap::diff`. Imports are persisted by the peering session *before* they
//! reach the table (so an ack never outruns the disk), and loaded from the
//! store at start: a restarted cluster serves its last imports at once,
//! stale until their peers reconnect. The `imports` policy is applied
//! before each rebuild ([`policy::admit`]): a refused export reaches no
//! global service, and is published as a [`Refusal`] instead.

pub mod headless;
pub mod incremental;
mod owner;
pub mod policy;
mod protocols;
pub mod vips;

use std::collections::{BTreeMap, HashMap};
use std::net::Ipv4Addr;
use std::sync::Arc;

use tokio::sync::{mpsc, watch};

use crate::exports::ExportState;
use crate::model::{Affinity, ImportedService, LinkState, Locality, PortSpec, ServiceKey, VipName};
use fedmesh_proto::config::ImportsPolicy;
pub use incremental::Services;
pub use owner::run;
pub use policy::Refusal;
use vips::VipSource;

/// What the table needs to know of one peer: which imports count, and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerLink {
    /// The peer's cluster name.
    pub name: String,
    /// Its locality.
    pub locality: Locality,
    /// Its gateway ingress address.
    pub gateway_address: String,
    /// Its link state: a disconnected peer's imports count for nothing, a
    /// stale one's are marked stale.
    pub state: LinkState,
}

/// A change to the imports, already persisted.
#[derive(Debug, Clone)]
pub enum TableEvent {
    /// An export update applied for `peer`.
    Imports {
        /// The exporting peer.
        peer: String,
        /// Replaces everything from the peer.
        full: bool,
        /// New or changed services.
        upserts: Vec<(ServiceKey, ImportedService)>,
        /// Withdrawn services.
        removals: Vec<ServiceKey>,
    },
}

/// One cluster serving a global service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterEntry {
    /// Cluster name.
    pub cluster: String,
    /// This cluster.
    pub local: bool,
    /// Where it runs.
    pub locality: Locality,
    /// Its healthy endpoints.
    pub healthy: u32,
    /// All its endpoints, ready or not (never below `healthy`).
    pub total: u32,
    /// Its peer is stale (silent or disconnected, within `staleGrace`).
    pub stale: bool,
    /// VIP reaching only this cluster.
    pub pinned_vip: Option<Ipv4Addr>,
    /// When it first exported the service (unix ms).
    pub exported_at_ms: i64,
    /// Its gateway's ingress address; empty for this cluster.
    pub gateway_address: String,
    /// The ports it exports.
    pub ports: Vec<PortSpec>,
    /// It is drained (`fedctl drain`): gateways send it new connections
    /// only when no other cluster can serve.
    pub draining: bool,
}

/// A service as the federation sees it from here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GlobalService {
    /// Identity.
    pub key: ServiceKey,
    /// Its VIP (`None` only when `vipRange` is exhausted).
    pub vip: Option<Ipv4Addr>,
    /// The ports of the oldest export.
    pub ports: Vec<PortSpec>,
    /// Target ordering: this cluster's own export's, else the oldest's.
    pub affinity: Affinity,
    /// Weights: this cluster's own export's, else the oldest's.
    pub weights: BTreeMap<String, u32>,
    /// Clusters exporting it, oldest export first.
    pub clusters: Vec<ClusterEntry>,
    /// Disagreements, for people.
    pub conflicts: Vec<String>,
}

/// A published state of the table.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TableSnapshot {
    /// Grows with every publish.
    pub version: u64,
    /// Global services by key: a persistent map, sharing every unchanged
    /// service with the snapshot before.
    pub services: Services,
    /// Peers' exports the `imports` policy refused, by service then peer.
    pub refused: Vec<Refusal>,
    /// The headless ones' named endpoints ([`headless`]).
    pub headless: BTreeMap<ServiceKey, headless::HeadlessService>,
}

impl TableSnapshot {
    /// How many services are imported from `peer`.
    pub fn imports_from(&self, peer: &str) -> usize {
        self.services
            .values()
            .filter(|s| s.clusters.iter().any(|c| c.cluster == peer))
            .count()
    }

    /// Peers' exports the `imports` policy refused (peer, service,
    /// reason), by service then peer.
    pub fn refused_exports(&self) -> Vec<Refusal> {
        self.refused.clone()
    }

    /// How many exports are refused, by peer and reason code
    /// (`namespace_not_imported`, `peer_not_allowed`), for metrics.
    pub fn refused_counts(&self) -> BTreeMap<(String, &'static str), u64> {
        policy::count_by_peer_and_reason(&self.refused)
    }
}

/// This cluster, as the table needs it.
#[derive(Debug, Clone)]
pub struct LocalCluster {
    /// Name.
    pub name: String,
    /// Locality.
    pub locality: Locality,
}

/// Imports by peer.
pub type Imports = HashMap<String, BTreeMap<ServiceKey, ImportedService>>;

/// One cluster's export of a service, before merging.
struct Candidate {
    entry: ClusterEntry,
    affinity: Affinity,
    weights: BTreeMap<String, u32>,
}

/// Builds the global services from this cluster's exports and the peers'
/// imports. Disconnected peers (stale past `staleGrace`) and unknown peers
/// contribute nothing.
pub fn build(
    me: &LocalCluster,
    exports: &ExportState,
    peers: &[PeerLink],
    imports: &Imports,
    vips: &mut dyn VipSource,
) -> BTreeMap<ServiceKey, GlobalService> {
    build_all(me, exports, peers, imports, vips).0
}

/// [`build`], and the headless services' named endpoints with their VIPs.
pub fn build_all(
    me: &LocalCluster,
    exports: &ExportState,
    peers: &[PeerLink],
    imports: &Imports,
    vips: &mut dyn VipSource,
) -> (
    BTreeMap<ServiceKey, GlobalService>,
    BTreeMap<ServiceKey, headless::HeadlessService>,
) {
    let mut entries = local_candidates(me, exports);
    add_peer_candidates(&mut entries, peers, imports);
    let mut live: std::collections::HashSet<VipName> = entries
        .iter()
        .flat_map(|(k, es)| {
            std::iter::once(k.global_vip())
                .chain(es.iter().map(move |c| k.pinned_vip(&c.entry.cluster)))
        })
        .collect();
    live.extend(headless::live_names(me, exports, peers, imports));
    let in_use = |name: &VipName| live.contains(name);
    let services = entries
        .into_iter()
        .map(|(key, es)| {
            let service = merge_sorted(key.clone(), es, vips, &in_use);
            (key, service)
        })
        .collect();
    // After the services' own VIPs: a nearly full range serves a new
    // service before another pod name.
    let named = headless::build(me, exports, peers, imports, vips, &in_use);
    (services, named)
}

/// This cluster's own exports, one candidate each.
fn local_candidates(
    me: &LocalCluster,
    exports: &ExportState,
) -> BTreeMap<ServiceKey, Vec<Candidate>> {
    let mut entries: BTreeMap<ServiceKey, Vec<Candidate>> = BTreeMap::new();
    for (key, e) in exports.entries.iter() {
        entries
            .entry(key.clone())
            .or_default()
            .push(local_candidate(me, e));
    }
    entries
}

/// This cluster's export of one service.
fn local_candidate(me: &LocalCluster, e: &crate::exports::ExportEntry) -> Candidate {
    let entry = ClusterEntry {
        cluster: me.name.clone(),
        local: true,
        locality: me.locality.clone(),
        healthy: e.healthy,
        total: e.total.max(e.healthy),
        stale: false,
        pinned_vip: None,
        exported_at_ms: e.exported_at_ms,
        gateway_address: String::new(),
        ports: e.ports.clone(),
        draining: e.draining,
    };
    Candidate {
        entry,
        affinity: e.spec.affinity,
        weights: e.spec.weights.clone(),
    }
}

/// The peers' imports; a disconnected peer's count for nothing, a stale
/// one's are marked stale.
fn add_peer_candidates(
    entries: &mut BTreeMap<ServiceKey, Vec<Candidate>>,
    peers: &[PeerLink],
    imports: &Imports,
) {
    for peer in peers {
        if peer.state == LinkState::Disconnected {
            continue;
        }
        let Some(services) = imports.get(&peer.name) else {
            continue;
        };
        for (key, imp) in services {
            entries
                .entry(key.clone())
                .or_default()
                .push(peer_candidate(peer, imp));
        }
    }
}

/// A connected or stale peer's export of one service.
fn peer_candidate(peer: &PeerLink, imp: &ImportedService) -> Candidate {
    let entry = ClusterEntry {
        cluster: peer.name.clone(),
        local: false,
        locality: peer.locality.clone(),
        healthy: imp.healthy,
        total: imp.total.max(imp.healthy),
        stale: peer.state == LinkState::Stale,
        pinned_vip: None,
        exported_at_ms: imp.exported_at_ms,
        gateway_address: peer.gateway_address.clone(),
        ports: imp.ports.clone(),
        draining: imp.draining,
    };
    Candidate {
        entry,
        affinity: imp.affinity,
        weights: imp.weights.clone(),
    }
}

/// Merges one service's candidates, oldest export first (the cluster
/// name breaks ties).
fn merge_sorted(
    key: ServiceKey,
    mut es: Vec<Candidate>,
    vips: &mut dyn VipSource,
    in_use: &impl Fn(&VipName) -> bool,
) -> GlobalService {
    es.sort_by(|a, b| {
        (a.entry.exported_at_ms, &a.entry.cluster).cmp(&(b.entry.exported_at_ms, &b.entry.cluster))
    });
    merge(key, es, vips, in_use)
}

fn merge(
    key: ServiceKey,
    es: Vec<Candidate>,
    vips: &mut dyn VipSource,
    in_use: &impl Fn(&VipName) -> bool,
) -> GlobalService {
    let oldest = &es[0].entry;
    let all = es.iter().map(|c| c.entry.ports.as_slice());
    let ports = protocols::agreed(&oldest.ports, all);
    let mut conflicts = Vec::new();
    for e in es.iter().skip(1).map(|c| &c.entry) {
        if !protocols::same_ports(&e.ports, &ports) {
            conflicts.push(format!(
                "{} exports ports [{}] but the oldest export ({}) has [{}]; {}'s ports are used",
                e.cluster,
                join(&e.ports),
                oldest.cluster,
                join(&ports),
                oldest.cluster
            ));
        }
    }
    // The importing cluster's own export wins, else the oldest's.
    let chosen = es.iter().find(|c| c.entry.local).unwrap_or(&es[0]);
    let (affinity, weights) = (chosen.affinity, chosen.weights.clone());
    let vip = vips.vip(&key.global_vip(), in_use);
    if vip.is_none() {
        conflicts.push("no VIP yet: gateway.vipRange is full (widen it), or the import's Service has no ClusterIP yet".into());
    }
    let clusters = es
        .into_iter()
        .map(|c| {
            let mut e = c.entry;
            e.pinned_vip = vips.vip(&key.pinned_vip(&e.cluster), in_use);
            e
        })
        .collect();
    GlobalService {
        key,
        vip,
        ports,
        affinity,
        weights,
        clusters,
        conflicts,
    }
}

fn join(ports: &[PortSpec]) -> String {
    ports
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// What the owner task reads and writes.
pub struct TableTask {
    /// This cluster.
    pub me: LocalCluster,
    /// The store, to load imports and persist VIPs.
    pub store: Arc<crate::store::Store>,
    /// This cluster's exports.
    pub exports: watch::Receiver<Arc<ExportState>>,
    /// Import changes from peering sessions.
    pub events: mpsc::Receiver<TableEvent>,
    /// Bumps when peers or their link states change.
    pub peer_changes: watch::Receiver<u64>,
    /// Reads the current peers.
    pub peers: Box<dyn Fn() -> Vec<PeerLink> + Send>,
    /// Where VIPs come from.
    pub vips: VipMode,
    /// Which peers may serve which namespaces (config `imports`).
    pub imports_policy: ImportsPolicy,
    /// Where snapshots go.
    pub out: watch::Sender<Arc<TableSnapshot>>,
}

/// Where the table gets VIPs.
pub enum VipMode {
    /// Allocated here from `gateway.vipRange` and persisted.
    Range(fedmesh_proto::config::Ipv4Net),
    /// Assigned elsewhere (Kubernetes ClusterIPs), published on a channel.
    External(watch::Receiver<Arc<BTreeMap<VipName, Ipv4Addr>>>),
}

#[cfg(test)]
mod tests;
