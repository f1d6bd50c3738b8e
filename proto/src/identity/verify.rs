//! The per-peer rustls verifiers: [`PeerClientVerifier`] for servers,
//! [`PeerServerVerifier`] for dialers, and [`identify_peer`] for servers that
//! need the peer behind an already verified connection.
//!
//! Every check runs in the same order, so errors say the most useful thing:
//! 1. parse the leaf with x509-parser (malformed, no or bad SPIFFE ID);
//! 2. check its validity period against rustls' `now` (expired, with the date);
//! 3. find the peer: by the SPIFFE ID's trust domain (client certificates)
//!    or by the expected cluster name (server certificates);
//! 4. verify the chain with webpki against **only that peer's roots**, for
//!    the right extended key usage. This is what stops a peer from
//!    presenting a certificate for another peer's trust domain;
//! 5. check the path rule (server certificates).
//!
//! The TLS server name and the IP address play no part.

use std::fmt;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{WebPkiSupportedAlgorithms, verify_tls12_signature, verify_tls13_signature};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, SignatureScheme};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use time::OffsetDateTime;
use webpki::KeyUsage;

use super::bundle::PeerEntry;
use super::cert::{offset_to_unix, unix_to_offset};
use super::{IdentityError, PeerTrust, SharedTrust, SpiffeId, TrustBundle, inspect_cert};

/// Which SPIFFE ID paths a dialer accepts from the peer it dials.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum PathRule {
    /// Exactly this path, for example `/control`.
    Exact(String),
    /// Any path starting with this, for example `/gateway/`.
    Prefix(String),
    /// Any path in the peer's trust domain.
    Any,
}

impl PathRule {
    /// The peer's control plane: exactly `/control`.
    pub fn control() -> PathRule {
        PathRule::Exact("/control".to_owned())
    }

    /// Any of the peer's gateways: paths starting with `/gateway/`.
    pub fn any_gateway() -> PathRule {
        PathRule::Prefix("/gateway/".to_owned())
    }

    /// Whether `path` satisfies the rule.
    pub fn matches(&self, path: &str) -> bool {
        match self {
            PathRule::Exact(want) => path == want,
            PathRule::Prefix(prefix) => path.starts_with(prefix.as_str()),
            PathRule::Any => true,
        }
    }
}

impl fmt::Display for PathRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PathRule::Exact(p) => write!(f, "exactly {p:?}"),
            PathRule::Prefix(p) => write!(f, "a path starting with {p:?}"),
            PathRule::Any => f.write_str("any path"),
        }
    }
}

/// Client-certificate verifier for servers (peering port, gateway ingress).
///
/// A client certificate is accepted when its SPIFFE ID's trust domain
/// belongs to a peer in the shared bundle and its chain verifies against
/// that peer's roots with the `clientAuth` usage. It always asks for a
/// client certificate; `mandatory` decides whether a client without one
/// may finish the handshake (rustls then answers `certificate_required`).
#[derive(Debug)]
pub struct PeerClientVerifier {
    trust: SharedTrust,
    mandatory: bool,
    algs: WebPkiSupportedAlgorithms,
}

impl PeerClientVerifier {
    /// A verifier reading the live bundle `trust`.
    ///
    /// With `mandatory = false` (the control plane's peering port, which
    /// serves `Join` to clients without a certificate), every RPC that needs
    /// a peer must call [`identify_peer`] on the connection's certificate.
    pub fn new(trust: SharedTrust, mandatory: bool) -> Arc<Self> {
        Arc::new(PeerClientVerifier {
            trust,
            mandatory,
            algs: ring_algorithms(),
        })
    }
}

impl ClientCertVerifier for PeerClientVerifier {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        self.mandatory
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        // Empty: clients send the one certificate they have (RFC 8446
        // §4.2.4 makes `certificate_authorities` optional).
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let bundle = self.trust.snapshot();
        verify_client_chain(&bundle, end_entity, intermediates, now, &self.algs)?;
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(message, cert, dss, &self.algs)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.algs)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algs.supported_schemes()
    }
}

