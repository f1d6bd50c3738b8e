//! CA rotation by overlap (DESIGN.md, Operations): replace this cluster's
//! root without a failed connection.
//!
//! The one rule: a leaf of a root is only presented once everyone who
//! verifies it trusts that root, and a root is only withdrawn once no leaf
//! presented anywhere chains to it. Hence the phases, in order:
//!
//! 1. `overlap`: a new root is made and published beside the old one
//!    (peers get both on the stream and in Hello; local gateways in their
//!    snapshot, as pins they accept the control plane by). The old root
//!    still signs. Each peer acknowledges the bundle it stored.
//! 2. `issued`: every peer acknowledged (or `force`): the new root signs;
//!    the control leaf is reissued in place and gateways are told to renew
//!    ([`CaView::signer`] changes; `renewal.rs` and the gateway API follow).
//! 3. `finished`: every local gateway serves a leaf of the new root; the
//!    old root is withdrawn from what is published.
//!
//! [`CaRotation`] owns the state: the store record (so a restart resumes)
//! and a `watch` of [`CaView`] that the peering sessions, the gateway API
//! and the renewal task read. The decisions are pure functions
//! ([`check_issue`], [`check_finish`]) over a [`Fleet`], the peers and
//! gateways as the caller sees them; [`drive`] applies them on a tick.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use rustls_pki_types::CertificateDer;
use tokio::sync::watch;
use tracing::{info, warn};

use super::ClusterCa;
use crate::clock;
use crate::store::{RotationPhase, RotationRecord, Store};

mod rules;

pub use rules::{Fleet, RotationError, check_finish, check_issue, issuer_pin, roots_digest};

/// How often [`drive`] looks whether the next step is safe.
pub const DRIVE_EVERY: Duration = Duration::from_millis(250);

/// After the last acknowledgement, wait this long before the new root
/// signs: a peer acknowledges once it stored and trusts the roots, and its
/// gateways get them in their next snapshot a moment later.
pub const SETTLE: Duration = Duration::from_secs(1);

/// The phase as `fedctl ca status` shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// No rotation has run.
    Idle,
    /// See [`RotationPhase`].
    Overlap,
    /// See [`RotationPhase`].
    Issued,
    /// See [`RotationPhase`].
    Finished,
}

impl Phase {
    /// `idle`, `overlap`, `issued` or `finished`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Idle => "idle",
            Self::Overlap => "overlap",
            Self::Issued => "issued",
            Self::Finished => "finished",
        }
    }

    fn of(record: Option<&RotationRecord>) -> Self {
        match record.map(|r| r.phase) {
            None => Self::Idle,
            Some(RotationPhase::Overlap) => Self::Overlap,
            Some(RotationPhase::Issued) => Self::Issued,
            Some(RotationPhase::Finished) => Self::Finished,
        }
    }

    /// Whether a rotation is under way (two roots published).
    pub fn rotating(self) -> bool {
        matches!(self, Self::Overlap | Self::Issued)
    }
}

/// What the published trust looks like now; the readers' side.
#[derive(Debug, Clone)]
pub struct CaView {
    /// The phase.
    pub phase: Phase,
    /// The root that signs new leaves.
    pub signer: Arc<ClusterCa>,
    /// The published roots (PEM), old first.
    pub roots_pem: Vec<String>,
    /// The same, DER.
    pub roots: Vec<CertificateDer<'static>>,
    /// [`roots_digest`] of `roots`: what a peer's acknowledgement names.
    pub digest: String,
}

impl CaView {
    /// SHA-256 of the public key of each published root.
    pub fn pins(&self) -> Vec<[u8; 32]> {
        self.roots
            .iter()
            .filter_map(|r| fedmesh_proto::identity::spki_sha256(r).ok())
            .collect()
    }
}

/// The rotation state of this cluster's CA: owner of the record and the
/// published [`CaView`].
#[derive(Debug)]
pub struct CaRotation {
    /// `None`: a fixed CA ([`CaRotation::fixed`]).
    store: Option<Arc<Store>>,
    /// `ca.certFile`/`ca.keyFile`: never rotated here.
    external: bool,
    cluster: String,
    inner: Mutex<Inner>,
    view: watch::Sender<Arc<CaView>>,
}

#[derive(Debug)]
struct Inner {
    signer: Arc<ClusterCa>,
    /// The new root while it does not sign yet (overlap).
    pending: Option<Arc<ClusterCa>>,
    record: Option<RotationRecord>,
    /// When the last peer acknowledged (overlap), for [`SETTLE`].
    all_acked_at: Option<std::time::Instant>,
}

