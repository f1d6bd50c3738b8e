//! Taking this cluster out of rotation (`fedctl drain`) and back
//! (`fedctl undrain`), DESIGN.md "Operations".
//!
//! The switch owns one bit: the admin API flips it, the store keeps it
//! (written before it is published, so what a caller was told survives a
//! `kill -9`), and a `watch` hands it to the export owner task. That task
//! marks every export draining, which bumps the export version: the
//! peering sessions send the change to every peer as an ordinary
//! incremental update, and the table marks this cluster's own entries, so
//! this cluster's gateways see it too. Gateways then use a draining
//! cluster only when no other can serve; existing connections are left
//! alone. Nothing else changes: DNS answers and VIPs stay as they are.

use std::sync::Arc;

use tokio::sync::watch;

use crate::clock;
use crate::store::{DrainRecord, Store, StoreError};

/// Why the drain state could not be changed.
#[derive(Debug, thiserror::Error)]
pub enum DrainError {
    /// The store refused the write; the state did not change.
    #[error("cannot persist the drain state, so it was not changed: {0}")]
    Store(#[source] StoreError),
    /// The blocking store task died.
    #[error("the store task failed while persisting the drain state: {0}")]
    Task(#[source] tokio::task::JoinError),
}

/// The drain state and where it goes.
#[derive(Debug, Clone)]
pub struct DrainSwitch {
    store: Arc<Store>,
    tx: Arc<watch::Sender<DrainRecord>>,
}

impl DrainSwitch {
    /// A switch at the stored state (not draining when the store cannot be
    /// read: that is logged, and a drain can be set again).
    pub fn load(store: Arc<Store>) -> Self {
        let record = store.drain_state().unwrap_or_else(|error| {
            tracing::warn!(%error, "cannot read the drain state; starting undrained");
            DrainRecord::default()
        });
        if record.draining {
            tracing::info!("this cluster is drained (fedctl undrain puts it back)");
        }
        let (tx, _) = watch::channel(record);
        Self {
            store,
            tx: Arc::new(tx),
        }
    }

    /// The current state.
    pub fn state(&self) -> DrainRecord {
        *self.tx.borrow()
    }

    /// Follows the state (the export owner task reads it).
    pub fn subscribe(&self) -> watch::Receiver<DrainRecord> {
        self.tx.subscribe()
    }

    /// Sets the state: persisted first, then published. Returns the state
    /// now in force and whether it changed.
    ///
    /// # Errors
    /// When it cannot be persisted; then nothing changed.
    pub async fn set(&self, draining: bool) -> Result<(DrainRecord, bool), DrainError> {
        let current = self.state();
        if current.draining == draining {
            return Ok((current, false));
        }
        let next = DrainRecord {
            draining,
            since_unix_ms: clock::now_unix_ms(),
        };
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || store.put_drain_state(&next))
            .await
            .map_err(DrainError::Task)?
            .map_err(DrainError::Store)?;
        self.tx.send_replace(next);
        Ok((next, true))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_drain_is_persisted_published_and_idempotent() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(dir.path()).unwrap());
        let switch = DrainSwitch::load(store.clone());
        let mut rx = switch.subscribe();
        assert!(!switch.state().draining);

        let (state, changed) = switch.set(true).await.unwrap();
        assert!(state.draining && changed);
        assert!(rx.has_changed().unwrap(), "the export task is told");
        assert!(rx.borrow_and_update().draining);
        assert!(store.drain_state().unwrap().draining, "persisted");

        let (_, changed) = switch.set(true).await.unwrap();
        assert!(!changed, "draining twice changes nothing");
        assert!(!rx.has_changed().unwrap());

        assert!(
            DrainSwitch::load(store.clone()).state().draining,
            "a restart keeps it"
        );
        let (state, changed) = switch.set(false).await.unwrap();
        assert!(!state.draining && changed);
        assert!(!store.drain_state().unwrap().draining);
    }

    #[test]
    fn a_peers_drain_mark_survives_the_wire_and_the_store() {
        use crate::peering::sync::import_from_proto;
        use crate::store::ImportRecord;
        let wire = fedmesh_proto::v1::ServiceExport {
            namespace: "demo".into(),
            name: "hello".into(),
            ports: vec![fedmesh_proto::v1::ServicePort {
                app_protocol: Default::default(),
                name: "http".into(),
                port: 8080,
                protocol: "TCP".into(),
            }],
            healthy_endpoints: 1,
            draining: true,
            ..Default::default()
        };
        let (_, import) = import_from_proto(&wire).unwrap();
        assert!(import.draining);
        let record = ImportRecord::from(&import);
        let stored = serde_json::to_string(&record).unwrap();
        let back: ImportRecord = serde_json::from_str(&stored).unwrap();
        assert!(back.to_import().unwrap().draining);
        // A record written before drains existed reads as not draining.
        let old = r#"{"ports":[["http",8080]],"exported_at_unix_ms":1,"affinity":"local","healthy_endpoints":1}"#;
        let old: ImportRecord = serde_json::from_str(old).unwrap();
        assert!(!old.to_import().unwrap().draining);
    }
}
