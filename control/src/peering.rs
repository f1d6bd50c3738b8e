//! Peering: the join handshake, one long-lived sync stream per peering, and
//! the live state of every peer.
//!
//! Data flow: [`PeerSet`] holds each peer's persisted [`PeerRecord`] and its
//! link state. A peering's stream is opened by the dialer
//! ([`handles::Dialer`]) and served by the acceptor ([`server`]); both ends run
//! the same [`session`] loop (hello, heartbeats, goodbye). A session is
//! registered in the set and a newer stream from the same peer replaces it.
//! When a session ends the peer turns *stale*; after `staleGrace` it is
//! *disconnected*.
//!
//! Start reading at [`PeerSet`], then `session.rs`.

pub mod dialer;
pub mod handles;
pub mod info;
pub mod join;
pub mod leave;
pub mod server;
pub mod session;
pub mod sync;
#[cfg(test)]
pub(crate) mod testkit;
pub mod trust;

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use fedmesh_proto::identity::{IdentityError, PeerTrust, SharedTrust, TrustBundle};
use fedmesh_proto::v1;
use tokio::sync::{mpsc, oneshot, watch};

use crate::clock;
use crate::store::{PeerRecord, Role};
use crate::table::PeerLink;

pub use crate::model::LinkState;

/// Largest sync message, both ways: a full resync of tens of thousands of
/// exports.
pub const MAX_SYNC_MESSAGE: usize = 64 << 20;

/// Why a peer could not be added to the set or updated in it.
#[derive(Debug, thiserror::Error)]
pub enum PeerSetError {
    /// Its CA roots do not parse as CA certificates.
    #[error("peer {peer}'s CA roots are unusable: {source}")]
    Roots {
        /// The peer.
        peer: String,
        /// Which root and why.
        #[source]
        source: info::RootError,
    },
    /// The trust bundle refused it (its trust domain is another peer's).
    #[error("peer {peer} cannot be trusted: {source}")]
    Trust {
        /// The peer.
        peer: String,
        /// Why.
        #[source]
        source: IdentityError,
    },
}

/// The live stream of one peering.
struct SessionSlot {
    id: u64,
    outbound: mpsc::Sender<v1::SyncMessage>,
    /// Dropping it ends the session task.
    _kill: oneshot::Sender<()>,
    /// Set while `fedctl leave` waits for the peer's Goodbye answer.
    goodbye_waiter: Option<oneshot::Sender<()>>,
}

struct PeerEntry {
    record: PeerRecord,
    state: LinkState,
    since_ms: i64,
    last_heard_ms: Option<i64>,
    last_error: Option<String>,
    session: Option<SessionSlot>,
    dialer: Option<tokio::task::AbortHandle>,
}

impl Drop for PeerEntry {
    fn drop(&mut self) {
        if let Some(dialer) = self.dialer.take() {
            dialer.abort();
        }
    }
}

/// A read-only view of one peer, for the admin API and checks.
#[derive(Debug, Clone)]
pub struct PeerView {
    /// What is stored about the peer.
    pub record: PeerRecord,
    /// Link state.
    pub state: LinkState,
    /// Unix ms of the last state change.
    pub since_ms: i64,
    /// Unix ms the peer was last heard on the stream.
    pub last_heard_ms: Option<i64>,
    /// Last error on this peering.
    pub last_error: Option<String>,
}

impl PeerView {
    /// What the service table needs of this peer.
    pub fn link(&self) -> PeerLink {
        PeerLink {
            name: self.record.name.clone(),
            locality: self.record.locality.clone(),
            gateway_address: self.record.gateway_address.clone(),
            state: self.state,
        }
    }
}

/// Every peer of this cluster and its link state. Cheap to share; no lock
/// is held across an `.await`.
pub struct PeerSet {
    inner: Mutex<HashMap<String, PeerEntry>>,
    trust: SharedTrust,
    changes: watch::Sender<u64>,
    next_session: AtomicU64,
}

impl std::fmt::Debug for PeerSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PeerSet").finish_non_exhaustive()
    }
}

impl PeerSet {
    /// A set holding the stored peers, all *stale* until they reconnect
    /// (what they sent is served until `staleGrace` runs out). Peers whose
    /// roots do not parse are skipped and returned as errors.
    pub fn new(records: Vec<PeerRecord>) -> (Self, Vec<PeerSetError>) {
        let set = Self {
            inner: Mutex::new(HashMap::new()),
            trust: SharedTrust::default(),
            changes: watch::channel(0).0,
            next_session: AtomicU64::new(1),
        };
        let mut errors = Vec::new();
        let now = clock::now_unix_ms();
        for record in records {
            if let Err(e) = set.insert(record, LinkState::Stale, now) {
                errors.push(e);
            }
        }
        (set, errors)
    }

