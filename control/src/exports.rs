//! This cluster's exports: the owner task turns each registry snapshot into
//! a versioned [`ExportState`] that every peering session reads.
//!
//! Versions: `epoch` is random per process start and `version` grows by one
//! whenever the set of exports (or any field of one) changes. A peer that
//! acked `(epoch, version)` and reconnects gets only what changed since, as
//! long as this process still remembers the view it acked
//! ([`crate::peering::sync`]); otherwise it gets everything again.
//!
//! `exportedAt` is when this cluster first saw the service exported; it is
//! persisted so that "oldest export wins" is stable across restarts.

use std::collections::BTreeMap;
use std::sync::Arc;

use fedmesh_proto::v1;
use ring::rand::SecureRandom;
use tokio::sync::watch;
use tracing::{info, warn};

use crate::clock;
use crate::model::{ExportSpec, LocalSnapshot, NamedEndpoints, PortSpec, ServiceKey};
use crate::store::{DrainRecord, Store};

/// One exported service as peers see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportEntry {
    /// Identity.
    pub key: ServiceKey,
    /// TCP ports.
    pub ports: Vec<PortSpec>,
    /// When this cluster first exported it (unix ms).
    pub exported_at_ms: i64,
    /// Export annotations.
    pub spec: ExportSpec,
    /// Healthy local endpoints.
    pub healthy: u32,
    /// Every local endpoint, ready or not.
    pub total: u32,
    /// `Some` for a headless service: its endpoints with a hostname.
    pub headless: Option<NamedEndpoints>,
    /// This cluster is drained (`fedctl drain`): importers use it only
    /// when no other cluster can serve.
    pub draining: bool,
}

impl ExportEntry {
    /// The wire form.
    pub fn to_proto(&self) -> v1::ServiceExport {
        v1::ServiceExport {
            namespace: self.key.namespace.clone(),
            name: self.key.name.clone(),
            ports: self
                .ports
                .iter()
                .map(|p| v1::ServicePort {
                    name: p.name.clone(),
                    port: u32::from(p.port),
                    protocol: "TCP".into(),
                    app_protocol: p.app_protocol.as_wire().into(),
                })
                .collect(),
            exported_at_unix_ms: self.exported_at_ms,
            affinity: self.spec.affinity.to_proto(),
            weights: self
                .spec
                .weights
                .iter()
                .map(|(cluster, weight)| v1::ClusterWeight {
                    cluster: cluster.clone(),
                    weight: *weight,
                })
                .collect(),
            healthy_endpoints: self.healthy,
            total_endpoints: self.total,
            headless: self.headless.is_some(),
            named_endpoints: self
                .headless
                .as_ref()
                .map(NamedEndpoints::to_proto)
                .unwrap_or_default(),
            draining: self.draining,
        }
    }
}

/// Exports by key; shared, so unchanged entries are compared by pointer.
pub type View = Arc<BTreeMap<ServiceKey, Arc<ExportEntry>>>;

/// A version of this cluster's exports.
#[derive(Debug, Clone, Default)]
pub struct ExportState {
    /// Random per process start.
    pub epoch: u64,
    /// Grows with every change; 0 until the registry was first read.
    pub version: u64,
    /// Every export.
    pub entries: View,
    /// Whether any export is limited by `export-to`.
    restricted: bool,
}

impl ExportState {
    /// A state at `epoch` with `entries`.
    pub fn new(epoch: u64, version: u64, entries: BTreeMap<ServiceKey, Arc<ExportEntry>>) -> Self {
        let restricted = entries.values().any(|e| !e.spec.to.is_empty());
        Self {
            epoch,
            version,
            entries: Arc::new(entries),
            restricted,
        }
    }

    /// What `peer` may see: `export-to` is enforced here, by the exporter.
    pub fn view_for(&self, peer: &str) -> View {
        if !self.restricted {
            return self.entries.clone();
        }
        Arc::new(
            self.entries
                .iter()
                .filter(|(_, e)| e.spec.allows(peer))
                .map(|(k, e)| (k.clone(), e.clone()))
                .collect(),
        )
    }
}

/// What changed from `old` to `new`: entries to send, keys to withdraw.
pub fn diff(old: &View, new: &View) -> (Vec<Arc<ExportEntry>>, Vec<ServiceKey>) {
    if Arc::ptr_eq(old, new) {
        return (Vec::new(), Vec::new());
    }
    let upserts = new
        .iter()
        .filter(|(k, e)| old.get(*k).is_none_or(|o| !Arc::ptr_eq(o, e) && o != *e))
        .map(|(_, e)| e.clone())
        .collect();
    let removals = old
        .keys()
        .filter(|k| !new.contains_key(*k))
        .cloned()
        .collect();
    (upserts, removals)
}

