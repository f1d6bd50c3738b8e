//! The handles the peering tasks share (session, join, leave, dialer and
//! the peering server), built once by the daemon, and the TLS each side of
//! a peering speaks. A task takes these, not the whole control plane, so
//! it can be driven directly in tests.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use fedmesh_proto::identity::{
    self, IdentityError, LiveCert, PathRule, PeerClientVerifier, PeerServerVerifier,
    PinnedServerVerifier, SharedTrust, inspect_cert,
};
use fedmesh_proto::v1;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::{DigitallySignedStruct, SignatureScheme};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use tokio::sync::{mpsc, watch};

use super::PeerSet;
use super::sync::AckedViews;
use crate::ca::rotation::CaRotation;
use crate::exports::ExportState;
use crate::store::Store;
use crate::table::TableEvent;

/// ALPN for gRPC over TLS (RFC 7301; HTTP/2 is `h2`, RFC 9113 §3.2).
pub const ALPN_H2: &[u8] = b"h2";

/// Connect timeout of peering and join dials.
pub const DIAL_TIMEOUT: Duration = Duration::from_secs(5);

/// How often a session sends a heartbeat, and how long a silent peer is
/// tolerated (`control.heartbeatInterval`, `control.peerDeadAfter`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    /// Heartbeat interval.
    pub heartbeat: Duration,
    /// A peer silent this long is dead.
    pub dead_after: Duration,
}

/// What every peering task reads and writes.
#[derive(Debug, Clone)]
pub struct PeeringHandles {
    /// This cluster, as sent in Hello and in answers to Join.
    pub me: Arc<v1::ClusterInfo>,
    /// Heartbeats and the dead-peer deadline.
    pub timing: Timing,
    /// Every peer and its link state.
    pub peers: Arc<PeerSet>,
    /// Where peers, imports and sync positions persist.
    pub store: Arc<Store>,
    /// This cluster's exports, sent to each peer.
    pub exports: watch::Receiver<Arc<ExportState>>,
    /// The export view each peer acked (resume after a reconnect).
    pub acked: Arc<AckedViews>,
    /// Persisted import changes go to the service table here.
    pub table: mpsc::Sender<TableEvent>,
    /// This cluster's published CA roots (two during a rotation), and the
    /// peers' acknowledgements of them.
    pub ca: Arc<CaRotation>,
}

impl PeeringHandles {
    /// This cluster's `ClusterInfo` with the roots published now.
    pub fn me_now(&self) -> v1::ClusterInfo {
        let mut me = (*self.me).clone();
        me.ca_roots_pem.clone_from(&self.ca.view().roots_pem);
        me
    }
}

/// What the dialer and `fedctl join` need beyond the shared handles: the
/// control leaf they present.
#[derive(Debug, Clone)]
pub struct Dialer {
    /// The shared peering handles.
    pub peering: PeeringHandles,
    /// This control plane's leaf (`spiffe://<td>/control`), renewed in place.
    pub cert: LiveCert,
    /// Connect timeout.
    pub timeout: Duration,
}

/// TLS for the peering server: our control leaf; client certificates
/// optional at the TLS layer (Join is served without one) and checked per
/// RPC.
///
/// # Errors
/// When rustls refuses the configuration.
pub fn server_tls(
    cert: &LiveCert,
    trust: &SharedTrust,
) -> Result<Arc<rustls::ServerConfig>, IdentityError> {
    let verifier = PeerClientVerifier::new(trust.clone(), false);
    identity::server_config(cert, verifier, &[ALPN_H2]).map(Arc::new)
}

/// TLS for dialing `peer`'s control plane: our leaf as client certificate;
/// the server must be `peer`'s control identity.
///
/// # Errors
/// When rustls refuses the configuration.
pub fn client_tls(
    cert: &LiveCert,
    trust: &SharedTrust,
    peer: &str,
) -> Result<Arc<rustls::ClientConfig>, IdentityError> {
    let verifier = PeerServerVerifier::new(trust.clone(), peer, PathRule::Exact("/control".into()));
    identity::client_config(Some(cert), verifier, &[ALPN_H2]).map(Arc::new)
}

/// TLS for `fedctl join`: no client certificate; the server must chain to
/// the CA pinned in the token. The returned verifier tells, after the
/// handshake, which trust domain the server's leaf names, so the joiner can
/// refuse a clash before it sends the secret (and so before the issuer
/// stores anything).
///
/// # Errors
/// When rustls refuses the configuration.
pub fn join_tls(
    pin: [u8; 32],
) -> Result<(Arc<rustls::ClientConfig>, Arc<JoinVerifier>), IdentityError> {
    let verifier = Arc::new(JoinVerifier {
        pinned: PinnedServerVerifier::new(pin),
        trust_domain: Mutex::new(None),
    });
    let config = identity::client_config(None, verifier.clone(), &[ALPN_H2])?;
    Ok((Arc::new(config), verifier))
}

/// [`PinnedServerVerifier`], remembering the SPIFFE trust domain of the
/// server leaf it accepted.
#[derive(Debug)]
pub struct JoinVerifier {
    pinned: Arc<PinnedServerVerifier>,
    trust_domain: Mutex<Option<String>>,
}

impl JoinVerifier {
    /// The trust domain in the accepted server leaf's SPIFFE ID, once a
    /// handshake succeeded (`None` when the leaf has no SPIFFE ID).
    pub fn server_trust_domain(&self) -> Option<String> {
        // Only ever holds a complete value; poisoning changes nothing.
        self.trust_domain
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

impl ServerCertVerifier for JoinVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let verified = self.pinned.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        )?;
        let td = inspect_cert(end_entity)
            .ok()
            .and_then(|info| info.spiffe_id)
            .map(|id| id.trust_domain().to_string());
        *self
            .trust_domain
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = td;
        Ok(verified)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.pinned.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.pinned.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.pinned.supported_verify_schemes()
    }
}
