//! The crash-safe state store: one redb file, `<dataDir>/state.redb`.
//!
//! Why redb: it is pure Rust (no C toolchain, no system library), its write
//! transactions are ACID with an fsync at commit (`Durability::Immediate`,
//! the default), and a `kill -9` at any moment leaves the last committed
//! transaction intact — so everything acknowledged to a user or a peer
//! survives. Values are JSON documents, so later issues add fields with
//! `#[serde(default)]` and keep reading old files.
//!
//! Tables: `meta` (CA material, schema version), `peers` (one record per
//! peering), `tokens` (join-token hashes; never the secret itself),
//! `exports` (first-export times), `imports` (what each peer exports),
//! `sync` (the export version acked to each peer), `vips` (allocations);
//! `meta` also keeps whether this cluster is drained (`drain.rs`).
//!
//! Calls block on disk I/O; they are short and rare (join, leave, token
//! create), so async callers use them directly or via `spawn_blocking`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use std::sync::Arc;

use redb::{Database, ReadableTable, TableDefinition};
use serde::{Serialize, de::DeserializeOwned};

mod cell;
mod drain;
mod joins;
mod records;
mod rotation;

use cell::DbCell;
pub use drain::DrainRecord;
pub use joins::{JoinRefusal, JoinStored};
pub use records::{
    ImportRecord, PeerImports, PeerRecord, Role, SyncPos, TokenRecord, TokenRefusal,
};
use records::{export_key, import_key, import_prefix, parse_export_key, parse_import_key};
pub use rotation::{RotationPhase, RotationRecord};

use crate::model::{ServiceKey, VipName};

const META: TableDefinition<'_, &str, &[u8]> = TableDefinition::new("meta");
const PEERS: TableDefinition<'_, &str, &[u8]> = TableDefinition::new("peers");
const TOKENS: TableDefinition<'_, &str, &[u8]> = TableDefinition::new("tokens");
/// `ns/name` → when this cluster first exported it.
const EXPORTS: TableDefinition<'_, &str, &[u8]> = TableDefinition::new("exports");
/// `peer/ns/name` → what the peer exports (an import here).
const IMPORTS: TableDefinition<'_, &str, &[u8]> = TableDefinition::new("imports");
/// `peer` → the last export version acked to that peer.
const SYNC: TableDefinition<'_, &str, &[u8]> = TableDefinition::new("sync");
/// `ns/name` or `ns/name@cluster` → allocated VIP.
const VIPS: TableDefinition<'_, &str, &[u8]> = TableDefinition::new("vips");

const SCHEMA_VERSION: &[u8] = b"1";
const CA_CERT: &str = "ca.cert.pem";
const CA_KEY: &str = "ca.key.pem";

/// Errors of the state store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database file could not be opened.
    #[error(
        "cannot open state store {path}: {source}; if another `fedctl run` uses this dataDir, stop it or give this one its own dataDir"
    )]
    Open {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: redb::DatabaseError,
    },
    /// The data directory could not be created.
    #[error("cannot create data directory {path}: {source}")]
    DataDir {
        /// The folder.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A read or write failed.
    #[error("state store {action} failed: {source}")]
    Db {
        /// What was being done.
        action: &'static str,
        /// The redb error.
        #[source]
        source: redb::Error,
    },
    /// A stored record does not decode (written by a newer fedmesh?).
    #[error("state store record {key} in table {table} is unreadable: {reason}")]
    Corrupt {
        /// Table name.
        table: &'static str,
        /// Record key.
        key: String,
        /// Why.
        reason: String,
    },
    /// Writes failed and the database is being reopened.
    #[error(
        "state store {path} is unavailable: {cause}; free space in dataDir or make it writable"
    )]
    Unavailable {
        /// The file.
        path: PathBuf,
        /// The write failure that closed it.
        cause: String,
    },
    /// The file was written by a newer schema.
    #[error(
        "state store schema {found} is newer than this fedctl understands ({SCHEMA_VERSION:?}); upgrade fedctl"
    )]
    Schema {
        /// What the file says.
        found: String,
    },
}

/// The state store.
#[derive(Debug)]
pub struct Store {
    db: Arc<DbCell>,
    path: PathBuf,
}

