//! The gateway's link to its control plane (DESIGN.md, Gateway: Process):
//! dial `control.gatewayListen` over TLS, accepting only the CA pinned in
//! the bootstrap token, then (with the token's secret on every call) get a
//! certificate for a locally made key by CSR, and watch configuration
//! snapshots, and report this gateway's status (readiness, probes of peer
//! gateways) on a stream of its own. When the control plane is down the
//! last snapshot keeps serving and both streams redial with backoff.
//!
//! CA rotation: each snapshot names the roots the control plane's leaf may
//! chain to (accepted beside the token's pin on the next dial) and the
//! root that signs now; a leaf of another root is renewed at once, in
//! place, so open connections keep going.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use fedmesh_proto::identity::{self, LiveCert, PinnedServerVerifier};
use fedmesh_proto::token::BootstrapToken;
use fedmesh_proto::transport::{connect, error_chain};
use fedmesh_proto::v1::{self, gateway_config_client::GatewayConfigClient};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use time::OffsetDateTime;
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Channel;
use tracing::{debug, info, warn};

use crate::state::GatewayState;

/// Longest wait between redials.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// The status is sent at least this often even when unchanged, so the
/// control plane can tell a silent gateway from a steady one.
pub const REPORT_EVERY: Duration = Duration::from_secs(2);

/// How the gateway reaches its control plane.
#[derive(Debug, Clone)]
pub struct ControlLink {
    addr: String,
    token: BootstrapToken,
    token_text: String,
    name: String,
    /// Roots the last snapshot says the control plane's leaf may chain to.
    learned_pins: Arc<Mutex<Vec<[u8; 32]>>>,
    /// The root that signs now, per the last snapshot (empty: not said).
    signer_pin: Arc<watch::Sender<Vec<u8>>>,
}

/// A certificate issued for this gateway.
#[derive(Debug)]
pub struct Issued {
    /// `[leaf, ca]`.
    pub chain: Vec<CertificateDer<'static>>,
    /// The key made here.
    pub key: PrivateKeyDer<'static>,
    /// End of validity.
    pub not_after: OffsetDateTime,
}

impl ControlLink {
    /// A link to the control plane at `addr` for gateway `name`, with the
    /// bootstrap token's text.
    ///
    /// # Errors
    /// When the token does not decode.
    pub fn new(addr: String, token_text: &str, name: &str) -> Result<Self, String> {
        let token = BootstrapToken::decode(token_text).map_err(|e| e.to_string())?;
        Ok(Self {
            addr,
            token,
            token_text: token_text.trim().to_string(),
            name: name.to_string(),
            learned_pins: Arc::new(Mutex::new(Vec::new())),
            signer_pin: Arc::new(watch::Sender::new(Vec::new())),
        })
    }

    async fn client(&self) -> Result<GatewayConfigClient<Channel>, String> {
        let learned = self
            .learned_pins
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let verifier = PinnedServerVerifier::any_of(self.token.pin, &learned);
        let tls = identity::client_config(None, verifier, &[b"h2"]).map_err(|e| e.to_string())?;
        let channel = connect(&self.addr, Arc::new(tls), Duration::from_secs(3))
            .await
            .map_err(|e| {
                format!(
                    "cannot reach the control plane at {}: {}",
                    self.addr,
                    error_chain(&e)
                )
            })?;
        Ok(GatewayConfigClient::new(channel))
    }

