//! Applying a change to the table in time proportional to what changed.
//!
//! The owner task ([`super::run`]) records which services an event touches
//! ([`Touched`]): the keys of a peer's incremental export update, and the
//! keys whose entry differs between two of this cluster's export states
//! ([`changed_exports`]). [`update`] then merges only those services again
//! (the same `merge` the full [`super::build`] uses, over the same
//! candidates) into the persistent map of the last snapshot: an
//! `imbl::OrdMap` whose clone is O(1) and whose update copies one path of
//! the tree, so a published snapshot shares every unchanged service with
//! the one before, and readers find the changed keys with
//! `OrdMap::diff` in time proportional to the change.
//!
//! Anything wider falls back to a full build: a full update from a peer, a
//! change of the peers or of their link states, new external VIPs, a
//! restricted `imports` policy (its refusals are judged over everything),
//! and a VIP range so nearly full that an allocation might have to reclaim
//! (reclaiming asks which names are still in use, a question about the
//! whole table). [`update`] is checked against [`super::build`] by a
//! property test (`tests/incremental.rs`).

use std::collections::{BTreeMap, BTreeSet};

use imbl::OrdMap;

use super::headless::{EndpointEntry, HeadlessService};
use super::vips::VipSource;
use super::{
    Candidate, GlobalService, Imports, LocalCluster, PeerLink, TableEvent, local_candidate,
    merge_sorted, peer_candidate,
};
use crate::exports::ExportState;
use crate::model::{LinkState, NamedEndpoints, ServiceKey, VipName};

/// The global services, as published: a persistent map.
pub type Services = OrdMap<ServiceKey, GlobalService>;

/// The services the events since the last publish touched.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Touched {
    /// Something changed that only a full build settles.
    pub full: bool,
    /// The services to merge again.
    pub keys: BTreeSet<ServiceKey>,
}

impl Touched {
    /// Notes what `event` touches.
    pub fn note(&mut self, event: &TableEvent) {
        match event {
            TableEvent::Imports {
                full,
                upserts,
                removals,
                ..
            } => {
                self.full |= *full;
                if !self.full {
                    self.keys.extend(upserts.iter().map(|(k, _)| k.clone()));
                    self.keys.extend(removals.iter().cloned());
                }
            }
        }
    }

    /// Asks for a full build.
    pub fn all(&mut self) {
        self.full = true;
    }
}

/// The keys whose export differs between `before` and `after`: a merge
/// of two sorted maps, comparing shared entries by pointer first.
pub fn changed_exports(before: &ExportState, after: &ExportState) -> Vec<ServiceKey> {
    if std::sync::Arc::ptr_eq(&before.entries, &after.entries) {
        return Vec::new();
    }
    let (mut a, mut b) = (
        before.entries.iter().peekable(),
        after.entries.iter().peekable(),
    );
    let mut out = Vec::new();
    // Bounded: each turn consumes at least one entry of `a` or `b`.
    loop {
        match (a.peek(), b.peek()) {
            (Some((ka, ea)), Some((kb, eb))) => match ka.cmp(kb) {
                std::cmp::Ordering::Less => {
                    out.push((*ka).clone());
                    a.next();
                }
                std::cmp::Ordering::Greater => {
                    out.push((*kb).clone());
                    b.next();
                }
                std::cmp::Ordering::Equal => {
                    if !std::sync::Arc::ptr_eq(ea, eb) && ea != eb {
                        out.push((*ka).clone());
                    }
                    a.next();
                    b.next();
                }
            },
            (Some((k, _)), None) | (None, Some((k, _))) => {
                out.push((*k).clone());
                a.next();
                b.next();
            }
            (None, None) => return out,
        }
    }
}

/// How many new VIPs merging `keys` again may allocate at most: the
/// service's own and one pinned VIP per cluster (this one and each peer).
pub fn vips_needed(keys: usize, peers: usize) -> usize {
    keys.saturating_mul(peers + 2)
}