impl Store {
    /// Opens (or creates) `<data_dir>/state.redb`, creating `data_dir` with
    /// mode 0700.
    ///
    /// # Errors
    /// When the folder or file cannot be created or opened (for instance it
    /// is locked by another process), or the schema is newer.
    pub fn open(data_dir: &Path) -> Result<Self, StoreError> {
        create_private_dir(data_dir)?;
        let path = data_dir.join("state.redb");
        let db = Database::create(&path).map_err(|source| StoreError::Open {
            path: path.clone(),
            source,
        })?;
        let store = Self {
            db: DbCell::new(&path, db),
            path,
        };
        store.init()?;
        Ok(store)
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Why writes to the store fail now (the disk is full or read-only,
    /// say), or `None` while it works. Cleared by itself once a write
    /// commits again (see [`cell`]).
    pub fn write_failure(&self) -> Option<String> {
        self.db.failure()
    }

    fn init(&self) -> Result<(), StoreError> {
        self.db.write(|txn| {
            let mut meta = txn.open_table(META).map_err(db("open meta"))?;
            let found = meta
                .get("schema")
                .map_err(db("read schema"))?
                .map(|v| v.value().to_vec());
            match found {
                None => {
                    meta.insert("schema", SCHEMA_VERSION)
                        .map_err(db("write schema"))?;
                }
                Some(v) if v.as_slice() <= SCHEMA_VERSION => {}
                Some(v) => {
                    return Err(StoreError::Schema {
                        found: String::from_utf8_lossy(&v).into_owned(),
                    });
                }
            }
            for def in [PEERS, TOKENS, EXPORTS, IMPORTS, SYNC, VIPS] {
                txn.open_table(def).map_err(db("open table"))?;
            }
            Ok(())
        })
    }

    /// The stored CA (cert PEM, key PEM), if one was generated before.
    ///
    /// # Errors
    /// On read failure.
    pub fn ca(&self) -> Result<Option<(String, String)>, StoreError> {
        let txn = self.db.begin_read()?;
        let meta = txn.open_table(META).map_err(db("open meta"))?;
        let get = |k: &str| -> Result<Option<String>, StoreError> {
            Ok(meta
                .get(k)
                .map_err(db("read CA"))?
                .map(|v| String::from_utf8_lossy(v.value()).into_owned()))
        };
        match (get(CA_CERT)?, get(CA_KEY)?) {
            (Some(c), Some(k)) => Ok(Some((c, k))),
            _ => Ok(None),
        }
    }

    /// Stores the generated CA.
    ///
    /// # Errors
    /// On write failure.
    pub fn put_ca(&self, cert_pem: &str, key_pem: &str) -> Result<(), StoreError> {
        self.write(|txn| {
            let mut meta = txn.open_table(META).map_err(db("open meta"))?;
            meta.insert(CA_CERT, cert_pem.as_bytes())
                .map_err(db("write CA"))?;
            meta.insert(CA_KEY, key_pem.as_bytes())
                .map_err(db("write CA"))?;
            Ok(())
        })
    }

    /// Every stored peering.
    ///
    /// # Errors
    /// On read failure or an unreadable record.
    pub fn peers(&self) -> Result<Vec<PeerRecord>, StoreError> {
        self.all(PEERS, "peers")
    }

    /// Inserts or replaces a peering.
    ///
    /// # Errors
    /// On write failure.
    pub fn put_peer(&self, peer: &PeerRecord) -> Result<(), StoreError> {
        self.write(|txn| put_json(txn, PEERS, &peer.name, peer))
    }

    /// Removes a peering with everything imported from it; returns whether
    /// it existed.
    ///
    /// # Errors
    /// On write failure.
    pub fn remove_peer(&self, name: &str) -> Result<bool, StoreError> {
        self.write(|txn| {
            let mut peers = txn.open_table(PEERS).map_err(db("open peers"))?;
            let existed = peers.remove(name).map_err(db("remove peer"))?.is_some();
            drop(peers);
            clear_prefix(txn, IMPORTS, &format!("{name}/"))?;
            let mut sync = txn.open_table(SYNC).map_err(db("open sync"))?;
            sync.remove(name).map_err(db("remove sync"))?;
            Ok(existed)
        })
    }

    /// Stores a new token by the hex SHA-256 of its secret, and drops
    /// tokens that expired more than a day ago.
    ///
    /// # Errors
    /// On write failure.
    pub fn put_token(&self, hash_hex: &str, token: &TokenRecord) -> Result<(), StoreError> {
        let prune_before = token.created_unix_ms - 24 * 3600 * 1000;
        self.write(|txn| {
            let mut table = txn.open_table(TOKENS).map_err(db("open tokens"))?;
            let mut old = Vec::new();
            for row in table.iter().map_err(db("list tokens"))? {
                let (k, v) = row.map_err(db("list tokens"))?;
                let keep = serde_json::from_slice::<TokenRecord>(v.value())
                    .map(|t| t.expires_unix_ms >= prune_before)
                    .unwrap_or(false);
                if !keep {
                    old.push(k.value().to_string());
                }
            }
            for k in old {
                table.remove(k.as_str()).map_err(db("prune tokens"))?;
            }
            drop(table);
            put_json(txn, TOKENS, hash_hex, token)
        })
    }

    /// When each exported service was first exported (unix ms).
    ///
    /// # Errors
    /// On read failure.
    pub fn export_times(&self) -> Result<BTreeMap<ServiceKey, i64>, StoreError> {
        let stored = self.map::<i64>(EXPORTS, "exports")?;
        Ok(stored
            .into_iter()
            .filter_map(|(key, ms)| Some((parse_export_key(&key)?, ms)))
            .collect())
    }

    /// Records first-export times of new exports and forgets unexported ones.
    ///
    /// # Errors
    /// On write failure.
    pub fn update_export_times(
        &self,
        added: &[(ServiceKey, i64)],
        removed: &[ServiceKey],
    ) -> Result<(), StoreError> {
        self.write(|txn| {
            for (key, ms) in added {
                put_json(txn, EXPORTS, &export_key(key), ms)?;
            }
            let mut table = txn.open_table(EXPORTS).map_err(db("open exports"))?;
            for key in removed {
                table
                    .remove(export_key(key).as_str())
                    .map_err(db("remove export"))?;
            }
            Ok(())
        })
    }

    /// Every peer's imports and the sync position they are at.
    ///
    /// # Errors
    /// On read failure or an unreadable record.
    pub fn imports(&self) -> Result<BTreeMap<String, PeerImports>, StoreError> {
        let mut out: BTreeMap<String, PeerImports> = BTreeMap::new();
        for (peer, pos) in self.map::<SyncPos>(SYNC, "sync")? {
            out.entry(peer).or_default().pos = pos;
        }
        for (key, record) in self.map::<ImportRecord>(IMPORTS, "imports")? {
            let Some((peer, service)) = parse_import_key(&key) else {
                continue;
            };
            out.entry(peer.to_string())
                .or_default()
                .services
                .insert(service, record);
        }
        Ok(out)
    }

    /// The sync position acked to `peer` (zero when none).
    ///
    /// # Errors
    /// On read failure.
    pub fn sync_pos(&self, peer: &str) -> Result<SyncPos, StoreError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(SYNC).map_err(db("open sync"))?;
        let value = table.get(peer).map_err(db("get"))?;
        Ok(value
            .map(|v| decode::<SyncPos>("sync", peer, v.value()))
            .transpose()?
            .unwrap_or_default())
    }

    /// Applies one export update from `peer` and its new position in one
    /// transaction: a full update replaces everything from that peer.
    ///
    /// # Errors
    /// On write failure.
    pub fn apply_imports(
        &self,
        peer: &str,
        pos: SyncPos,
        full: bool,
        upserts: &[(ServiceKey, ImportRecord)],
        removals: &[ServiceKey],
    ) -> Result<(), StoreError> {
        self.write(|txn| {
            if full {
                clear_prefix(txn, IMPORTS, &import_prefix(peer))?;
            }
            for (service, record) in upserts {
                put_json(txn, IMPORTS, &import_key(peer, service), record)?;
            }
            let mut table = txn.open_table(IMPORTS).map_err(db("open imports"))?;
            for service in removals {
                table
                    .remove(import_key(peer, service).as_str())
                    .map_err(db("remove import"))?;
            }
            drop(table);
            put_json(txn, SYNC, peer, &pos)
        })
    }

    /// Every VIP allocation; rows under a name this release does not
    /// write are skipped.
    ///
    /// # Errors
    /// On read failure.
    pub fn vips(&self) -> Result<BTreeMap<VipName, std::net::Ipv4Addr>, StoreError> {
        let stored = self.map::<std::net::Ipv4Addr>(VIPS, "vips")?;
        Ok(stored
            .into_iter()
            .filter_map(|(name, ip)| Some((VipName::from_stored(&name)?, ip)))
            .collect())
    }

    /// Records new VIP allocations and forgets released ones.
    ///
    /// # Errors
    /// On write failure.
    pub fn update_vips(
        &self,
        added: &[(VipName, std::net::Ipv4Addr)],
        removed: &[VipName],
    ) -> Result<(), StoreError> {
        self.write(|txn| {
            for (name, ip) in added {
                put_json(txn, VIPS, &name.to_string(), ip)?;
            }
            let mut table = txn.open_table(VIPS).map_err(db("open vips"))?;
            for name in removed {
                table
                    .remove(name.to_string().as_str())
                    .map_err(db("remove vip"))?;
            }
            Ok(())
        })
    }

    fn map<T: DeserializeOwned>(
        &self,
        def: TableDefinition<'_, &str, &[u8]>,
        name: &'static str,
    ) -> Result<BTreeMap<String, T>, StoreError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(def).map_err(db("open table"))?;
        let mut out = BTreeMap::new();
        for row in table.iter().map_err(db("list"))? {
            let (k, v) = row.map_err(db("list"))?;
            out.insert(k.value().to_string(), decode(name, k.value(), v.value())?);
        }
        Ok(out)
    }

