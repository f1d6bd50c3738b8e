//! Whether this cluster is drained (`fedctl drain`), kept in the `meta`
//! table under `draining` as one JSON record, so a restarted control plane
//! keeps the cluster out of rotation until `fedctl undrain`.

use serde::{Deserialize, Serialize};

use super::{META, Store, StoreError, db, decode};

/// The `meta` key of the drain record.
const DRAINING: &str = "draining";

/// This cluster's drain state, as persisted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct DrainRecord {
    /// Out of rotation: every export is sent marked draining.
    pub draining: bool,
    /// Unix ms when the state last changed; 0 when never drained.
    pub since_unix_ms: i64,
}

impl Store {
    /// The stored drain state; not draining when none was ever stored.
    ///
    /// # Errors
    /// On read failure or an unreadable record.
    pub fn drain_state(&self) -> Result<DrainRecord, StoreError> {
        let txn = self.db.begin_read()?;
        let meta = txn.open_table(META).map_err(db("open meta"))?;
        let value = meta.get(DRAINING).map_err(db("read drain state"))?;
        value.map_or(Ok(DrainRecord::default()), |v| {
            decode("meta", DRAINING, v.value())
        })
    }

    /// Stores the drain state (durable before this returns).
    ///
    /// # Errors
    /// On write failure.
    pub fn put_drain_state(&self, record: &DrainRecord) -> Result<(), StoreError> {
        // Serializing a bool and a number cannot fail.
        let bytes = serde_json::to_vec(record).unwrap_or_default();
        self.write(|txn| {
            let mut meta = txn.open_table(META).map_err(db("open meta"))?;
            meta.insert(DRAINING, bytes.as_slice())
                .map_err(db("write drain state"))?;
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_drain_survives_reopening_the_store() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = Store::open(dir.path()).unwrap();
            assert_eq!(store.drain_state().unwrap(), DrainRecord::default());
            let drained = DrainRecord {
                draining: true,
                since_unix_ms: 42,
            };
            store.put_drain_state(&drained).unwrap();
        }
        let store = Store::open(dir.path()).unwrap();
        let got = store.drain_state().unwrap();
        assert!(got.draining);
        assert_eq!(got.since_unix_ms, 42);
    }
}
