//! [`PinnedServerVerifier`]: trust on first use, anchored by a join token.
//!
//! `fedctl join` knows nothing about the issuing cluster but the SHA-256 of
//! its CA's public key (the pin in the token). Before sending the token's
//! secret it must be sure it talks to that cluster, so the server's chain
//! must end in a CA with that key, and the leaf must chain to it.

use std::sync::{Arc, Mutex, PoisonError};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{WebPkiSupportedAlgorithms, verify_tls12_signature, verify_tls13_signature};
use rustls::{DigitallySignedStruct, SignatureScheme};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use webpki::KeyUsage;

use super::cert::{inspect_basic, unix_to_offset};
use super::error::hex;
use super::verify::{ring_algorithms, webpki_verify};
use super::{IdentityError, check_validity, spki_sha256};

/// Server-certificate verifier for `fedctl join`: accepts the server only if
/// the last certificate of its chain is a CA whose public key matches the
/// pin, and the leaf chains to that CA (`serverAuth` usage) and is valid now.
///
/// The server must therefore send `[leaf, ca]`. The TLS server name is
/// ignored. After a successful handshake, [`PinnedServerVerifier::accepted_ca`]
/// gives the CA certificate, to store as the new peer's root.
#[derive(Debug)]
pub struct PinnedServerVerifier {
    /// Any of these; never empty.
    pins: Vec<[u8; 32]>,
    accepted: Mutex<Option<CertificateDer<'static>>>,
    algs: WebPkiSupportedAlgorithms,
}

impl PinnedServerVerifier {
    /// A verifier for the CA whose [`spki_sha256`] is `pin`.
    pub fn new(pin: [u8; 32]) -> Arc<Self> {
        Self::any_of(pin, &[])
    }

    /// A verifier for a CA whose [`spki_sha256`] is `pin` or one of `more`:
    /// during a CA rotation the server's chain may end in either root
    /// (a gateway learns the second pin from its authenticated stream).
    pub fn any_of(pin: [u8; 32], more: &[[u8; 32]]) -> Arc<Self> {
        let mut pins = vec![pin];
        pins.extend(more.iter().filter(|p| **p != pin));
        Arc::new(PinnedServerVerifier {
            pins,
            accepted: Mutex::new(None),
            algs: ring_algorithms(),
        })
    }

    /// The CA certificate of the last accepted handshake, if any.
    pub fn accepted_ca(&self) -> Option<CertificateDer<'static>> {
        // Only ever holds a complete value; poisoning changes nothing.
        self.accepted
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn check(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<CertificateDer<'static>, IdentityError> {
        let Some((ca, between)) = intermediates.split_last() else {
            // A lone leaf cannot be its own CA: webpki refuses CA
            // certificates as end entities.
            let leaf = inspect_basic(end_entity, "server certificate")?;
            return Err(if leaf.is_ca {
                IdentityError::ChainInvalid {
                    peer: "the pinned CA".to_owned(),
                    reason: "the server sent only a CA certificate; it must send [leaf, ca]"
                        .to_owned(),
                }
            } else {
                IdentityError::NotCa
            });
        };
        let ca_info = inspect_basic(ca, "CA certificate")?;
        if !ca_info.is_ca {
            return Err(IdentityError::NotCa);
        }
        let got = spki_sha256(ca)?;
        if !self.pins.contains(&got) {
            return Err(IdentityError::PinMismatch {
                expected_hex: self
                    .pins
                    .iter()
                    .map(|p| hex(p))
                    .collect::<Vec<_>>()
                    .join(" or "),
                got_hex: hex(&got),
            });
        }
        let now_dt = unix_to_offset(now);
        // webpki does not check a trust anchor's own validity period.
        check_validity(&ca_info, now_dt)?;
        check_validity(&inspect_basic(end_entity, "server certificate")?, now_dt)?;
        let anchor =
            webpki::anchor_from_trusted_cert(ca).map_err(|e| IdentityError::Malformed {
                what: "CA certificate".to_owned(),
                reason: format!("not usable as a trust anchor: {e}"),
            })?;
        webpki_verify(
            &[anchor],
            end_entity,
            between,
            now,
            KeyUsage::server_auth(),
            &self.algs,
        )
        .map_err(|reason| IdentityError::ChainInvalid {
            peer: "the pinned CA".to_owned(),
            reason,
        })?;
        Ok(ca.clone().into_owned())
    }
}

impl ServerCertVerifier for PinnedServerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let ca = self.check(end_entity, intermediates, now)?;
        *self.accepted.lock().unwrap_or_else(PoisonError::into_inner) = Some(ca);
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