    /// Runs `f` in a write transaction and commits it only if `f` returns
    /// `Ok`. The commit is durable (fsync) before this returns.
    fn write<T>(
        &self,
        f: impl FnOnce(&redb::WriteTransaction) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        self.db.write(f)
    }

    fn all<T: DeserializeOwned>(
        &self,
        def: TableDefinition<'_, &str, &[u8]>,
        name: &'static str,
    ) -> Result<Vec<T>, StoreError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(def).map_err(db("open table"))?;
        let mut out = Vec::new();
        for row in table.iter().map_err(db("list"))? {
            let (k, v) = row.map_err(db("list"))?;
            out.push(decode(name, k.value(), v.value())?);
        }
        Ok(out)
    }
}

/// Removes every key starting with `prefix`.
fn clear_prefix(
    txn: &redb::WriteTransaction,
    def: TableDefinition<'_, &str, &[u8]>,
    prefix: &str,
) -> Result<(), StoreError> {
    let mut table = txn.open_table(def).map_err(db("open table"))?;
    let keys: Vec<String> = table
        .range(prefix..)
        .map_err(db("range"))?
        .map_while(|row| {
            let key = row.ok()?.0.value().to_string();
            key.starts_with(prefix).then_some(key)
        })
        .collect();
    for key in keys {
        table.remove(key.as_str()).map_err(db("remove"))?;
    }
    Ok(())
}