impl CaRotation {
    /// The rotation over the signing CA `signer` and what the store holds.
    ///
    /// # Errors
    /// When the stored record or its new root is unreadable.
    pub fn load(
        store: Arc<Store>,
        signer: ClusterCa,
        cluster: &str,
        external: bool,
    ) -> Result<Self, RotationError> {
        let record = if external { None } else { store.rotation()? };
        let pending =
            match &record {
                Some(r) if r.phase == RotationPhase::Overlap => Some(Arc::new(
                    ClusterCa::from_pem(&r.new_cert_pem, &r.new_key_pem, signer.trust_domain())?,
                )),
                _ => None,
            };
        let inner = Inner {
            signer: Arc::new(signer),
            pending,
            record,
            all_acked_at: None,
        };
        let view = watch::Sender::new(Arc::new(inner.view()));
        Ok(Self {
            store: Some(store),
            external,
            cluster: cluster.to_string(),
            inner: Mutex::new(inner),
            view,
        })
    }

    /// A CA that is never rotated and stores nothing: for tests and for
    /// callers that only sign.
    pub fn fixed(signer: ClusterCa) -> Self {
        let inner = Inner {
            signer: Arc::new(signer),
            pending: None,
            record: None,
            all_acked_at: None,
        };
        Self {
            store: None,
            external: true,
            cluster: String::new(),
            view: watch::Sender::new(Arc::new(inner.view())),
            inner: Mutex::new(inner),
        }
    }

    fn store(&self) -> Result<&Store, RotationError> {
        self.store.as_deref().ok_or(RotationError::External)
    }

    /// The published trust now.
    pub fn view(&self) -> Arc<CaView> {
        self.view.borrow().clone()
    }

    /// Every change of the published trust.
    pub fn subscribe(&self) -> watch::Receiver<Arc<CaView>> {
        self.view.subscribe()
    }

    /// The root that signs new leaves.
    pub fn signer(&self) -> Arc<ClusterCa> {
        self.view().signer.clone()
    }

    /// Whether the CA is the operator's (`ca.certFile`).
    pub fn external(&self) -> bool {
        self.external
    }

    /// The stored record (None: no rotation ever ran).
    pub fn record(&self) -> Option<RotationRecord> {
        self.lock().record.clone()
    }

    /// Starts a rotation: a new root, published beside the old one. With
    /// `force` during overlap, stops waiting for acknowledgements.
    ///
    /// # Errors
    /// When the CA is external, a rotation is already further along, or
    /// the new root cannot be made or stored.
    pub fn start(&self, auto: bool, force: bool) -> Result<(), RotationError> {
        if self.external {
            return Err(RotationError::External);
        }
        let mut inner = self.lock();
        let phase = Phase::of(inner.record.as_ref());
        if phase == Phase::Overlap && force {
            return self.update(&mut inner, |r| r.force = true);
        }
        if phase.rotating() {
            return Err(RotationError::AlreadyRotating {
                phase: phase.as_str(),
            });
        }
        let started = clock::now_unix_ms();
        let new = ClusterCa::generate_named(
            &format!("fedmesh {} root CA {}", self.cluster, started / 1000),
            inner.signer.trust_domain(),
        )?;
        let record = RotationRecord {
            phase: RotationPhase::Overlap,
            old_cert_pem: inner.signer.cert_pem().to_string(),
            new_cert_pem: new.cert_pem().to_string(),
            new_key_pem: new.key_pem().to_string(),
            acked: BTreeSet::new(),
            auto,
            force,
            started_unix_ms: started,
        };
        self.store()?.put_rotation(&record)?;
        info!(auto, force, "CA rotation started: both roots published");
        inner.pending = Some(Arc::new(new));
        inner.record = Some(record);
        inner.all_acked_at = None;
        self.publish(&inner);
        Ok(())
    }

    /// A peer acknowledged the bundle named `digest`; returns whether it
    /// is the bundle published now (an ack of an older one is ignored).
    ///
    /// # Errors
    /// When the store refuses the record.
    pub fn acked(&self, peer: &str, digest: &str) -> Result<bool, RotationError> {
        let mut inner = self.lock();
        let current = self.view.borrow().digest.clone();
        let phase = Phase::of(inner.record.as_ref());
        if digest != current || !phase.rotating() {
            return Ok(false);
        }
        if inner
            .record
            .as_ref()
            .is_some_and(|r| r.acked.contains(peer))
        {
            return Ok(true);
        }
        let peer = peer.to_string();
        self.update(&mut inner, move |r| {
            r.acked.insert(peer);
        })?;
        Ok(true)
    }

