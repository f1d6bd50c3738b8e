//! Headless services in the global table: for every cluster that exports
//! a service headless (`clusterIP: None`), each named endpoint (a
//! StatefulSet pod) with the VIP pinned to it (DESIGN.md, "Wave 2 contract
//! → Headless services across clusters").
//!
//! [`build`] reads the same inputs as the rest of the table (this
//! cluster's exports, the peers' imports, the peers' link states) and asks
//! the same [`VipSource`] for one VIP per (service, cluster, hostname)
//! ([`ServiceKey::endpoint_vip`]). Allocations are kept in the store like
//! every VIP, so a pod keeps its VIP across restarts of the control plane
//! and across its own restarts: a name that goes away keeps its address
//! until the range is full and the name is still gone ([`super::vips`]).
//! The result is [`TableSnapshot::headless`]; DNS and the gateways read it.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use super::vips::VipSource;
use super::{Imports, LocalCluster, PeerLink, TableSnapshot};
use crate::exports::ExportState;
use crate::model::{LinkState, NamedEndpoints, ServiceKey, VipName};

/// One named endpoint of a headless service in one cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointEntry {
    /// Its hostname (a DNS label).
    pub hostname: String,
    /// Ready, as its cluster says.
    pub ready: bool,
    /// The VIP reaching this endpoint only (`None` when `vipRange` is full).
    pub vip: Option<Ipv4Addr>,
}

/// A service that at least one cluster exports headless.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HeadlessService {
    /// Cluster → its named endpoints, sorted by hostname. A cluster that
    /// exports the service headless with no hostname is listed, empty.
    pub clusters: BTreeMap<String, Vec<EndpointEntry>>,
}

impl TableSnapshot {
    /// Whether `key` is a headless service here: some cluster exports it
    /// with `clusterIP: None` (an MCS `ServiceImport` of type `Headless`).
    pub fn is_headless(&self, key: &ServiceKey) -> bool {
        self.headless.contains_key(key)
    }

    /// The named endpoints of `key` by cluster, when it is headless.
    pub fn headless_service(&self, key: &ServiceKey) -> Option<&HeadlessService> {
        self.headless.get(key)
    }
}

/// Every headless export the table counts: (service, cluster, endpoints).
/// A disconnected peer's count for nothing, as in [`super::build`].
fn sources<'a>(
    me: &'a LocalCluster,
    exports: &'a ExportState,
    peers: &'a [PeerLink],
    imports: &'a Imports,
) -> impl Iterator<Item = (&'a ServiceKey, &'a str, &'a NamedEndpoints)> + 'a {
    let local = exports
        .entries
        .iter()
        .filter_map(move |(key, e)| Some((key, me.name.as_str(), e.headless.as_ref()?)));
    let remote = peers
        .iter()
        .filter(|p| p.state != LinkState::Disconnected)
        .filter_map(move |p| Some((p, imports.get(&p.name)?)))
        .flat_map(|(p, services)| {
            services
                .iter()
                .filter_map(move |(key, i)| Some((key, p.name.as_str(), i.headless.as_ref()?)))
        });
    local.chain(remote)
}

/// The VIP names of every named endpoint, so that a full range never
/// reclaims one that is in use.
pub(super) fn live_names(
    me: &LocalCluster,
    exports: &ExportState,
    peers: &[PeerLink],
    imports: &Imports,
) -> Vec<VipName> {
    sources(me, exports, peers, imports)
        .flat_map(|(key, cluster, named)| {
            named
                .iter()
                .map(move |e| key.endpoint_vip(cluster, &e.hostname))
        })
        .collect()
}

/// The headless services, with a VIP per named endpoint from `vips`.
pub(super) fn build(
    me: &LocalCluster,
    exports: &ExportState,
    peers: &[PeerLink],
    imports: &Imports,
    vips: &mut dyn VipSource,
    in_use: &dyn Fn(&VipName) -> bool,
) -> BTreeMap<ServiceKey, HeadlessService> {
    let mut out: BTreeMap<ServiceKey, HeadlessService> = BTreeMap::new();
    for (key, cluster, named) in sources(me, exports, peers, imports) {
        let endpoints = named
            .iter()
            .map(|e| EndpointEntry {
                hostname: e.hostname.clone(),
                ready: e.ready,
                vip: vips.vip(&key.endpoint_vip(cluster, &e.hostname), in_use),
            })
            .collect();
        out.entry(key.clone())
            .or_default()
            .clusters
            .insert(cluster.to_string(), endpoints);
    }
    out
}

#[cfg(test)]
mod tests;