/// Server-certificate verifier for dialers: accepts only the certificate of
/// one expected peer cluster.
///
/// The certificate must chain to that peer's roots (`serverAuth` usage),
/// carry a SPIFFE ID in that peer's trust domain, and have a path the
/// [`PathRule`] accepts. The TLS server name is ignored.
#[derive(Debug)]
pub struct PeerServerVerifier {
    trust: SharedTrust,
    expected_cluster: String,
    path: PathRule,
    algs: WebPkiSupportedAlgorithms,
}

impl PeerServerVerifier {
    /// A verifier for dialing `expected_cluster`, reading the live bundle.
    /// The peer need not be in the bundle yet; until it is, handshakes fail
    /// with [`IdentityError::UnknownPeer`].
    pub fn new(trust: SharedTrust, expected_cluster: &str, path: PathRule) -> Arc<Self> {
        Arc::new(PeerServerVerifier {
            trust,
            expected_cluster: expected_cluster.to_owned(),
            path,
            algs: ring_algorithms(),
        })
    }

    fn check(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<SpiffeId, IdentityError> {
        let id = leaf_identity(end_entity, unix_to_offset(now))?;
        let bundle = self.trust.snapshot();
        let entry =
            bundle
                .entry(&self.expected_cluster)
                .ok_or_else(|| IdentityError::UnknownPeer {
                    cluster: self.expected_cluster.clone(),
                })?;
        if id.trust_domain() != entry.peer.trust_domain {
            return Err(IdentityError::WrongTrustDomain {
                expected: entry.peer.trust_domain.clone(),
                got: id.trust_domain().to_owned(),
            });
        }
        verify_chain(
            entry,
            end_entity,
            intermediates,
            now,
            KeyUsage::server_auth(),
            &self.algs,
        )?;
        // After the chain: a path error means a genuine certificate of the
        // peer, for the wrong role.
        if !self.path.matches(id.path()) {
            return Err(IdentityError::WrongPath {
                expected: self.path.to_string(),
                got: id.path().to_owned(),
            });
        }
        Ok(id)
    }
}

impl ServerCertVerifier for PeerServerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.check(end_entity, intermediates, now)?;
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(message, cert, dss, &self.algs)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.algs)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algs.supported_schemes()
    }
}

/// The peer and SPIFFE ID behind a client certificate that a
/// [`PeerClientVerifier`] accepted during the handshake (tonic hands
/// servers the peer certificates as DER; pass the first one).
///
/// The leaf is checked again against the bundle as it is **now**: its trust
/// domain must still belong to a peer, and it must still be signed directly
/// by one of that peer's current roots, so an RPC on an old connection (or
/// a resumed TLS session, which skips certificate verification) from a peer
/// that has left or whose root was dropped is refused. The validity period
/// is not enforced here, because connections outlive leaf certificates
/// (they are renewed without dropping connections); the handshake checked it.
///
/// # Errors
///
/// [`IdentityError::Malformed`], [`IdentityError::NoSpiffeId`],
/// [`IdentityError::UnknownTrustDomain`] or [`IdentityError::ChainInvalid`].
pub fn identify_peer(
    bundle: &TrustBundle,
    leaf_der: &[u8],
) -> Result<(PeerTrust, SpiffeId), IdentityError> {
    let info = inspect_cert(leaf_der)?;
    let id = info.spiffe_id.ok_or(IdentityError::NoSpiffeId)?;
    let entry = peer_of(bundle, &id)?;
    // Verify at a moment inside the leaf's validity period, nearest to now.
    let now = OffsetDateTime::now_utc();
    let at = if now < info.not_before {
        info.not_before
    } else if now > info.not_after {
        info.not_after
    } else {
        now
    };
    verify_chain(
        entry,
        &CertificateDer::from(leaf_der),
        &[],
        offset_to_unix(at),
        KeyUsage::client_auth(),
        &ring_algorithms(),
    )?;
    Ok((entry.peer.clone(), id))
}

