//! Export sync on the peering stream (DESIGN.md, Export sync).
//!
//! Sender ([`ExportSender`]): after the peer's Hello says which of our
//! versions it holds, send nothing (it is current), the changes since that
//! version (when this process still has the view the peer acked), or
//! everything (`full`). Then, on every change of our exports, send what
//! changed for that peer since the last update sent; `export-to` is
//! applied here. Acks move the peer's acked view forward.
//!
//! Receiver ([`ImportReceiver::receive`]): check each entry field by field (a bad entry is
//! logged and skipped, never fatal), check that an incremental update
//! applies on top of what is stored, persist it, hand it to the table, and
//! only then ack — so an ack never outruns the disk.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use fedmesh_proto::v1;
use tracing::warn;

use crate::exports::{ExportState, View, diff};
use crate::model::wire::{WireError, check_count, check_label, shown};
use crate::model::{
    Affinity, AppProtocol, ImportedService, NamedEndpoints, PortSpec, ServiceKey, is_dns_label,
};
use crate::store::{ImportRecord, Store, StoreError, SyncPos};
use crate::table::TableEvent;

/// Per peer: the export view it acked, at (epoch, version).
#[derive(Debug, Default)]
pub struct AckedViews {
    inner: Mutex<HashMap<String, (SyncPos, View)>>,
}

impl AckedViews {
    /// The position and view `peer` last acked, if any (read by the web
    /// port's sync-lag metrics).
    pub fn get(&self, peer: &str) -> Option<(SyncPos, View)> {
        self.lock().get(peer).cloned()
    }

    fn set(&self, peer: &str, pos: SyncPos, view: View) {
        self.lock().insert(peer.to_string(), (pos, view));
    }

