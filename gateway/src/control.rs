//! The gateway's link to its control plane (DESIGN.md, Gateway: Process):
//! dial `control.gatewayListen` over TLS, accepting only the CA pinned in
//! the bootstrap token, then (with the token's secret on every call) get a
//! certificate for a locally made key by CSR, and watch configuration
//! snapshots, and report this gateway's status (readiness, probes of peer
//! gateways) on a stream of its own. When the control plane is down the
//! last snapshot keeps serving and both streams redial with backoff.

use std::sync::Arc;
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
        })
    }

    async fn client(&self) -> Result<GatewayConfigClient<Channel>, String> {
        let verifier = PinnedServerVerifier::new(self.token.pin);
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
                Ok(Some(snapshot)) => match GatewayState::from_proto(&snapshot) {
                    Ok(state) => {
                        out.send_replace(Some(Arc::new(state)));
                    }
                    Err(problem) => {
                        warn!(%problem, version = snapshot.version, "ignoring a bad snapshot")
                    }
                },
                Ok(None) => return Ok(()),
                Err(status) => return Err(status.message().to_string()),
            }
        }
    }

    /// Renews `cert` at two-thirds of its life, forever, with a new key
    /// each time; open connections keep the old one.
    pub async fn keep_renewed(&self, cert: LiveCert, mut not_after: OffsetDateTime) {
        loop {
            let now = OffsetDateTime::now_utc();
            let life: time::Duration = not_after - now;
            let two_thirds: time::Duration = life * 2 / 3;
            let wait = two_thirds.max(time::Duration::seconds(1));
            tokio::time::sleep(wait.unsigned_abs()).await;
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