    /// The live trust bundle (peer roots) the TLS verifiers use.
    pub fn trust(&self) -> &SharedTrust {
        &self.trust
    }

    /// A receiver that changes whenever a peer is added or removed, its
    /// record changes, or its link state changes.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }

    /// Adds or replaces a peer and trusts its roots.
    ///
    /// # Errors
    /// When its roots are not CA certificates or its trust domain is used
    /// by another peer.
    pub fn insert(
        &self,
        record: PeerRecord,
        state: LinkState,
        now_ms: i64,
    ) -> Result<(), PeerSetError> {
        self.trust_record(&record)?;
        let entry = PeerEntry {
            record,
            state,
            since_ms: now_ms,
            last_heard_ms: None,
            last_error: None,
            session: None,
            dialer: None,
        };
        let name = entry.record.name.clone();
        self.lock().insert(name, entry);
        self.changes.send_modify(|v| *v += 1);
        Ok(())
    }

    /// Removes a peer: ends its stream, stops its dialer, drops its roots.
    /// Returns whether it was there.
    pub fn remove(&self, name: &str) -> bool {
        let removed = self.lock().remove(name);
        self.trust.update(|b: &mut TrustBundle| b.remove(name));
        self.changes.send_modify(|v| *v += 1);
        removed.is_some()
    }

    /// Ends every stream and stops every dialer (shutdown).
    pub fn shutdown(&self) {
        let mut inner = self.lock();
        for entry in inner.values_mut() {
            entry.session = None;
            if let Some(d) = entry.dialer.take() {
                d.abort();
            }
        }
    }

    /// Views of every peer, sorted by name.
    pub fn views(&self) -> Vec<PeerView> {
        let inner = self.lock();
        let mut views: Vec<PeerView> = inner.values().map(view).collect();
        views.sort_by(|a, b| a.record.name.cmp(&b.record.name));
        views
    }

    /// A view of one peer.
    pub fn view(&self, name: &str) -> Option<PeerView> {
        self.lock().get(name).map(view)
    }

    /// The stored record of one peer.
    pub fn record(&self, name: &str) -> Option<PeerRecord> {
        self.lock().get(name).map(|e| e.record.clone())
    }

    /// Remembers the task that dials this peer, so removing the peer stops it.
    pub fn set_dialer(&self, name: &str, handle: tokio::task::AbortHandle) {
        match self.lock().get_mut(name) {
            Some(entry) => entry.dialer = Some(handle),
            None => handle.abort(),
        }
    }

    /// Registers a new stream for `name`, replacing (and so ending) any
    /// older one. Returns the session id and the receiver that fires when
    /// the session must end, or `None` when the peer is unknown.
    pub fn open_session(
        &self,
        name: &str,
        outbound: mpsc::Sender<v1::SyncMessage>,
    ) -> Option<(u64, oneshot::Receiver<()>)> {
        let id = self.next_session.fetch_add(1, Ordering::Relaxed);
        let (kill_tx, kill_rx) = oneshot::channel();
        let mut inner = self.lock();
        let entry = inner.get_mut(name)?;
        entry.session = Some(SessionSlot {
            id,
            outbound,
            _kill: kill_tx,
            goodbye_waiter: None,
        });
        Some((id, kill_rx))
    }

    /// Marks the peer heard from now; the first message of a session turns
    /// the link *connected*.
    pub fn heard(&self, name: &str, session: u64) {
        let now = clock::now_unix_ms();
        let mut inner = self.lock();
        if let Some(entry) = inner.get_mut(name)
            && entry.session.as_ref().is_some_and(|s| s.id == session)
        {
            entry.last_heard_ms = Some(now);
            if entry.state != LinkState::Connected {
                entry.state = LinkState::Connected;
                entry.since_ms = now;
                entry.last_error = None;
                drop(inner);
                self.changes.send_modify(|v| *v += 1);
            }
        }
    }

    /// Records the end of a session: if it is still the peer's current one,
    /// the link turns *stale* (when it was connected) and `error` is kept.
    pub fn session_ended(&self, name: &str, session: u64, error: Option<String>) {
        let now = clock::now_unix_ms();
        let mut inner = self.lock();
        let Some(entry) = inner.get_mut(name) else {
            return;
        };
        let mut changed = false;
        if entry.session.as_ref().is_some_and(|s| s.id == session) {
            entry.session = None;
            if entry.state == LinkState::Connected {
                entry.state = LinkState::Stale;
                entry.since_ms = now;
                changed = true;
            }
        }
        if error.is_some() {
            entry.last_error = error;
        }
        drop(inner);
        if changed {
            self.changes.send_modify(|v| *v += 1);
        }
    }

