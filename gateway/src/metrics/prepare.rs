//! Series at 0 from start. `increase()` and `rate()` need a sample before
//! the first event: a counter that appears only at its first failure shows
//! that failure as its starting value, so an alert on
//! `increase(...[5m]) > 0` never fires for it. [`Metrics::prepare`] runs
//! on every snapshot and creates, at 0, every series the snapshot names:
//!
//! - per imported service: connections failed and rate limited;
//! - per imported service and target cluster: connections opened and
//!   active, bytes both ways, and attempts failed by every reason that kind
//!   of target (local or remote) can fail with;
//! - per peer cluster (a remote target): TLS handshakes of both kinds,
//!   pooled connections opened and open, streams open, and ejections; per peer gateway address: probes ok and failed;
//! - per imported service with an HTTP port and target cluster: requests
//!   by the codes `http` prepares;
//! - per exported service and peer it is exported to: ingress bytes and
//!   active connections.
//!
//! The connect-latency histogram is the exception: it appears with a
//! target's first connection. It is read through `histogram_quantile` over
//! `rate()`, where a missing first sample changes nothing, and at 0 it
//! would be 21 of a target's 28 (local) or 33 (remote) series, for no
//! alert.
//!
//! Series the previous snapshot named and this one does not are removed, so
//! a gateway that runs for months does not export every service it ever
//! imported; Prometheus marks a removed series stale, and counts a series
//! that comes back from 0 as a counter reset, which `rate()` handles. A
//! target (or ingress pair) with connections still open keeps its series
//! until a later snapshot finds it idle: its open connections still count
//! into those handles, and removing them would lose their bytes.

use std::collections::{BTreeMap, BTreeSet};

use super::{
    HANDSHAKE_KINDS, LOCAL_ATTEMPT_REASONS, Metrics, PROBE_RESULTS, REMOTE_ATTEMPT_REASONS,
    cluster_labels, failure_labels, handshake_labels, probe_labels, service_labels, target_labels,
};
use crate::state::{GatewayState, ServiceKey};

/// Every label set one snapshot names.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(super) struct Named {
    /// Imported services.
    services: BTreeSet<ServiceKey>,
    /// (imported service, target cluster) → the target is local.
    targets: BTreeMap<(ServiceKey, String), bool>,
    /// Clusters that are a remote target of some import.
    peers: BTreeSet<String>,
    /// Their gateways' addresses.
    gateways: BTreeSet<String>,
    /// (exported service, peer cluster it is exported to).
    ingress: BTreeSet<(ServiceKey, String)>,
    /// (imported service with an HTTP port, target cluster).
    http: BTreeSet<(ServiceKey, String)>,
}

impl Named {
    /// What `state` names.
    fn of(state: &GatewayState) -> Self {
        let mut named = Named::default();
        for import in state.imports.values() {
            named.services.insert(import.key.clone());
            let http = import
                .ports
                .iter()
                .any(|(_, p)| state.import_protocol(&import.key, *p).is_http());
            for t in &import.targets {
                if http {
                    named.http.insert((import.key.clone(), t.cluster.clone()));
                }
                named
                    .targets
                    .insert((import.key.clone(), t.cluster.clone()), t.local);
                if !t.local {
                    named.peers.insert(t.cluster.clone());
                    named.gateways.insert(t.gateway.clone());
                }
            }
        }
        let peers: Vec<&str> = state
            .trust
            .iter()
            .map(|p| p.cluster.as_str())
            .filter(|c| *c != state.cluster)
            .collect();
        for (key, export) in &state.exports {
            for peer in peers.iter().filter(|p| export.allows(p)) {
                named.ingress.insert((key.clone(), (*peer).to_string()));
            }
        }
        named
    }
}

impl Named {
    /// What `self` names and `other` does not (a target that changed
    /// between local and remote counts as new). Series are removed only
    /// when a snapshot stops naming them, so what both name exists
    /// already and needs no `get_or_create`.
    fn without(&self, other: &Named) -> Named {
        Named {
            services: self.services.difference(&other.services).cloned().collect(),
            targets: self
                .targets
                .iter()
                .filter(|(t, local)| other.targets.get(*t) != Some(*local))
                .map(|(t, local)| (t.clone(), *local))
                .collect(),
            peers: self.peers.difference(&other.peers).cloned().collect(),
            gateways: self.gateways.difference(&other.gateways).cloned().collect(),
            ingress: self.ingress.difference(&other.ingress).cloned().collect(),
            http: self.http.difference(&other.http).cloned().collect(),
        }
    }
}