    /// Makes a key here, sends a CSR, and returns the signed chain.
    ///
    /// # Errors
    /// When the control plane is unreachable or refuses.
    pub async fn issue(&self) -> Result<Issued, String> {
        let key = rcgen::KeyPair::generate().map_err(|e| format!("cannot make a key: {e}"))?;
        let mut params = rcgen::CertificateParams::default();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, self.name.clone());
        let csr = params
            .serialize_request(&key)
            .map_err(|e| format!("cannot build the CSR: {e}"))?;
        let answer = self
            .client()
            .await?
            .sign_certificate(v1::SignCertificateRequest {
                bootstrap_token: self.token_text.clone(),
                gateway_name: self.name.clone(),
                csr_der: csr.der().to_vec(),
            })
            .await
            .map_err(|s| format!("the control plane refused the CSR: {}", s.message()))?
            .into_inner();
        let chain = CertificateDer::pem_slice_iter(answer.cert_chain_pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| format!("the signed chain is not PEM: {e}"))?;
        let leaf = chain.first().ok_or("the signed chain is empty")?;
        let not_after = identity::inspect_cert(leaf)
            .map_err(|e| e.to_string())?
            .not_after;
        let key = PrivateKeyDer::Pkcs8(key.serialize_der().into());
        Ok(Issued {
            chain,
            key,
            not_after,
        })
    }

    /// Gets a certificate, retrying with backoff until it works.
    pub async fn issue_until_ok(&self) -> Issued {
        let mut wait = Duration::from_millis(100);
        loop {
            match self.issue().await {
                Ok(issued) => return issued,
                Err(error) => {
                    warn!(%error, "no certificate yet; retrying");
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(MAX_BACKOFF);
                }
            }
        }
    }

    /// Watches snapshots forever, publishing each good one. A snapshot that
    /// does not decode is logged and skipped: the last good one stays.
    pub async fn watch(&self, out: watch::Sender<Option<Arc<GatewayState>>>) {
        let mut wait = Duration::from_millis(100);
        loop {
            match self.watch_once(&out).await {
                Ok(()) => wait = Duration::from_millis(100),
                Err(error) => {
                    warn!(%error, "snapshot stream ended; keeping the last snapshot and redialing")
                }
            }
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(MAX_BACKOFF);
        }
    }

    async fn watch_once(
        &self,
        out: &watch::Sender<Option<Arc<GatewayState>>>,
    ) -> Result<(), String> {
        let mut stream = self
            .client()
            .await?
            .watch(v1::WatchRequest {
                bootstrap_token: self.token_text.clone(),
                gateway_name: self.name.clone(),
            })
            .await
            .map_err(|s| format!("watch refused: {}", s.message()))?
            .into_inner();
        info!(control = %self.addr, "watching configuration snapshots");
        loop {
            match stream.message().await {
                Ok(Some(snapshot)) => self.take(&snapshot, out),
                Ok(None) => return Ok(()),
                Err(status) => return Err(status.message().to_string()),
            }
        }
    }

    /// Publishes a good snapshot; logs and skips a bad one.
    fn take(&self, snapshot: &v1::GatewaySnapshot, out: &watch::Sender<Option<Arc<GatewayState>>>) {
        if !self.learn_ca(snapshot) {
            warn!(
                version = snapshot.version,
                "ignoring a snapshot with bad CA pins"
            );
            return;
        }
        match GatewayState::from_proto(snapshot) {
            Ok(state) => {
                out.send_replace(Some(Arc::new(state)));
            }
            Err(problem) => warn!(%problem, version = snapshot.version, "ignoring a bad snapshot"),
        }
    }

    /// Takes the CA pins of a snapshot (which came over the pinned,
    /// token-authenticated stream); false when one is not a SHA-256.
    fn learn_ca(&self, snapshot: &v1::GatewaySnapshot) -> bool {
        let pins: Result<Vec<[u8; 32]>, _> = snapshot
            .control_ca_pins
            .iter()
            .map(|p| <[u8; 32]>::try_from(p.as_slice()))
            .collect();
        let Ok(pins) = pins else { return false };
        if !snapshot.signer_ca_pin.is_empty() && snapshot.signer_ca_pin.len() != 32 {
            return false;
        }
        *self
            .learned_pins
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = pins;
        self.signer_pin.send_if_modified(|p| {
            let changed = *p != snapshot.signer_ca_pin;
            if changed {
                p.clone_from(&snapshot.signer_ca_pin);
            }
            changed
        });
        true
    }

    /// Renews `cert` at two-thirds of its life, and at once when the
    /// control plane signs with another root than the one that issued it
    /// (CA rotation), forever, with a new key each time; open connections
    /// keep the old one.
    pub async fn keep_renewed(&self, cert: LiveCert, mut not_after: OffsetDateTime) {
        let mut signer = self.signer_pin.subscribe();
        loop {
            let now = OffsetDateTime::now_utc();
            let life: time::Duration = not_after - now;
            let two_thirds: time::Duration = life * 2 / 3;
            let wait = two_thirds.max(time::Duration::seconds(1));
            if !on_other_root(&cert, &signer.borrow_and_update()) {
                tokio::select! {
                    () = tokio::time::sleep(wait.unsigned_abs()) => {}
                    changed = signer.changed() => {
                        if changed.is_err() {
                            return;
                        }
                        continue;
                    }
                }
            } else {
                info!("the control plane signs with a new root; renewing the certificate now");
            }
            let issued = self.issue_until_ok().await;
            match cert.replace(issued.chain, issued.key) {
                Ok(()) => {
                    not_after = issued.not_after;
                    info!(%not_after, "gateway certificate renewed");
                }
                Err(error) => warn!(%error, "renewed certificate unusable; keeping the old one"),
            }
        }
    }

    /// Sends the status on the status stream forever: each change, and
    /// the current one every [`REPORT_EVERY`]; redials with backoff.
    pub async fn report(&self, status: watch::Receiver<v1::GatewayStatus>) {
        let mut wait = Duration::from_millis(100);
        // A control plane of an earlier release answers Unimplemented on
        // every redial: say so once per new error, not every 5 s.
        let mut last_error = String::new();
        loop {
            match self.report_once(status.clone()).await {
                Ok(()) => wait = Duration::from_millis(100),
                Err(error) if error == last_error => {
                    debug!(%error, "status stream ended again; redialing");
                }
                Err(error) => {
                    warn!(%error, "status stream ended; redialing");
                    last_error = error;
                }
            }
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(MAX_BACKOFF);
        }
    }

    async fn report_once(
        &self,
        mut status: watch::Receiver<v1::GatewayStatus>,
    ) -> Result<(), String> {
        let mut client = self.client().await?;
        let (tx, rx) = mpsc::channel(2);
        let feed = async {
            loop {
                let mut next = status.borrow_and_update().clone();
                next.bootstrap_token.clone_from(&self.token_text);
                next.gateway_name.clone_from(&self.name);
                if tx.send(next).await.is_err() {
                    return;
                }
                tokio::select! {
                    r = status.changed() => if r.is_err() { return },
                    () = tokio::time::sleep(REPORT_EVERY) => {}
                }
            }
        };
        let call = client.report_status(ReceiverStream::new(rx));
        tokio::select! {
            r = call => r.map(|_| ()).map_err(|s| format!("status stream refused: {}", s.message())),
            // The sampler stopped: this gateway is shutting down.
            () = feed => Ok(()),
        }
    }
}