fn put_json<T: Serialize>(
    txn: &redb::WriteTransaction,
    def: TableDefinition<'_, &str, &[u8]>,
    key: &str,
    value: &T,
) -> Result<(), StoreError> {
    // Serializing plain structs of strings and numbers cannot fail.
    let bytes = serde_json::to_vec(value).unwrap_or_default();
    let mut table = txn.open_table(def).map_err(db("open table"))?;
    table.insert(key, bytes.as_slice()).map_err(db("insert"))?;
    Ok(())
}

fn get_json<T: DeserializeOwned>(
    txn: &redb::WriteTransaction,
    def: TableDefinition<'_, &str, &[u8]>,
    name: &'static str,
    key: &str,
) -> Result<Option<T>, StoreError> {
    let table = txn.open_table(def).map_err(db("open table"))?;
    let value = table.get(key).map_err(db("get"))?;
    value.map(|v| decode(name, key, v.value())).transpose()
}

fn decode<T: DeserializeOwned>(
    table: &'static str,
    key: &str,
    bytes: &[u8],
) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt {
        table,
        key: key.to_string(),
        reason: e.to_string(),
    })
}

fn db<E: Into<redb::Error>>(action: &'static str) -> impl Fn(E) -> StoreError {
    move |e| StoreError::Db {
        action,
        source: e.into(),
    }
}

fn create_private_dir(dir: &Path) -> Result<(), StoreError> {
    use std::os::unix::fs::DirBuilderExt;
    let err = |source| StoreError::DataDir {
        path: dir.to_path_buf(),
        source,
    };
    if dir.is_dir() {
        return Ok(());
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(err)
}

#[cfg(test)]
mod tests;