impl Metrics {
    /// Creates every series `state` names at 0 and removes those of the
    /// previous snapshot it no longer names (module docs). Idempotent; a
    /// snapshot that names what the last one did costs one comparison.
    pub fn prepare(&self, state: &GatewayState) {
        let next = Named::of(state);
        let mut last = self.prepared.lock().unwrap_or_else(|p| p.into_inner());
        if *last == next {
            return;
        }
        self.create(&next.without(&last));
        let busy = self.remove_gone(&last, &next);
        let mut kept = next;
        kept.targets.extend(busy.targets);
        kept.ingress.extend(busy.ingress);
        *last = kept;
    }

    fn create(&self, named: &Named) {
        for key in &named.services {
            let l = service_labels(key);
            drop(self.failed.get_or_create(&l));
            drop(self.rate_limited.get_or_create(&l));
        }
        for ((key, cluster), local) in &named.targets {
            let l = target_labels(key, cluster);
            drop(self.opened.get_or_create(&l));
            drop(self.active.get_or_create(&l));
            drop(self.bytes_up.get_or_create(&l));
            drop(self.bytes_down.get_or_create(&l));
            let reasons = if *local {
                LOCAL_ATTEMPT_REASONS
            } else {
                REMOTE_ATTEMPT_REASONS
            };
            for reason in reasons {
                drop(
                    self.attempt_failed
                        .get_or_create(&failure_labels(key, cluster, reason)),
                );
            }
        }
        for cluster in &named.peers {
            let c = cluster_labels(cluster);
            drop(self.ejections.get_or_create(&c));
            drop(self.peer_connects.get_or_create(&c));
            drop(self.peer_connections.get_or_create(&c));
            drop(self.peer_streams.get_or_create(&c));
            for kind in HANDSHAKE_KINDS {
                drop(
                    self.handshakes
                        .get_or_create(&handshake_labels(cluster, kind)),
                );
            }
        }
        for gateway in &named.gateways {
            for result in PROBE_RESULTS {
                drop(self.probes.get_or_create(&probe_labels(gateway, result)));
            }
        }
        for (key, cluster) in &named.http {
            self.http.create(key, cluster);
        }
        for (key, peer) in &named.ingress {
            let l = target_labels(key, peer);
            drop(self.ingress_bytes.get_or_create(&l));
            drop(self.ingress_active.get_or_create(&l));
        }
    }

    /// Removes the series of what `last` named and `next` does not; returns
    /// the targets and ingress pairs kept because connections are open.
    fn remove_gone(&self, last: &Named, next: &Named) -> Named {
        let mut busy = Named::default();
        for key in last.services.difference(&next.services) {
            let l = service_labels(key);
            self.failed.remove(&l);
            self.rate_limited.remove(&l);
        }
        for (target, local) in &last.targets {
            if next.targets.contains_key(target) {
                continue;
            }
            let (key, cluster) = target;
            let l = target_labels(key, cluster);
            if self.active.get(&l).is_some_and(|g| g.get() > 0) {
                busy.targets.insert(target.clone(), *local);
                continue;
            }
            self.opened.remove(&l);
            self.active.remove(&l);
            self.bytes_up.remove(&l);
            self.bytes_down.remove(&l);
            self.connect_seconds.remove(&l);
            for reason in LOCAL_ATTEMPT_REASONS.iter().chain(REMOTE_ATTEMPT_REASONS) {
                self.attempt_failed
                    .remove(&failure_labels(key, cluster, reason));
            }
        }
        for cluster in last.peers.difference(&next.peers) {
            let c = cluster_labels(cluster);
            self.ejections.remove(&c);
            self.peer_connects.remove(&c);
            self.peer_connections.remove(&c);
            self.peer_streams.remove(&c);
            for kind in HANDSHAKE_KINDS {
                self.handshakes.remove(&handshake_labels(cluster, kind));
            }
        }
        for gateway in last.gateways.difference(&next.gateways) {
            for result in PROBE_RESULTS {
                self.probes.remove(&probe_labels(gateway, result));
            }
        }
        for (key, cluster) in last.http.difference(&next.http) {
            self.http.remove(key, cluster);
        }
        for pair in last.ingress.difference(&next.ingress) {
            let l = target_labels(&pair.0, &pair.1);
            if self.ingress_active.get(&l).is_some_and(|g| g.get() > 0) {
                busy.ingress.insert(pair.clone());
                continue;
            }
            self.ingress_bytes.remove(&l);
            self.ingress_active.remove(&l);
        }
        busy
    }
}
