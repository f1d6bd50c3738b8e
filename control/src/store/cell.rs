//! The open database and its recovery after a failed write.
//!
//! redb latches the first I/O error of a write (ENOSPC, EROFS, EIO): every
//! later transaction of that `Database` fails with "Previous I/O error
//! occurred" until the file is closed and opened again, which lets redb
//! roll back to the last committed transaction and repair its allocator.
//! So after a write fails here, the `Database` is dropped and reopened, by
//! the next write and by a recovery thread that retries with backoff until
//! a test write commits. Nothing acknowledged is lost: a failed write
//! returns an error to its caller before anyone is told it happened (the
//! peering acks an update, and `fedctl` answers a user, only after
//! `commit` returned), and what did commit is durable (fsync) and survives
//! the reopen.
//!
//! While the store is failing, [`DbCell::failure`] says why, for
//! `fedctl check`; a commit that succeeds clears it.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::time::Duration;

use redb::{Database, ReadTransaction, WriteTransaction};
use tracing::{info, warn};

use super::StoreError;

/// The first wait of the recovery thread; doubled after each failed try.
const RETRY_FIRST: Duration = Duration::from_millis(100);
/// The longest wait between two tries.
const RETRY_MAX: Duration = Duration::from_secs(2);
/// The probe write's size: far above any one write of fedmesh's (records
/// are a few KiB), so a probe that commits means real writes fit again.
const PROBE_BYTES: usize = 1 << 20;

/// The database handle, replaced in place when it is reopened.
#[derive(Debug)]
pub(super) struct DbCell {
    path: PathBuf,
    /// `None` between a failed reopen and the next good one.
    db: RwLock<Option<Database>>,
    /// Why the last write failed, while the store is failing.
    failure: Mutex<Option<String>>,
    /// Whether a recovery thread runs (at most one).
    recovering: Mutex<bool>,
}

impl DbCell {
    /// Wraps an open database.
    pub(super) fn new(path: &Path, db: Database) -> Arc<Self> {
        Arc::new(Self {
            path: path.to_path_buf(),
            db: RwLock::new(Some(db)),
            failure: Mutex::new(None),
            recovering: Mutex::new(false),
        })
    }

    /// Why writes fail now, or `None` when the store is healthy.
    pub(super) fn failure(&self) -> Option<String> {
        lock(&self.failure).clone()
    }

    /// Begins a read transaction.
    pub(super) fn begin_read(&self) -> Result<ReadTransaction, StoreError> {
        let guard = self.db.read().unwrap_or_else(|p| p.into_inner());
        let db = guard.as_ref().ok_or_else(|| self.unavailable())?;
        redb::ReadableDatabase::begin_read(db).map_err(super::db("begin read"))
    }

    /// Runs `f` in a write transaction and commits it only if `f` returns
    /// `Ok`; the commit is durable (fsync) before this returns. A failed
    /// store is reopened first; a write that fails on the database (not a
    /// refusal of `f`'s own) marks the store failed and starts recovery.
    pub(super) fn write<T>(
        self: &Arc<Self>,
        f: impl FnOnce(&WriteTransaction) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        if self.failure().is_some() {
            // Space may be back: a write is a good moment to find out.
            let _ = self.reopen();
        }
        let result = self.write_once(f);
        match &result {
            Err(StoreError::Db { action, source }) => {
                self.failed(&format!("{action}: {source}"));
            }
            Err(_) => {}
            Ok(_) => self.healthy(),
        }
        result
    }

    fn write_once<T>(
        &self,
        f: impl FnOnce(&WriteTransaction) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let guard = self.db.read().unwrap_or_else(|p| p.into_inner());
        let db = guard.as_ref().ok_or_else(|| self.unavailable())?;
        let txn = db.begin_write().map_err(super::db("begin write"))?;
        let out = f(&txn)?;
        txn.commit().map_err(super::db("commit"))?;
        Ok(out)
    }

    fn unavailable(&self) -> StoreError {
        StoreError::Unavailable {
            path: self.path.clone(),
            cause: self.failure().unwrap_or_else(|| "reopening".to_string()),
        }
    }

    fn healthy(&self) {
        if lock(&self.failure).take().is_some() {
            info!(path = %self.path.display(), "state store writes work again");
        }
    }

    fn failed(self: &Arc<Self>, cause: &str) {
        warn!(path = %self.path.display(), %cause, "state store write failed; reopening it");
        *lock(&self.failure) = Some(cause.to_string());
        self.spawn_recovery();
    }

    /// Drops the database and opens it again, which makes redb recover
    /// the last commit after a latched I/O error.
    fn reopen(&self) -> Result<(), StoreError> {
        let mut guard = self.db.write().unwrap_or_else(|p| p.into_inner());
        // The old handle must be closed first: redb locks the file.
        drop(guard.take());
        let db = Database::create(&self.path).map_err(|source| StoreError::Open {
            path: self.path.clone(),
            source,
        })?;
        *guard = Some(db);
        Ok(())
    }

    /// A write that proves the store works again: [`PROBE_BYTES`] stored
    /// and removed. A tiny write is no proof: a full disk still takes one
    /// into the free pages the file already has, and the next real write
    /// would fail again.
    fn probe(self: &Arc<Self>) -> Result<(), StoreError> {
        self.reopen()?;
        let ballast = vec![0u8; PROBE_BYTES];
        let result = self
            .write_once(|txn| probe_row(txn, Some(&ballast)))
            .and_then(|()| self.write_once(|txn| probe_row(txn, None)));
        match &result {
            Ok(()) => self.healthy(),
            Err(e) => *lock(&self.failure) = Some(e.to_string()),
        }
        result
    }

    /// Starts the one recovery thread unless it runs: it tries a reopen
    /// and a probe write with backoff until one commits, and ends when
    /// the store is healthy or dropped.
    fn spawn_recovery(self: &Arc<Self>) {
        let mut running = lock(&self.recovering);
        if *running {
            return;
        }
        *running = true;
        let weak: Weak<Self> = Arc::downgrade(self);
        let spawned = std::thread::Builder::new()
            .name("store-recovery".into())
            .spawn(move || recover(&weak));
        if let Err(error) = spawned {
            warn!(%error, "cannot start the state store recovery thread; the next write retries");
            *running = false;
        }
    }
}

/// Stores (`Some`) or removes (`None`) the probe row.
fn probe_row(txn: &WriteTransaction, value: Option<&[u8]>) -> Result<(), StoreError> {
    let mut meta = txn
        .open_table(super::META)
        .map_err(super::db("open meta"))?;
    match value {
        Some(v) => meta.insert("probe", v).map(drop),
        None => meta.remove("probe").map(drop),
    }
    .map_err(super::db("write probe"))
}

/// The recovery loop: bounded by the store's life (it ends when the store
/// is dropped) and by success.
fn recover(weak: &Weak<DbCell>) {
    let mut wait = RETRY_FIRST;
    loop {
        std::thread::sleep(wait);
        let Some(cell) = weak.upgrade() else { return };
        if cell.failure().is_some() {
            let _ = cell.probe();
        }
        // Checked under the flag: a write that fails after this sees the
        // flag down and starts a new thread.
        let mut running = lock(&cell.recovering);
        if cell.failure().is_none() {
            *running = false;
            return;
        }
        drop(running);
        wait = (wait * 2).min(RETRY_MAX);
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while holding it leaves plain data that is still valid.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests;
