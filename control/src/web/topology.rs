//! `/api/topology`: the federation as this cluster sees it, as JSON (the
//! shape is documented in docs/operations.md, "Topology JSON").
//!
//! - `clusters`: this one and every peer, with locality;
//! - `links`: this cluster ↔ each peer, with the link state and the time
//!   since the peer was last heard;
//! - `gateways`: this cluster's gateways as the gateway API knows them
//!   (stream open, last `ReportStatus`), then each peer's gateways with the
//!   probe results this cluster's gateways report for them;
//! - `services`: every service of the global table with the clusters
//!   serving it.
//!
//! [`build`] is pure: it takes the views, not the handles.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::api::gateways::GatewayView;
use crate::model::Locality;
use crate::peering::PeerView;
use crate::table::TableSnapshot;

/// A report is this old before a gateway's `ready` no longer counts.
const REPORT_FRESH_MS: i64 = 15_000;

/// The whole answer of `/api/topology`.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Topology {
    /// The cluster answering.
    pub cluster: String,
    /// When the answer was built (unix ms).
    pub generated_at_ms: i64,
    /// This cluster first, then the peers by name.
    pub clusters: Vec<ClusterNode>,
    /// One per peer.
    pub links: Vec<Link>,
    /// This cluster's gateways, then the peers' as probed from here.
    pub gateways: Vec<GatewayNode>,
    /// Global services by namespace and name.
    pub services: Vec<ServiceNode>,
}

/// A cluster and where it runs.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ClusterNode {
    /// Cluster name.
    pub name: String,
    /// Region.
    pub region: String,
    /// Zone.
    pub zone: String,
    /// Whether it is the cluster answering.
    pub local: bool,
}

/// This cluster's peering with one peer.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Link {
    /// This cluster.
    pub from: String,
    /// The peer.
    pub to: String,
    /// `connected`, `stale` or `disconnected`.
    pub state: &'static str,
    /// Unix ms of the last state change.
    pub since_ms: i64,
    /// Seconds since the peer was last heard (`null`: never, by this
    /// process).
    pub heartbeat_age_seconds: Option<f64>,
    /// The last error on this peering, if any.
    pub last_error: Option<String>,
}

/// A gateway of this cluster or of a peer.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct GatewayNode {
    /// The cluster it belongs to.
    pub cluster: String,
    /// Its name (this cluster's) or ingress address (a peer's).
    pub name: String,
    /// Whether it is this cluster's.
    pub local: bool,
    /// `healthy`, `unhealthy` or `unknown` (see `docs/operations.md`).
    pub health: &'static str,
    /// Local: snapshot streams open to this control plane.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub watches: Option<u32>,
    /// Local: what its last fresh report said of `/ready`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ready: Option<bool>,
    /// Peer: each of this cluster's gateways' probe of it.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub probes: Vec<Probe>,
}

/// One local gateway's probe result for a peer gateway.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Probe {
    /// The local gateway that probes.
    pub by: String,
    /// Whether its probes see the peer gateway up.
    pub up: bool,
}

/// A global service and where it is served.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ServiceNode {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// Its VIP, if one is allocated.
    pub vip: Option<String>,
    /// The clusters exporting it, oldest export first.
    pub clusters: Vec<ServedBy>,
}

/// One cluster serving a service.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ServedBy {
    /// Cluster name.
    pub cluster: String,
    /// Healthy endpoints there.
    pub healthy: u32,
    /// All endpoints there.
    pub total: u32,
    /// Its peer is stale.
    pub stale: bool,
}

/// The topology from one reading of the state (`now_ms` for ages).
pub fn build(
    me: (&str, &Locality),
    peers: &[PeerView],
    gateways: &[GatewayView],
    table: &TableSnapshot,
    now_ms: i64,
) -> Topology {
    let (cluster, locality) = me;
    let mut clusters = vec![ClusterNode {
        name: cluster.to_string(),
        region: locality.region.clone(),
        zone: locality.zone.clone(),
        local: true,
    }];
    clusters.extend(peers.iter().map(|p| ClusterNode {
        name: p.record.name.clone(),
        region: p.record.locality.region.clone(),
        zone: p.record.locality.zone.clone(),
        local: false,
    }));
    let links = peers
        .iter()
        .map(|p| Link {
            from: cluster.to_string(),
            to: p.record.name.clone(),
            state: p.state.as_str(),
            since_ms: p.since_ms,
            heartbeat_age_seconds: p.last_heard_ms.map(|t| (now_ms - t).max(0) as f64 / 1000.0),
            last_error: p.last_error.clone(),
        })
        .collect();
    let mut nodes: Vec<GatewayNode> = gateways
        .iter()
        .map(|g| local_gateway(cluster, g, now_ms))
        .collect();
    nodes.extend(peer_gateways(peers, gateways, now_ms));
    Topology {
        cluster: cluster.to_string(),
        generated_at_ms: now_ms,
        clusters,
        links,
        gateways: nodes,
        services: services(table),
    }
}

fn local_gateway(cluster: &str, g: &GatewayView, now_ms: i64) -> GatewayNode {
    let ready = g
        .status
        .as_ref()
        .filter(|(_, at)| now_ms - at < REPORT_FRESH_MS)
        .map(|(s, _)| s.ready);
    let health = match (g.watches > 0, ready) {
        (true, Some(true)) => "healthy",
        (_, Some(false)) | (false, _) => "unhealthy",
        (true, None) => "unknown",
    };
    GatewayNode {
        cluster: cluster.to_string(),
        name: g.name.clone(),
        local: true,
        health,
        watches: Some(g.watches),
        ready,
        probes: Vec::new(),
    }
}

/// Each peer's gateways: every address a fresh report of a local gateway
/// probes, and the address the peer advertises even when nobody probes it
/// yet (health `unknown`).
fn peer_gateways(peers: &[PeerView], gateways: &[GatewayView], now_ms: i64) -> Vec<GatewayNode> {
    let mut probed: BTreeMap<(String, String), Vec<Probe>> = BTreeMap::new();
    for p in peers {
        if !p.record.gateway_address.is_empty() {
            probed
                .entry((p.record.name.clone(), p.record.gateway_address.clone()))
                .or_default();
        }
    }
    let fresh = gateways.iter().filter_map(|g| {
        let (status, at) = g.status.as_ref()?;
        (now_ms - at < REPORT_FRESH_MS).then_some((g, status))
    });
    for (g, status) in fresh {
        for probe in &status.probes {
            let key = (probe.cluster.clone(), probe.address.clone());
            probed.entry(key).or_default().push(Probe {
                by: g.name.clone(),
                up: probe.up,
            });
        }
    }
    probed
        .into_iter()
        .map(|((cluster, address), probes)| GatewayNode {
            cluster,
            name: address,
            local: false,
            health: match (probes.is_empty(), probes.iter().any(|p| p.up)) {
                (true, _) => "unknown",
                (false, true) => "healthy",
                (false, false) => "unhealthy",
            },
            watches: None,
            ready: None,
            probes,
        })
        .collect()
}

fn services(table: &TableSnapshot) -> Vec<ServiceNode> {
    table
        .services
        .values()
        .map(|s| ServiceNode {
            namespace: s.key.namespace.clone(),
            name: s.key.name.clone(),
            vip: s.vip.map(|ip| ip.to_string()),
            clusters: s
                .clusters
                .iter()
                .map(|c| ServedBy {
                    cluster: c.cluster.clone(),
                    healthy: c.healthy,
                    total: c.total,
                    stale: c.stale,
                })
                .collect(),
        })
        .collect()
}

#[cfg(test)]
mod tests;