/// The signature algorithms of the ring provider, for chains and handshakes.
pub(super) fn ring_algorithms() -> WebPkiSupportedAlgorithms {
    rustls::crypto::ring::default_provider().signature_verification_algorithms
}

/// Steps 1–4 for a client certificate: the peer is chosen by trust domain.
fn verify_client_chain(
    bundle: &TrustBundle,
    end_entity: &CertificateDer<'_>,
    intermediates: &[CertificateDer<'_>],
    now: UnixTime,
    algs: &WebPkiSupportedAlgorithms,
) -> Result<(), IdentityError> {
    let id = leaf_identity(end_entity, unix_to_offset(now))?;
    let entry = peer_of(bundle, &id)?;
    verify_chain(
        entry,
        end_entity,
        intermediates,
        now,
        KeyUsage::client_auth(),
        algs,
    )
}

fn peer_of<'b>(bundle: &'b TrustBundle, id: &SpiffeId) -> Result<&'b PeerEntry, IdentityError> {
    bundle
        .entry_by_trust_domain(id.trust_domain())
        .ok_or_else(|| IdentityError::UnknownTrustDomain {
            td: id.trust_domain().to_owned(),
        })
}

/// Steps 1–2: the leaf's SPIFFE ID, if it has exactly one and is valid now.
pub(super) fn leaf_identity(leaf: &[u8], now: OffsetDateTime) -> Result<SpiffeId, IdentityError> {
    let info = inspect_cert(leaf)?;
    super::check_validity(&info, now)?;
    info.spiffe_id.ok_or(IdentityError::NoSpiffeId)
}

/// Step 4: webpki path validation against one peer's roots only.
fn verify_chain(
    entry: &PeerEntry,
    end_entity: &CertificateDer<'_>,
    intermediates: &[CertificateDer<'_>],
    now: UnixTime,
    usage: KeyUsage,
    algs: &WebPkiSupportedAlgorithms,
) -> Result<(), IdentityError> {
    webpki_verify(&entry.anchors, end_entity, intermediates, now, usage, algs).map_err(|reason| {
        IdentityError::ChainInvalid {
            peer: entry.peer.cluster.clone(),
            reason,
        }
    })
}

/// `EndEntityCert::verify_for_usage` without revocation checking (leaves
/// are short-lived), with webpki's error in words.
pub(super) fn webpki_verify(
    anchors: &[rustls_pki_types::TrustAnchor<'_>],
    end_entity: &CertificateDer<'_>,
    intermediates: &[CertificateDer<'_>],
    now: UnixTime,
    usage: KeyUsage,
    algs: &WebPkiSupportedAlgorithms,
) -> Result<(), String> {
    let cert = webpki::EndEntityCert::try_from(end_entity)
        .map_err(|e| format!("leaf rejected by webpki: {e}"))?;
    cert.verify_for_usage(algs.all, anchors, intermediates, now, usage, None, None)
        .map(|_| ())
        .map_err(|e| describe_webpki(&e, usage))
}

fn describe_webpki(e: &webpki::Error, usage: KeyUsage) -> String {
    use webpki::Error as E;
    let what = match e {
        E::UnknownIssuer => "not signed by any of these roots",
        E::CaUsedAsEndEntity => "a CA certificate was presented as the leaf",
        E::InvalidSignatureForPublicKey => "a signature in the chain is invalid",
        E::CertExpired { .. } | E::CertNotValidYet { .. } => {
            "a certificate in the chain is outside its validity period"
        }
        #[allow(deprecated)] // webpki 0.103 still returns the old variant in places
        E::RequiredEkuNotFound | E::RequiredEkuNotFoundContext(_) => {
            let want = if usage == KeyUsage::server_auth() {
                "serverAuth"
            } else {
                "clientAuth"
            };
            return format!("its extended key usage does not include {want}");
        }
        _ => return e.to_string(),
    };
    format!("{what} ({e})")
}