    /// Forgets a peer (after leave), so a new peering starts in full.
    pub fn forget(&self, peer: &str) {
        self.lock().remove(peer);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, (SyncPos, View)>> {
        // Plain data: a poisoned lock is still consistent.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The sending half of one session.
#[derive(Debug)]
pub struct ExportSender {
    peer: String,
    /// What the peer holds according to its Hello; `None` until it arrives.
    peer_pos: Option<SyncPos>,
    /// The last view sent and its version.
    last_sent: Option<(u64, View)>,
    /// Sent, not yet acked.
    inflight: VecDeque<(u64, View)>,
}

impl ExportSender {
    /// A sender for `peer`.
    pub fn new(peer: &str) -> Self {
        Self {
            peer: peer.to_string(),
            peer_pos: None,
            last_sent: None,
            inflight: VecDeque::new(),
        }
    }

    /// Records the peer's Hello: what it holds of our exports.
    pub fn hello(&mut self, pos: SyncPos) {
        self.peer_pos = Some(pos);
    }

    /// The update to send for `state`, if any. Nothing is sent before the
    /// peer's Hello or before the registry was first read (version 0).
    pub fn next_update(
        &mut self,
        state: &ExportState,
        acked: &AckedViews,
    ) -> Option<v1::ExportUpdate> {
        let peer_pos = self.peer_pos?;
        if state.version == 0 {
            return None;
        }
        let view = state.view_for(&self.peer);
        let (base, full) = match &self.last_sent {
            Some((version, sent)) => ((*version, sent.clone()), false),
            None => match acked.get(&self.peer) {
                // Resume: the peer holds exactly the view it acked to us.
                Some((pos, sent)) if pos == peer_pos && pos.epoch == state.epoch => {
                    ((pos.version, sent), false)
                }
                _ => ((0, View::default()), true),
            },
        };
        let (upserts, removals) = diff(&base.1, &view);
        if !full && upserts.is_empty() && removals.is_empty() {
            // Nothing new for this peer: it stays at base.0.
            self.last_sent = Some(base);
            return None;
        }
        self.last_sent = Some((state.version, view.clone()));
        self.inflight.push_back((state.version, view));
        Some(v1::ExportUpdate {
            epoch: state.epoch,
            version: state.version,
            base_version: if full { 0 } else { base.0 },
            full,
            upserts: upserts.iter().map(|e| e.to_proto()).collect(),
            removals: removals.iter().map(v1::ServiceKey::from).collect(),
        })
    }

    /// Records the peer's ack.
    pub fn ack(&mut self, ack: &v1::Ack, acked: &AckedViews) {
        while let Some((version, view)) = self.inflight.pop_front() {
            if version == ack.version {
                acked.set(
                    &self.peer,
                    SyncPos {
                        epoch: ack.epoch,
                        version,
                    },
                    view,
                );
                return;
            }
            if version > ack.version {
                self.inflight.push_front((version, view));
                return;
            }
        }
    }
}

/// Most ports one exported service may carry from a peer.
const MAX_PORTS: usize = 64;

/// Most weight entries (one per cluster) one exported service may carry.
const MAX_WEIGHTS: usize = 256;

/// An exported service from a peer that cannot be imported; the entry is
/// logged and skipped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BadExport {
    /// Namespace or name is not a DNS label.
    #[error("field {field} {value} is not a DNS label")]
    NotALabel {
        /// `namespace` or `name`.
        field: &'static str,
        /// What was sent.
        value: String,
    },
    /// A port that is not TCP.
    #[error("field ports: protocol {0} is not TCP")]
    NotTcp(String),
    /// A port number out of range.
    #[error("field ports: {0} is not a port number")]
    BadPort(u32),
    /// No port at all.
    #[error("field ports is empty")]
    NoPorts,
    /// A field the wire conversions refuse (an unknown affinity, a name
    /// that is not a DNS label, a list too long).
    #[error(transparent)]
    Affinity(#[from] WireError),
}

/// Why an export update from a peer was not applied; the session ends and
/// the reconnect resyncs.
#[derive(Debug, thiserror::Error)]
pub enum ReceiveError {
    /// An incremental update on top of a version not stored here.
    #[error(
        "export update {version}@{epoch} applies on top of version {base}, but {stored} is stored here; resyncing"
    )]
    OutOfOrder {
        /// The update's version.
        version: u64,
        /// The update's epoch.
        epoch: u64,
        /// The version it applies on.
        base: u64,
        /// The version stored.
        stored: u64,
    },
    /// The store refused the write.
    #[error("cannot store imports: {0}")]
    Store(#[source] StoreError),
    /// The blocking store task died.
    #[error("store task failed: {0}")]
    Task(#[source] tokio::task::JoinError),
    /// The table task is gone (shutdown).
    #[error("the service table stopped")]
    TableStopped,
}

/// Validates one exported service from the wire.
///
/// # Errors
/// The bad field, named.
pub fn import_from_proto(
    e: &v1::ServiceExport,
) -> Result<(ServiceKey, ImportedService), BadExport> {
    for (field, value) in [("namespace", &e.namespace), ("name", &e.name)] {
        if !is_dns_label(value) {
            return Err(BadExport::NotALabel {
                field,
                value: shown(value),
            });
        }
    }
    check_count("ports", e.ports.len(), MAX_PORTS)?;
    check_count("weights", e.weights.len(), MAX_WEIGHTS)?;
    let mut ports = Vec::new();
    for p in &e.ports {
        if p.protocol != "TCP" {
            return Err(BadExport::NotTcp(shown(&p.protocol)));
        }
        // An unnamed port is allowed (Kubernetes allows one per Service).
        if !p.name.is_empty() {
            check_label("ports.name", &p.name)?;
        }
        let port = u16::try_from(p.port)
            .ok()
            .filter(|n| *n > 0)
            .ok_or(BadExport::BadPort(p.port))?;
        ports.push(PortSpec {
            name: p.name.clone(),
            port,
            // A value from a later release that this one does not know is
            // carried as bytes: TCP always works.
            app_protocol: AppProtocol::from_wire(&p.app_protocol).unwrap_or_default(),
        });
    }
    if ports.is_empty() {
        return Err(BadExport::NoPorts);
    }
    ports.sort();
    let affinity = Affinity::from_proto(e.affinity)?;
    for w in &e.weights {
        check_label("weights.cluster", &w.cluster)?;
    }
    let weights = e
        .weights
        .iter()
        .map(|w| (w.cluster.clone(), w.weight))
        .collect();
    Ok((
        ServiceKey::new(&e.namespace, &e.name),
        ImportedService {
            ports,
            exported_at_ms: e.exported_at_unix_ms,
            affinity,
            weights,
            healthy: e.healthy_endpoints,
            // 0 is "unknown" (an earlier release): count it fully healthy.
            total: e.total_endpoints.max(e.healthy_endpoints),
            headless: NamedEndpoints::from_proto(e.headless, &e.named_endpoints)?,
            // An earlier release sends none: not draining.
            draining: e.draining,
        },
    ))
}

/// The receiving half of one session: where we stand with the peer's log.
#[derive(Debug)]
pub struct ImportReceiver {
    peer: String,
    /// The stored position (sent in our Hello).
    pub pos: SyncPos,
}

impl ImportReceiver {
    /// The entries that can be imported; a bad one is logged and skipped,
    /// never fatal.
    fn valid_upserts(&self, entries: &[v1::ServiceExport]) -> Vec<(ServiceKey, ImportedService)> {
        let mut upserts = Vec::with_capacity(entries.len());
        for e in entries {
            match import_from_proto(e) {
                Ok(i) => upserts.push(i),
                Err(problem) => {
                    warn!(peer = %self.peer, namespace = %e.namespace, name = %e.name, %problem, "skipping a bad export from peer")
                }
            }
        }
        upserts
    }

    /// A receiver at the stored position.
    pub fn new(peer: &str, pos: SyncPos) -> Self {
        Self {
            peer: peer.to_string(),
            pos,
        }
    }

    /// Applies one update: validate, persist, hand to the table; returns
    /// the ack to send.
    ///
    /// # Errors
    /// An incremental update that does not apply on top of what is stored
    /// (the session then ends, and the reconnect resyncs), or a store
    /// failure.
    pub async fn receive(
        &mut self,
        store: &Arc<Store>,
        table: &tokio::sync::mpsc::Sender<TableEvent>,
        update: v1::ExportUpdate,
    ) -> Result<v1::Ack, ReceiveError> {
        if !update.full
            && (update.epoch != self.pos.epoch || update.base_version != self.pos.version)
        {
            return Err(ReceiveError::OutOfOrder {
                version: update.version,
                epoch: update.epoch,
                base: update.base_version,
                stored: self.pos.version,
            });
        }
        let upserts = self.valid_upserts(&update.upserts);
        // A removal that is no key names nothing stored: skip it.
        let removals: Vec<ServiceKey> = update
            .removals
            .iter()
            .filter_map(|k| ServiceKey::try_from(k).ok())
            .collect();
        let pos = SyncPos {
            epoch: update.epoch,
            version: update.version,
        };
        let records: Vec<(ServiceKey, ImportRecord)> = upserts
            .iter()
            .map(|(k, i)| (k.clone(), ImportRecord::from(i)))
            .collect();
        let removed = removals.clone();
        let (peer, full, store) = (self.peer.clone(), update.full, store.clone());
        tokio::task::spawn_blocking(move || {
            store.apply_imports(&peer, pos, full, &records, &removed)
        })
        .await
        .map_err(ReceiveError::Task)?
        .map_err(ReceiveError::Store)?;
        self.pos = pos;
        let event = TableEvent::Imports {
            peer: self.peer.clone(),
            full,
            upserts,
            removals,
        };
        table
            .send(event)
            .await
            .map_err(|_| ReceiveError::TableStopped)?;
        Ok(v1::Ack {
            epoch: pos.epoch,
            version: pos.version,
        })
    }
}

#[cfg(test)]
mod tests;
