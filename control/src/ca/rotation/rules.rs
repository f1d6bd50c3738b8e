//! The rules of a CA rotation as pure functions over what the caller
//! sees: when the new root may sign ([`check_issue`]), when the old one may
//! be withdrawn ([`check_finish`]), and how a bundle and a leaf's root are
//! named ([`roots_digest`], [`issuer_pin`]). [`super::CaRotation`] applies
//! them; `fedctl ca status` shows their refusals as what it waits for.

use fedmesh_proto::identity::inspect_cert;
use rustls_pki_types::CertificateDer;

use crate::ca::CaError;
use crate::store::{RotationPhase, RotationRecord, StoreError};

/// Why a rotation step was refused.
#[derive(Debug, thiserror::Error)]
pub enum RotationError {
    /// The CA is the operator's own.
    #[error(
        "the CA comes from ca.certFile and ca.keyFile, which fedctl does not own, so `fedctl ca rotate` cannot replace it; replace the files and re-join the peers (docs/security.md, Rotation), or remove ca.certFile/ca.keyFile so that fedctl generates and rotates its own CA"
    )]
    External,
    /// A rotation is already running.
    #[error(
        "a CA rotation is already in phase {phase}; see `fedctl ca status`, and end it with `fedctl ca rotate --finish`"
    )]
    AlreadyRotating {
        /// Its phase.
        phase: &'static str,
    },
    /// Nothing to finish.
    #[error("no CA rotation is running (phase {phase}); start one with `fedctl ca rotate`")]
    NotRotating {
        /// The phase.
        phase: &'static str,
    },
    /// Peers that have not stored the new root yet.
    #[error(
        "peers {peers:?} have not acknowledged the new root yet; wait (see `fedctl ca status`), or if a peer runs an earlier release (it never acknowledges) make sure it has the new root and run `fedctl ca rotate --force`"
    )]
    PeersNotAcked {
        /// Their names.
        peers: Vec<String>,
    },
    /// Local gateways still serving a leaf of the old root.
    #[error(
        "gateways {gateways:?} still serve a certificate of the old root; they renew within seconds of the new root signing: wait, or restart a stuck gateway"
    )]
    GatewaysOnOldRoot {
        /// Their names.
        gateways: Vec<String>,
    },
    /// The new root could not be made or loaded.
    #[error("while making the new root: {0}")]
    Ca(#[from] CaError),
    /// The store refused the step; nothing changed.
    #[error("while storing the rotation: {0}")]
    Store(#[from] StoreError),
}

/// The peers and gateways a step depends on, as the caller sees them now.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Fleet {
    /// Every peer of this cluster.
    pub peers: Vec<String>,
    /// Every local gateway with the SHA-256 of the public key of the root
    /// that issued the leaf it serves (`None` when it has not said).
    pub gateways: Vec<(String, Option<[u8; 32]>)>,
}

/// Hex SHA-256 over the sorted SHA-256 digests of the roots' DER: names a
/// bundle whatever order it travels in.
pub fn roots_digest(roots: &[CertificateDer<'_>]) -> String {
    let mut each: Vec<Vec<u8>> = roots
        .iter()
        .map(|r| {
            ring::digest::digest(&ring::digest::SHA256, r)
                .as_ref()
                .to_vec()
        })
        .collect();
    each.sort();
    let all = ring::digest::digest(&ring::digest::SHA256, &each.concat());
    fedmesh_proto::token::hex(all.as_ref())
}

/// Whether the new root may start signing: every peer acknowledged the
/// bundle of both roots, or `force`.
///
/// # Errors
/// [`RotationError::PeersNotAcked`] naming who has not.
pub fn check_issue(record: &RotationRecord, fleet: &Fleet) -> Result<(), RotationError> {
    if record.force {
        return Ok(());
    }
    let missing: Vec<String> = fleet
        .peers
        .iter()
        .filter(|p| !record.acked.contains(*p))
        .cloned()
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(RotationError::PeersNotAcked { peers: missing })
    }
}

/// Whether the old root may be withdrawn: the new root signs and every
/// local gateway serves a leaf of it.
///
/// # Errors
/// [`RotationError::PeersNotAcked`] while still in overlap,
/// [`RotationError::GatewaysOnOldRoot`] naming the gateways.
pub fn check_finish(
    record: &RotationRecord,
    signer_pin: [u8; 32],
    fleet: &Fleet,
) -> Result<(), RotationError> {
    if record.phase == RotationPhase::Overlap {
        check_issue(record, fleet)?;
        // Acked but not switched yet: the driver switches on its next tick.
        return Err(RotationError::GatewaysOnOldRoot {
            gateways: fleet.gateways.iter().map(|(g, _)| g.clone()).collect(),
        });
    }
    let old: Vec<String> = fleet
        .gateways
        .iter()
        .filter(|(_, pin)| *pin != Some(signer_pin))
        .map(|(g, _)| g.clone())
        .collect();
    if old.is_empty() {
        Ok(())
    } else {
        Err(RotationError::GatewaysOnOldRoot { gateways: old })
    }
}

/// The root a leaf chain ends in: SHA-256 of the public key of its last
/// certificate, when the chain has one beyond the leaf.
pub fn issuer_pin(chain: &[CertificateDer<'_>]) -> Option<[u8; 32]> {
    let ca = chain.get(1..)?.last()?;
    inspect_cert(ca).ok()?;
    fedmesh_proto::identity::spki_sha256(ca).ok()
}