    /// Switches the signer to the new root if every peer acknowledged (or
    /// `force`) for at least `settle`; returns whether it switched.
    ///
    /// # Errors
    /// When not in overlap, peers are missing, or the store refuses.
    pub fn issue(&self, fleet: &Fleet, settle: Duration) -> Result<bool, RotationError> {
        let mut inner = self.lock();
        let Some(record) = inner.record.clone() else {
            return Err(RotationError::NotRotating { phase: "idle" });
        };
        if record.phase != RotationPhase::Overlap {
            return Err(RotationError::NotRotating {
                phase: Phase::of(Some(&record)).as_str(),
            });
        }
        if let Err(missing) = check_issue(&record, fleet) {
            inner.all_acked_at = None;
            return Err(missing);
        }
        let since = *inner
            .all_acked_at
            .get_or_insert_with(std::time::Instant::now);
        if !record.force && since.elapsed() < settle {
            return Ok(false);
        }
        let Some(new) = inner.pending.clone() else {
            return Err(RotationError::NotRotating { phase: "overlap" });
        };
        let next = RotationRecord {
            phase: RotationPhase::Issued,
            new_key_pem: String::new(),
            ..record
        };
        self.store()?
            .switch_ca(new.cert_pem(), new.key_pem(), &next)?;
        info!("CA rotation: the new root signs now; leaves are being reissued");
        inner.signer = new;
        inner.pending = None;
        inner.record = Some(next);
        self.publish(&inner);
        Ok(true)
    }

    /// Withdraws the old root once nothing uses it.
    ///
    /// # Errors
    /// When no rotation runs, peers or gateways are not there yet, or the
    /// store refuses.
    pub fn finish(&self, fleet: &Fleet) -> Result<(), RotationError> {
        if self.external {
            return Err(RotationError::External);
        }
        let mut inner = self.lock();
        let phase = Phase::of(inner.record.as_ref());
        let Some(record) = inner.record.clone().filter(|_| phase.rotating()) else {
            return Err(RotationError::NotRotating {
                phase: phase.as_str(),
            });
        };
        check_finish(&record, inner.signer.pin(), fleet)?;
        self.update(&mut inner, |r| {
            r.phase = RotationPhase::Finished;
            r.acked.clear();
        })?;
        info!("CA rotation finished: the old root is no longer published");
        Ok(())
    }

    /// One step of `--auto` (and of the switch once all acked): what is
    /// safe now is done. Refusals are the normal "not yet".
    pub fn step(&self, fleet: &Fleet) {
        let Some(record) = self.record() else { return };
        let result = match record.phase {
            RotationPhase::Overlap => self.issue(fleet, SETTLE).map(|_| ()),
            RotationPhase::Issued if record.auto => self.finish(fleet),
            _ => Ok(()),
        };
        match result {
            Ok(()) | Err(RotationError::PeersNotAcked { .. }) => {}
            Err(RotationError::GatewaysOnOldRoot { .. }) => {}
            Err(error) => warn!(%error, "CA rotation step failed; retrying"),
        }
    }

    fn update(
        &self,
        inner: &mut MutexGuard<'_, Inner>,
        change: impl FnOnce(&mut RotationRecord),
    ) -> Result<(), RotationError> {
        let Some(mut record) = inner.record.clone() else {
            return Ok(());
        };
        change(&mut record);
        self.store()?.put_rotation(&record)?;
        inner.record = Some(record);
        self.publish(inner);
        Ok(())
    }

    fn publish(&self, inner: &Inner) {
        let next = inner.view();
        self.view.send_if_modified(|v| {
            let changed = v.phase != next.phase
                || v.digest != next.digest
                || v.signer.pin() != next.signer.pin();
            if changed {
                *v = Arc::new(next);
            }
            changed
        });
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // Every change is made whole before the guard drops.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Inner {
    fn view(&self) -> CaView {
        let phase = Phase::of(self.record.as_ref());
        let mut roots_pem = vec![];
        if let Some(r) = self.record.as_ref().filter(|_| phase.rotating()) {
            roots_pem.push(r.old_cert_pem.clone());
            roots_pem.push(r.new_cert_pem.clone());
        } else {
            roots_pem.push(self.signer.cert_pem().to_string());
        }
        let roots: Vec<CertificateDer<'static>> = roots_pem
            .iter()
            .filter_map(|p| {
                use rustls_pki_types::pem::PemObject;
                CertificateDer::from_pem_slice(p.as_bytes()).ok()
            })
            .collect();
        CaView {
            phase,
            signer: self.signer.clone(),
            digest: roots_digest(&roots),
            roots_pem,
            roots,
        }
    }
}

/// Applies [`CaRotation::step`] every [`DRIVE_EVERY`], with the fleet as
/// `fleet` reads it, for the life of the process.
pub async fn drive(rotation: Arc<CaRotation>, fleet: impl Fn() -> Fleet + Send + 'static) {
    let mut tick = tokio::time::interval(DRIVE_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if rotation.view().phase.rotating() {
            rotation.step(&fleet());
        }
    }
}

#[cfg(test)]
mod tests;