/// Whether `cert`'s chain ends in another root than `signer` (a pin; empty
/// when the control plane did not say, as before CA rotation existed).
fn on_other_root(cert: &LiveCert, signer: &[u8]) -> bool {
    if signer.is_empty() {
        return false;
    }
    let current = cert.current();
    let issuer = current
        .cert
        .get(1..)
        .and_then(<[_]>::last)
        .and_then(|ca| identity::spki_sha256(ca).ok());
    issuer.is_none_or(|pin| pin.as_slice() != signer)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A leaf of a fresh CA as a LiveCert, and the CA's pin.
    fn leaf_of_new_ca() -> (LiveCert, [u8; 32]) {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca_params = rcgen::CertificateParams::new(vec![]).unwrap();
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca = ca_params.self_signed(&ca_key).unwrap();
        let issuer = rcgen::Issuer::from_ca_cert_der(ca.der(), ca_key).unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let leaf = rcgen::CertificateParams::new(vec!["gw".into()])
            .unwrap()
            .signed_by(&key, &issuer)
            .unwrap();
        let chain = vec![leaf.der().clone(), ca.der().clone()];
        let key = PrivateKeyDer::Pkcs8(key.serialize_der().into());
        let pin = identity::spki_sha256(ca.der()).unwrap();
        (LiveCert::new(chain, key).unwrap(), pin)
    }

    #[test]
    fn a_leaf_is_renewed_only_when_another_root_signs() {
        let (cert, pin) = leaf_of_new_ca();
        assert!(!on_other_root(&cert, &pin));
        assert!(on_other_root(&cert, &[7u8; 32]));
        // A control plane of an earlier release names no signer.
        assert!(!on_other_root(&cert, &[]));
    }

    #[test]
    fn pins_from_a_snapshot_are_learned_and_bad_ones_refused() {
        let token = BootstrapToken::generate([1u8; 32]).unwrap().encode();
        let link = ControlLink::new("127.0.0.1:1".into(), &token, "gw").unwrap();
        let mut signer = link.signer_pin.subscribe();
        let snapshot = v1::GatewaySnapshot {
            control_ca_pins: vec![vec![1u8; 32], vec![2u8; 32]],
            signer_ca_pin: vec![2u8; 32],
            ..Default::default()
        };
        assert!(link.learn_ca(&snapshot));
        assert_eq!(link.learned_pins.lock().unwrap().len(), 2);
        assert!(signer.has_changed().unwrap());
        assert_eq!(*signer.borrow_and_update(), vec![2u8; 32]);
        let bad = v1::GatewaySnapshot {
            control_ca_pins: vec![vec![1u8; 5]],
            ..Default::default()
        };
        assert!(!link.learn_ca(&bad));
        assert_eq!(link.learned_pins.lock().unwrap().len(), 2, "kept");
    }
}