/// Merges the services `keys` again from the inputs into `services`: a
/// service no cluster exports any more is removed. The caller has made
/// sure no allocation needs to reclaim (see the module docs), so names in
/// use are never asked about.
pub fn update(
    services: &mut Services,
    keys: &BTreeSet<ServiceKey>,
    me: &LocalCluster,
    exports: &ExportState,
    peers: &[PeerLink],
    imports: &Imports,
    vips: &mut dyn VipSource,
) {
    let in_use = |_: &crate::model::VipName| true;
    // In key order, as the full build allocates new VIPs.
    for key in keys {
        let es = candidates_for(key, me, exports, peers, imports);
        if es.is_empty() {
            services.remove(key);
        } else {
            let service = merge_sorted(key.clone(), es, vips, &in_use);
            services.insert(key.clone(), service);
        }
    }
}

/// Rebuilds the headless entries of `keys` in `headless`, reading the
/// sources in the order the full build reads them (this cluster, then
/// each peer; keys in order within each), so new endpoint VIPs are
/// allocated as a full build would allocate them.
pub fn update_headless(
    headless: &mut BTreeMap<ServiceKey, HeadlessService>,
    keys: &BTreeSet<ServiceKey>,
    me: &LocalCluster,
    exports: &ExportState,
    peers: &[PeerLink],
    imports: &Imports,
    vips: &mut dyn VipSource,
) {
    for key in keys {
        headless.remove(key);
    }
    let in_use = |_: &VipName| true;
    for (cluster, key, named) in headless_sources(keys, me, exports, peers, imports) {
        let endpoints = named
            .iter()
            .map(|e| EndpointEntry {
                hostname: e.hostname.clone(),
                ready: e.ready,
                vip: vips.vip(&key.endpoint_vip(cluster, &e.hostname), &in_use),
            })
            .collect();
        headless
            .entry(key.clone())
            .or_default()
            .clusters
            .insert(cluster.to_string(), endpoints);
    }
}

/// How many named endpoints the exports of `keys` hold: the most new
/// endpoint VIPs [`update_headless`] may allocate.
pub fn endpoints_of(
    keys: &BTreeSet<ServiceKey>,
    me: &LocalCluster,
    exports: &ExportState,
    peers: &[PeerLink],
    imports: &Imports,
) -> usize {
    headless_sources(keys, me, exports, peers, imports)
        .map(|(_, _, named)| named.iter().count())
        .sum()
}

/// The headless exports of `keys`: (cluster, key, endpoints), this
/// cluster's first, then each counted peer's.
fn headless_sources<'a>(
    keys: &'a BTreeSet<ServiceKey>,
    me: &'a LocalCluster,
    exports: &'a ExportState,
    peers: &'a [PeerLink],
    imports: &'a Imports,
) -> impl Iterator<Item = (&'a str, &'a ServiceKey, &'a NamedEndpoints)> + 'a {
    let local = keys.iter().filter_map(move |k| {
        let named = exports.entries.get(k)?.headless.as_ref()?;
        Some((me.name.as_str(), k, named))
    });
    let remote = peers
        .iter()
        .filter(|p| p.state != LinkState::Disconnected)
        .filter_map(move |p| Some((p.name.as_str(), imports.get(&p.name)?)))
        .flat_map(move |(peer, services)| {
            keys.iter()
                .filter_map(move |k| Some((peer, k, services.get(k)?.headless.as_ref()?)))
        });
    local.chain(remote)
}

/// Every cluster's export of `key`, as the full build collects them:
/// this cluster's first, then the peers' in order.
fn candidates_for(
    key: &ServiceKey,
    me: &LocalCluster,
    exports: &ExportState,
    peers: &[PeerLink],
    imports: &Imports,
) -> Vec<Candidate> {
    let local = exports.entries.get(key).map(|e| local_candidate(me, e));
    let remote = peers
        .iter()
        .filter(|p| p.state != LinkState::Disconnected)
        .filter_map(|p| Some(peer_candidate(p, imports.get(&p.name)?.get(key)?)));
    local.into_iter().chain(remote).collect()
}

#[cfg(test)]
mod tests;