/// A random epoch for this process's export log.
pub fn new_epoch() -> u64 {
    let mut bytes = [0u8; 8];
    // Without randomness the time still differs between two starts.
    if ring::rand::SystemRandom::new().fill(&mut bytes).is_err() {
        return clock::now_unix_ms().unsigned_abs();
    }
    u64::from_le_bytes(bytes).max(1)
}

/// Owns the export state: reads registry snapshots and the drain state,
/// publishes versions. A drain or undrain changes every entry, so it
/// reaches each peer as one incremental update.
///
/// Version 0 means "the registry has not been read yet": sessions send no
/// exports until version 1, so a restarting cluster never tells its peers
/// it exports nothing.
pub async fn run(
    store: Arc<Store>,
    mut local: watch::Receiver<Arc<LocalSnapshot>>,
    mut drain: watch::Receiver<DrainRecord>,
    out: watch::Sender<Arc<ExportState>>,
) {
    let mut times = match store.export_times() {
        Ok(t) => t,
        Err(error) => {
            warn!(%error, "cannot read export times; exports restart their exportedAt");
            BTreeMap::new()
        }
    };
    // The registry's first publish, not the channel's empty initial value.
    if local.changed().await.is_err() {
        return;
    }
    loop {
        let snapshot = local.borrow_and_update().clone();
        if snapshot.pending {
            // Not read yet: keep what is exported (nothing, at start) until
            // the registry knows its services.
            if local.changed().await.is_err() {
                return;
            }
            continue;
        }
        let current = out.borrow().clone();
        let draining = drain.borrow_and_update().draining;
        let (entries, added, removed) = compute(&snapshot, draining, &current.entries, &mut times);
        if !added.is_empty() || !removed.is_empty() {
            let store = store.clone();
            let saved =
                tokio::task::spawn_blocking(move || store.update_export_times(&added, &removed))
                    .await;
            if !matches!(saved, Ok(Ok(()))) {
                warn!("cannot persist export times; exportedAt may change after a restart");
            }
        }
        if entries != *current.entries || current.version == 0 {
            let next = ExportState::new(current.epoch, current.version + 1, entries);
            info!(
                exports = next.entries.len(),
                version = next.version,
                "exports changed"
            );
            out.send_replace(Arc::new(next));
        }
        let changed = tokio::select! {
            r = local.changed() => r,
            r = drain.changed() => r,
        };
        if changed.is_err() {
            return;
        }
    }
}

type Computed = (
    BTreeMap<ServiceKey, Arc<ExportEntry>>,
    Vec<(ServiceKey, i64)>,
    Vec<ServiceKey>,
);

/// The export entries for a snapshot, reusing unchanged entries of `prev`;
/// also the export-time rows to add and remove.
fn compute(
    snapshot: &LocalSnapshot,
    draining: bool,
    prev: &View,
    times: &mut BTreeMap<ServiceKey, i64>,
) -> Computed {
    let now = clock::now_unix_ms();
    let mut added = Vec::new();
    let mut entries = BTreeMap::new();
    for svc in snapshot.services.values() {
        let Some(spec) = &svc.export else {
            continue;
        };
        let exported_at_ms = *times.entry(svc.key.clone()).or_insert_with(|| {
            added.push((svc.key.clone(), now));
            now
        });
        let entry = ExportEntry {
            key: svc.key.clone(),
            ports: svc.ports.clone(),
            exported_at_ms,
            spec: spec.clone(),
            healthy: svc.healthy_endpoints(),
            total: svc.total_endpoints(),
            headless: svc
                .headless
                .then(|| NamedEndpoints::from_endpoints(&svc.endpoints).0),
            draining,
        };
        let entry = match prev.get(&svc.key) {
            Some(old) if **old == entry => old.clone(),
            _ => Arc::new(entry),
        };
        entries.insert(svc.key.clone(), entry);
    }
    let removed: Vec<ServiceKey> = times
        .keys()
        .filter(|key| !entries.contains_key(*key))
        .cloned()
        .collect();
    for id in &removed {
        times.remove(id);
    }
    (entries, added, removed)
}

#[cfg(test)]
mod tests;
