//! `fedctl ca rotate` and `fedctl ca status` on the admin API: thin
//! adapters from [`CaRotation`] to the wire types. The rotation itself and
//! its rules are in [`crate::ca::rotation`].

use std::sync::Arc;

use fedmesh_proto::identity::inspect_cert;
use fedmesh_proto::token::hex;
use fedmesh_proto::v1;
use tonic::Status;

use crate::ca::rotation::{CaRotation, Fleet, RotationError, check_finish, check_issue};
use crate::clock;
use crate::store::RotationPhase;

/// Reads the peers and gateways a rotation step depends on.
pub type FleetSource = Arc<dyn Fn() -> Fleet + Send + Sync>;

/// The rotation and what it is checked against.
#[derive(Clone)]
pub struct CaAdmin {
    /// The rotation state.
    pub rotation: Arc<CaRotation>,
    /// Peers and gateways now.
    pub fleet: FleetSource,
}

impl std::fmt::Debug for CaAdmin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CaAdmin").finish_non_exhaustive()
    }
}

impl CaAdmin {
    /// Starts (`start`) or ends (`finish`) a rotation.
    ///
    /// # Errors
    /// `FAILED_PRECONDITION` with the refusal's text when the step is not
    /// safe or not possible; `INVALID_ARGUMENT` for an unknown step.
    pub fn rotate(&self, req: &v1::CaRotateRequest) -> Result<v1::CaRotateResponse, Status> {
        let fleet = (self.fleet)();
        let detail = match req.step.as_str() {
            "" | "start" => {
                self.rotation.start(req.auto, req.force).map_err(refused)?;
                let record = self.rotation.record();
                if record.is_some_and(|r| r.force && r.phase == RotationPhase::Overlap) {
                    // Not waiting for acks: switch at once.
                    self.rotation
                        .issue(&fleet, std::time::Duration::ZERO)
                        .map_err(refused)?;
                    "new root made and signing now (--force: peers' acknowledgements not awaited)"
                } else if req.auto {
                    "new root made and sent to every peer; the rotation finishes by itself (see `fedctl ca status`)"
                } else {
                    "new root made and sent to every peer; once all acknowledge it signs, then run `fedctl ca rotate --finish`"
                }
            }
            "finish" => {
                self.rotation.finish(&fleet).map_err(refused)?;
                "old root withdrawn; peers are sent the new bundle"
            }
            other => {
                return Err(Status::invalid_argument(format!(
                    "unknown rotation step {other:?}; expected \"start\" or \"finish\""
                )));
            }
        };
        Ok(v1::CaRotateResponse {
            status: Some(self.status()),
            detail: detail.to_string(),
        })
    }

    /// The phase, roots, acknowledgements and gateways' leaves.
    pub fn status(&self) -> v1::CaStatusResponse {
        let fleet = (self.fleet)();
        let view = self.rotation.view();
        let record = self.rotation.record().filter(|_| view.phase.rotating());
        let signer_pin = view.signer.pin();
        let roots = view
            .roots
            .iter()
            .zip(&view.roots_pem)
            .filter_map(|(der, pem)| {
                let info = inspect_cert(der).ok()?;
                let pin = fedmesh_proto::identity::spki_sha256(der).ok()?;
                Some(v1::CaRoot {
                    fingerprint: hex(&pin),
                    subject: info.subject.clone(),
                    not_after_unix_ms: clock::datetime_unix_ms(info.not_after),
                    signer: pin == signer_pin,
                    cert_pem: pem.clone(),
                })
            })
            .collect();
        let peers = fleet
            .peers
            .iter()
            .map(|p| v1::CaPeerAck {
                peer: p.clone(),
                acked: record.as_ref().is_some_and(|r| r.acked.contains(p)),
            })
            .collect();
        let gateways = fleet
            .gateways
            .iter()
            .map(|(name, pin)| v1::CaGatewayLeaf {
                gateway: name.clone(),
                issuer_fingerprint: pin.map(|p| hex(&p)).unwrap_or_default(),
                current: *pin == Some(signer_pin),
            })
            .collect();
        let waiting_for = match &record {
            Some(r) if r.phase == RotationPhase::Overlap => check_issue(r, &fleet).err(),
            Some(r) => check_finish(r, signer_pin, &fleet).err(),
            None => None,
        };
        v1::CaStatusResponse {
            phase: view.phase.as_str().to_string(),
            roots,
            peers,
            gateways,
            auto: record.as_ref().is_some_and(|r| r.auto),
            force: record.as_ref().is_some_and(|r| r.force),
            waiting_for: waiting_for.map(|e| e.to_string()).unwrap_or_default(),
            external: self.rotation.external(),
        }
    }
}

fn refused(e: RotationError) -> Status {
    match e {
        RotationError::Ca(_) | RotationError::Store(_) => Status::internal(e.to_string()),
        _ => Status::failed_precondition(e.to_string()),
    }
}