    /// Records a failed dial attempt.
    pub fn dial_failed(&self, name: &str, error: String) {
        if let Some(entry) = self.lock().get_mut(name) {
            entry.last_error = Some(error);
        }
    }

    /// Updates what the peer says about itself on a new stream (locality,
    /// gateway address, endpoint, roots). Returns the new record when it
    /// changed, for the caller to persist.
    ///
    /// # Errors
    /// When the new roots are unusable.
    pub fn update_record(
        &self,
        name: &str,
        update: impl FnOnce(&mut PeerRecord),
    ) -> Result<Option<PeerRecord>, PeerSetError> {
        let mut inner = self.lock();
        let Some(entry) = inner.get_mut(name) else {
            return Ok(None);
        };
        let mut record = entry.record.clone();
        update(&mut record);
        if record == entry.record {
            return Ok(None);
        }
        if record.roots_pem != entry.record.roots_pem {
            self.trust_record(&record)?;
        }
        entry.record = record.clone();
        drop(inner);
        self.changes.send_modify(|v| *v += 1);
        Ok(Some(record))
    }

    /// Sends a message on the peer's current stream, if there is one.
    pub fn outbound(&self, name: &str) -> Option<mpsc::Sender<v1::SyncMessage>> {
        self.lock()
            .get(name)
            .and_then(|e| e.session.as_ref())
            .map(|s| s.outbound.clone())
    }

    /// Arms a waiter fired when the peer answers our Goodbye. Returns `None`
    /// when there is no stream to send it on.
    pub fn await_goodbye(
        &self,
        name: &str,
    ) -> Option<(mpsc::Sender<v1::SyncMessage>, oneshot::Receiver<()>)> {
        let mut inner = self.lock();
        let slot = inner.get_mut(name)?.session.as_mut()?;
        let (tx, rx) = oneshot::channel();
        slot.goodbye_waiter = Some(tx);
        Some((slot.outbound.clone(), rx))
    }

    /// Fires the Goodbye waiter of the session, if armed. Returns whether it
    /// was (so the Goodbye was an answer, not the peer leaving on its own).
    pub fn answer_goodbye(&self, name: &str, session: u64) -> bool {
        let mut inner = self.lock();
        let waiter = inner
            .get_mut(name)
            .and_then(|e| e.session.as_mut())
            .filter(|s| s.id == session)
            .and_then(|s| s.goodbye_waiter.take());
        match waiter {
            Some(w) => {
                let _ = w.send(());
                true
            }
            None => false,
        }
    }

    /// Turns peers stale for longer than `grace` into disconnected ones.
    /// Returns the names that changed.
    pub fn expire_stale(&self, grace: Duration) -> Vec<String> {
        let now = clock::now_unix_ms();
        let grace_ms = i64::try_from(grace.as_millis()).unwrap_or(i64::MAX);
        let mut expired = Vec::new();
        for (name, entry) in self.lock().iter_mut() {
            if entry.state == LinkState::Stale && now - entry.since_ms >= grace_ms {
                entry.state = LinkState::Disconnected;
                entry.since_ms = now;
                expired.push(name.clone());
            }
        }
        if !expired.is_empty() {
            self.changes.send_modify(|v| *v += 1);
        }
        expired
    }

    /// Puts the record's roots into the live trust bundle.
    fn trust_record(&self, record: &PeerRecord) -> Result<(), PeerSetError> {
        let trust = peer_trust(record)?;
        self.trust
            .update(|b: &mut TrustBundle| b.insert(trust))
            .map_err(|source| PeerSetError::Trust {
                peer: record.name.clone(),
                source,
            })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, PeerEntry>> {
        // A panic while holding this lock leaves plain data behind, never a
        // half-written invariant, so a poisoned lock is still usable.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn view(e: &PeerEntry) -> PeerView {
    PeerView {
        record: e.record.clone(),
        state: e.state,
        since_ms: e.since_ms,
        last_heard_ms: e.last_heard_ms,
        last_error: e.last_error.clone(),
    }
}

/// The trust entry of a stored peer.
///
/// # Errors
/// When a root is not PEM.
pub fn peer_trust(record: &PeerRecord) -> Result<PeerTrust, PeerSetError> {
    let roots = info::parse_roots(&record.roots_pem).map_err(|source| PeerSetError::Roots {
        peer: record.name.clone(),
        source,
    })?;
    Ok(PeerTrust {
        cluster: record.name.clone(),
        trust_domain: record.trust_domain.clone(),
        roots,
    })
}

/// The role string for a record.
pub fn role_str(record: &PeerRecord) -> &'static str {
    Role::as_str(record.role)
}

#[cfg(test)]
mod tests;
