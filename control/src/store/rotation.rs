//! The CA rotation record (`meta` table, key `ca.rotation`): the phase of a
//! rotation by overlap and the second root it involves, so a restarted
//! control plane resumes where it stopped (DESIGN.md, Operations).
//!
//! The signing CA stays where it always was (`ca.cert.pem`/`ca.key.pem`):
//! the old root while peers learn the new one (`overlap`), the new one from
//! `issued` on. [`Store::switch_ca`] writes both in one transaction, so a
//! crash leaves either the old signer with the overlap record or the new
//! signer with the issued record, never a mix.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use super::{CA_CERT, CA_KEY, META, Store, StoreError, db, decode, put_json};

const ROTATION: &str = "ca.rotation";

/// Where a rotation stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RotationPhase {
    /// Both roots published; the old one still signs; waiting for peers'
    /// acknowledgements.
    Overlap,
    /// The new root signs; the old one is still published while leaves it
    /// issued are replaced.
    Issued,
    /// The old root is no longer published.
    Finished,
}

impl RotationPhase {
    /// `"overlap"`, `"issued"` or `"finished"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Overlap => "overlap",
            Self::Issued => "issued",
            Self::Finished => "finished",
        }
    }
}

/// A rotation, as persisted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RotationRecord {
    /// The phase.
    pub phase: RotationPhase,
    /// The root being replaced (PEM).
    pub old_cert_pem: String,
    /// The new root (PEM).
    pub new_cert_pem: String,
    /// The new root's key (PEM) while it does not sign yet; empty once it
    /// is the stored CA.
    #[serde(default)]
    pub new_key_pem: String,
    /// Peers that acknowledged the published bundle of both roots.
    #[serde(default)]
    pub acked: BTreeSet<String>,
    /// Issue and finish without being told, as soon as it is safe.
    #[serde(default)]
    pub auto: bool,
    /// Do not wait for peers' acknowledgements.
    #[serde(default)]
    pub force: bool,
    /// When the rotation started.
    #[serde(default)]
    pub started_unix_ms: i64,
}

impl Store {
    /// The rotation record, if a rotation was ever started.
    ///
    /// # Errors
    /// On read failure or an unreadable record.
    pub fn rotation(&self) -> Result<Option<RotationRecord>, StoreError> {
        let txn = self.db.begin_read()?;
        let meta = txn.open_table(META).map_err(db("open meta"))?;
        let value = meta.get(ROTATION).map_err(db("read rotation"))?;
        value
            .map(|v| decode("meta", ROTATION, v.value()))
            .transpose()
    }

    /// Stores the rotation record.
    ///
    /// # Errors
    /// On write failure.
    pub fn put_rotation(&self, record: &RotationRecord) -> Result<(), StoreError> {
        self.write(|txn| put_json(txn, META, ROTATION, record))
    }

    /// Makes `cert_pem`/`key_pem` the stored (signing) CA and stores
    /// `record`, in one transaction.
    ///
    /// # Errors
    /// On write failure; then nothing changed.
    pub fn switch_ca(
        &self,
        cert_pem: &str,
        key_pem: &str,
        record: &RotationRecord,
    ) -> Result<(), StoreError> {
        self.write(|txn| {
            {
                let mut meta = txn.open_table(META).map_err(db("open meta"))?;
                meta.insert(CA_CERT, cert_pem.as_bytes())
                    .map_err(db("write CA"))?;
                meta.insert(CA_KEY, key_pem.as_bytes())
                    .map_err(db("write CA"))?;
            }
            put_json(txn, META, ROTATION, record)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(phase: RotationPhase) -> RotationRecord {
        RotationRecord {
            phase,
            old_cert_pem: "old".into(),
            new_cert_pem: "new".into(),
            new_key_pem: "new key".into(),
            acked: BTreeSet::from(["west".to_string()]),
            auto: true,
            force: false,
            started_unix_ms: 1,
        }
    }

    #[test]
    fn a_rotation_survives_reopening_the_store() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = Store::open(dir.path()).unwrap();
            assert_eq!(store.rotation().unwrap(), None);
            store.put_ca("old", "old key").unwrap();
            store.put_rotation(&record(RotationPhase::Overlap)).unwrap();
        }
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(
            store.rotation().unwrap(),
            Some(record(RotationPhase::Overlap))
        );
    }

    #[test]
    fn switching_the_ca_writes_the_signer_and_the_phase_together() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        store.put_ca("old", "old key").unwrap();
        let issued = RotationRecord {
            new_key_pem: String::new(),
            ..record(RotationPhase::Issued)
        };
        store.switch_ca("new", "new key", &issued).unwrap();
        assert_eq!(
            store.ca().unwrap(),
            Some(("new".to_string(), "new key".to_string()))
        );
        assert_eq!(store.rotation().unwrap(), Some(issued));
    }
}
