//! One reading of the control plane's state for `/metrics`: taken from the
//! handles at scrape time ([`take`]), then written into the metric
//! families ([`super::metrics::ControlMetrics::record`]). Kept as plain
//! data so the metrics can be tested without a running control plane.

use crate::clock;
use crate::exports::diff;
use crate::model::LinkState;
use crate::peering::info::parse_roots;
use crate::table::TableSnapshot;

use super::WebInputs;
use super::process::ProcessStats;

/// One peer, as its series show it.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct PeerSample {
    /// Peer cluster name.
    pub name: String,
    /// Link state.
    pub state: LinkState,
    /// Seconds since the peer was last heard (since its state changed when
    /// it was never heard by this process).
    pub heartbeat_age_s: f64,
    /// Our exports version the peer last acked (0: none).
    pub acked_version: u64,
    /// Exports (changed or withdrawn) the peer has not acked yet.
    pub pending: u64,
    /// Services imported from it.
    pub imports: u64,
    /// Its exports refused here (imports policy).
    pub refused: u64,
    /// The end of its newest CA root (unix seconds; 0 when unknown).
    pub root_not_after_s: i64,
}

/// One certificate's end, for `fedmesh_control_cert_expiry_timestamp_seconds`.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct CertSample {
    /// `root`, `control`, `gateway` or `peer_root`.
    pub kind: &'static str,
    /// The cluster, gateway or peer it belongs to.
    pub name: String,
    /// Unix seconds.
    pub not_after_s: i64,
}

/// One cluster's healthy endpoints of one global service.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct EndpointSample {
    /// Namespace.
    pub namespace: String,
    /// Service name.
    pub service: String,
    /// The cluster serving it.
    pub cluster: String,
    /// Its healthy endpoints there.
    pub healthy: u32,
}

/// Everything `/metrics` shows that is read, not counted.
#[derive(Debug, Clone, Default, PartialEq)]
pub(super) struct Sample {
    /// Peers, by name.
    pub peers: Vec<PeerSample>,
    /// This cluster's exports.
    pub exports: u64,
    /// Their version (0 until the registry was first read).
    pub exports_version: u64,
    /// Services in the global table.
    pub services: u64,
    /// Healthy endpoints of each service in each cluster serving it.
    pub endpoints: Vec<EndpointSample>,
    /// This cluster's gateways known to the gateway API, and how many of
    /// them last reported ready with a stream open.
    pub gateways: u64,
    pub gateways_ready: u64,
    /// Certificate ends.
    pub certs: Vec<CertSample>,
    /// DNS responses by rcode (cumulative).
    pub dns: Vec<(&'static str, u64)>,
    /// This process, when /proc could be read.
    pub process: Option<ProcessStats>,
}

/// Reads the state behind `/metrics` now.
pub(super) fn take(inputs: &WebInputs) -> Sample {
    let now_ms = clock::now_unix_ms();
    let exports = inputs.exports.borrow().clone();
    let table = inputs.table.borrow().clone();
    let peers = inputs
        .peers
        .views()
        .into_iter()
        .map(|v| {
            let name = v.record.name.clone();
            let acked = inputs.acked.get(&name);
            let pending = match &acked {
                Some((_, view)) => {
                    let (up, gone) = diff(view, &exports.view_for(&name));
                    (up.len() + gone.len()) as u64
                }
                None => exports.view_for(&name).len() as u64,
            };
            PeerSample {
                heartbeat_age_s: ms_to_s(now_ms - v.last_heard_ms.unwrap_or(v.since_ms)),
                acked_version: acked.map_or(0, |(pos, _)| pos.version),
                pending,
                imports: table.imports_from(&name) as u64,
                refused: refused_exports(&table, &name),
                root_not_after_s: newest_root_end(&v.record.roots_pem),
                state: v.state,
                name,
            }
        })
        .collect::<Vec<_>>();
    let gateways = inputs.gateways.views(&inputs.gateway_name, now_ms);
    let ready = gateways
        .iter()
        .filter(|g| g.watches > 0 && g.status.as_ref().is_some_and(|(s, _)| s.ready))
        .count();
    let mut certs = vec![
        CertSample {
            kind: "root",
            name: inputs.cluster.clone(),
            not_after_s: inputs.root_not_after.unix_timestamp(),
        },
        CertSample {
            kind: "control",
            name: inputs.cluster.clone(),
            not_after_s: inputs.control_cert.not_after().unix_timestamp(),
        },
    ];
    certs.extend(
        gateways
            .iter()
            .filter(|g| g.cert_not_after_ms > 0)
            .map(|g| CertSample {
                kind: "gateway",
                name: g.name.clone(),
                not_after_s: g.cert_not_after_ms / 1000,
            }),
    );
    certs.extend(
        peers
            .iter()
            .filter(|p| p.root_not_after_s > 0)
            .map(|p| CertSample {
                kind: "peer_root",
                name: p.name.clone(),
                not_after_s: p.root_not_after_s,
            }),
    );
    Sample {
        peers,
        exports: exports.entries.len() as u64,
        exports_version: exports.version,
        services: table.services.len() as u64,
        endpoints: endpoints(&table),
        gateways: gateways.len() as u64,
        gateways_ready: ready as u64,
        certs,
        dns: inputs.dns.by_rcode(),
        process: super::process::read(),
    }
}

/// Every (service, cluster) pair of the table with its healthy endpoints.
fn endpoints(table: &TableSnapshot) -> Vec<EndpointSample> {
    let per_cluster = |s: &crate::table::GlobalService| {
        s.clusters
            .iter()
            .map(|c| EndpointSample {
                namespace: s.key.namespace.clone(),
                service: s.key.name.clone(),
                cluster: c.cluster.clone(),
                healthy: c.healthy,
            })
            .collect::<Vec<_>>()
    };
    table.services.values().flat_map(per_cluster).collect()
}

/// Exports of `peer` the imports policy refuses here now (DESIGN.md, "Who
/// may serve a name"): a gauge, since a refusal lasts while the export does.
fn refused_exports(table: &TableSnapshot, peer: &str) -> u64 {
    table.refused.iter().filter(|r| r.peer == peer).count() as u64
}

/// The end of the newest root in `roots_pem`, unix seconds (0: none parse).
fn newest_root_end(roots_pem: &[String]) -> i64 {
    parse_roots(roots_pem)
        .ok()
        .into_iter()
        .flatten()
        .filter_map(|der| fedmesh_proto::identity::inspect_cert(&der).ok())
        .map(|info| info.not_after.unix_timestamp())
        .max()
        .unwrap_or(0)
}

fn ms_to_s(ms: i64) -> f64 {
    ms.max(0) as f64 / 1000.0
}

#[cfg(test)]
mod tests {
    use fedmesh_proto::config::Refused;

    use super::*;
    use crate::model::ServiceKey;
    use crate::table::policy::Refusal;

    #[test]
    fn refused_exports_count_that_peers_refusals_only() {
        let refusal = |peer: &str, name: &str| Refusal {
            service: ServiceKey::new("demo", name),
            peer: peer.into(),
            reason: Refused::NamespaceNotImported {
                namespace: "demo".into(),
            },
        };
        let table = TableSnapshot {
            refused: vec![refusal("eu", "a"), refusal("eu", "b"), refusal("west", "a")],
            ..Default::default()
        };
        assert_eq!(refused_exports(&table, "eu"), 2);
        assert_eq!(refused_exports(&table, "west"), 1);
        assert_eq!(refused_exports(&table, "east"), 0);
    }
}
