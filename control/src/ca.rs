//! The cluster's certificate authority: generated at first start (and kept in
//! the state store) or loaded from the configured PEM files, it signs the
//! control plane's own leaf and gateways' CSRs.
//!
//! Leaves are short-lived (default 24 h) and renewed at two-thirds of their
//! life ([`renewal_time`]). The CA's private key never leaves this process;
//! a gateway's key never leaves the gateway (it sends a CSR).

use std::time::Duration;

use fedmesh_proto::identity::{self, SpiffeId};
use rcgen::{
    BasicConstraints, CertificateParams, CertificateSigningRequestParams, DistinguishedName,
    DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose, PublicKeyData,
    SanType, SerialNumber,
};
use ring::rand::SecureRandom;
use rustls_pki_types::{CertificateDer, CertificateSigningRequestDer, PrivateKeyDer};
use time::OffsetDateTime;

pub use crate::model::is_dns_label;

pub mod rotation;

/// How long a generated CA is valid.
const CA_LIFETIME: Duration = Duration::from_secs(10 * 365 * 24 * 3600);
/// Leaves start this much in the past, so peers with a slow clock accept them.
const CLOCK_SKEW: Duration = Duration::from_secs(5 * 60);
/// Default lifetime of leaf certificates (DESIGN.md, Identity and trust).
pub const LEAF_LIFETIME: Duration = Duration::from_secs(24 * 3600);

/// Errors of the CA.
#[derive(Debug, thiserror::Error)]
pub enum CaError {
    /// rcgen could not build or sign a certificate.
    #[error("cannot {action}: {source}")]
    Rcgen {
        /// What was being done.
        action: &'static str,
        /// The rcgen error.
        #[source]
        source: rcgen::Error,
    },
    /// The configured or stored CA material is unusable.
    #[error("CA {what} is invalid: {reason}")]
    Invalid {
        /// Which part (certificate, key).
        what: &'static str,
        /// Why it was refused.
        reason: String,
    },
    /// A gateway name that cannot be part of a SPIFFE ID.
    #[error("gateway name {0:?} is not a DNS label (lowercase letters, digits and '-')")]
    BadGatewayName(String),
}

/// A certificate issued by the cluster CA: leaf first, then the CA.
#[derive(Debug)]
pub struct IssuedLeaf {
    /// `[leaf, ca]`, DER.
    pub chain: Vec<CertificateDer<'static>>,
    /// The same chain as PEM.
    pub chain_pem: String,
    /// The leaf's private key, when the CA generated it (the control plane's
    /// own leaf); `None` for a signed CSR.
    pub key: Option<PrivateKeyDer<'static>>,
    /// End of the leaf's validity.
    pub not_after: OffsetDateTime,
}

/// The cluster's CA.
pub struct ClusterCa {
    trust_domain: String,
    cert_der: CertificateDer<'static>,
    cert_pem: String,
    key_pem: String,
    issuer: Issuer<'static, KeyPair>,
    not_after: OffsetDateTime,
}

impl std::fmt::Debug for ClusterCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterCa")
            .field("trust_domain", &self.trust_domain)
            .field("not_after", &self.not_after)
            .finish_non_exhaustive()
    }
}

impl ClusterCa {
    /// Generates a new CA (ECDSA P-256, valid 10 years) for this cluster.
    ///
    /// # Errors
    /// When key generation or signing fails.
    pub fn generate(cluster: &str, trust_domain: &str) -> Result<Self, CaError> {
        Self::generate_named(&format!("fedmesh {cluster} root CA"), trust_domain)
    }

    /// Generates a new CA named `common_name`. A rotation's new root gets a
    /// name of its own, so that the two roots published together are told
    /// apart by subject as well as by key.
    ///
    /// # Errors
    /// When key generation or signing fails.
    pub fn generate_named(common_name: &str, trust_domain: &str) -> Result<Self, CaError> {
        let key = KeyPair::generate().map_err(rcgen_err("generate the CA key"))?;
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::OrganizationName, "fedmesh");
        dn.push(DnType::CommonName, common_name);
        params.distinguished_name = dn;
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let now = OffsetDateTime::now_utc();
        params.not_before = now - CLOCK_SKEW;
        params.not_after = now + CA_LIFETIME;
        params.serial_number = Some(random_serial());
        let cert = params
            .self_signed(&key)
            .map_err(rcgen_err("self-sign the CA"))?;
        Self::from_pem(&cert.pem(), &key.serialize_pem(), trust_domain)
    }

    /// Loads a CA from PEM (from the state store, or `ca.certFile` and
    /// `ca.keyFile`), checking that it is a CA and that the key matches.
    ///
    /// # Errors
    /// When the PEM does not parse, the certificate is not a CA, is expired,
    /// or the key is not the certificate's.
    pub fn from_pem(cert_pem: &str, key_pem: &str, trust_domain: &str) -> Result<Self, CaError> {
        use rustls_pki_types::pem::PemObject;
        let cert_der =
            CertificateDer::from_pem_slice(cert_pem.as_bytes()).map_err(|e| CaError::Invalid {
                what: "certificate",
                reason: format!("not a PEM certificate: {e}"),
            })?;
        let info = identity::inspect_cert(&cert_der).map_err(|e| CaError::Invalid {
            what: "certificate",
            reason: e.to_string(),
        })?;
        if !info.is_ca {
            return Err(CaError::Invalid {
                what: "certificate",
                reason: format!(
                    "{} is not a CA (basicConstraints cA is not set)",
                    info.subject
                ),
            });
        }
        identity::check_validity(&info, OffsetDateTime::now_utc()).map_err(|e| {
            CaError::Invalid {
                what: "certificate",
                reason: e.to_string(),
            }
        })?;
        let key = KeyPair::from_pem(key_pem).map_err(|e| CaError::Invalid {
            what: "key",
            reason: format!("not a PEM private key: {e}"),
        })?;
        let cert_spki = identity::spki_sha256(&cert_der).map_err(|e| CaError::Invalid {
            what: "certificate",
            reason: e.to_string(),
        })?;
        let key_spki = ring::digest::digest(&ring::digest::SHA256, &key.subject_public_key_info());
        if key_spki.as_ref() != cert_spki {
            return Err(CaError::Invalid {
                what: "key",
                reason: "the key does not belong to the CA certificate".into(),
            });
        }
        let issuer = Issuer::from_ca_cert_der(&cert_der, key)
            .map_err(rcgen_err("load the CA certificate"))?;
        Ok(Self {
            trust_domain: trust_domain.to_string(),
            cert_der: cert_der.into_owned(),
            cert_pem: cert_pem.to_string(),
            key_pem: key_pem.to_string(),
            issuer,
            not_after: info.not_after,
        })
    }

    /// The CA certificate (DER).
    pub fn cert_der(&self) -> &CertificateDer<'static> {
        &self.cert_der
    }

    /// The CA certificate (PEM).
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The CA private key (PEM), for the state store.
    pub fn key_pem(&self) -> &str {
        &self.key_pem
    }

    /// End of the CA's validity.
    pub fn not_after(&self) -> OffsetDateTime {
        self.not_after
    }

    /// The trust domain this CA issues identities in.
    pub fn trust_domain(&self) -> &str {
        &self.trust_domain
    }

    /// SHA-256 of the CA's public key: the pin carried in join tokens.
    pub fn pin(&self) -> [u8; 32] {
        let digest = ring::digest::digest(
            &ring::digest::SHA256,
            &self.issuer.key().subject_public_key_info(),
        );
        let mut pin = [0u8; 32];
        pin.copy_from_slice(digest.as_ref());
        pin
    }

    /// Issues the control plane's own leaf (`spiffe://<td>/control`), with a
    /// key generated here, for both TLS server and client use.
    ///
    /// # Errors
    /// When key generation or signing fails.
    pub fn issue_control_leaf(&self, lifetime: Duration) -> Result<IssuedLeaf, CaError> {
        let key = KeyPair::generate().map_err(rcgen_err("generate the control key"))?;
        let id = SpiffeId::control(&self.trust_domain);
        let params = self.leaf_params(&id, "control", lifetime)?;
        let cert = params
            .signed_by(&key, &self.issuer)
            .map_err(rcgen_err("sign the control certificate"))?;
        let key_der = PrivateKeyDer::Pkcs8(key.serialize_der().into());
        Ok(self.issued(cert.der().clone(), Some(key_der), params.not_after))
    }

    /// Signs a gateway's CSR for `spiffe://<td>/gateway/<name>`. Whatever names
    /// the CSR asks for are ignored: the identity is set by the CA.
    ///
    /// # Errors
    /// When the name is not a DNS label, the CSR does not parse or its
    /// signature is wrong, or signing fails.
    pub fn sign_gateway_csr(
        &self,
        gateway_name: &str,
        csr_der: &[u8],
        lifetime: Duration,
    ) -> Result<IssuedLeaf, CaError> {
        if !is_dns_label(gateway_name) {
            return Err(CaError::BadGatewayName(gateway_name.to_string()));
        }
        let csr_der = CertificateSigningRequestDer::from(csr_der);
        let mut csr = CertificateSigningRequestParams::from_der(&csr_der)
            .map_err(rcgen_err("read the certificate signing request"))?;
        let id = SpiffeId::gateway(&self.trust_domain, gateway_name);
        csr.params = self.leaf_params(&id, gateway_name, lifetime)?;
        let cert = csr
            .signed_by(&self.issuer)
            .map_err(rcgen_err("sign the gateway certificate"))?;
        Ok(self.issued(cert.der().clone(), None, csr.params.not_after))
    }

    fn leaf_params(
        &self,
        id: &SpiffeId,
        common_name: &str,
        lifetime: Duration,
    ) -> Result<CertificateParams, CaError> {
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::OrganizationName, "fedmesh");
        dn.push(DnType::CommonName, common_name);
        params.distinguished_name = dn;
        let uri = rcgen::string::Ia5String::try_from(id.to_string())
            .map_err(rcgen_err("encode the SPIFFE ID"))?;
        params.subject_alt_names = vec![SanType::URI(uri)];
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        let now = OffsetDateTime::now_utc();
        // Backdate for slow peer clocks, but never by much of a short life.
        params.not_before = now - CLOCK_SKEW.min(lifetime / 10);
        // A leaf never outlives its CA.
        params.not_after = (now + lifetime).min(self.not_after);
        params.serial_number = Some(random_serial());
        params.use_authority_key_identifier_extension = true;
        Ok(params)
    }

    fn issued(
        &self,
        leaf: CertificateDer<'static>,
        key: Option<PrivateKeyDer<'static>>,
        not_after: OffsetDateTime,
    ) -> IssuedLeaf {
        let chain = vec![leaf, self.cert_der.clone()];
        let chain_pem = chain.iter().map(|c| pem_encode("CERTIFICATE", c)).collect();
        IssuedLeaf {
            chain,
            chain_pem,
            key,
            not_after,
        }
    }
}

/// When a leaf valid from `not_before` to `not_after` should be renewed:
/// at two-thirds of its life.
pub fn renewal_time(not_before: OffsetDateTime, not_after: OffsetDateTime) -> OffsetDateTime {
    not_before + (not_after - not_before) * 2 / 3
}

/// Encodes DER as one PEM block.
pub fn pem_encode(label: &str, der: &[u8]) -> String {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).unwrap_or_default());
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

fn random_serial() -> SerialNumber {
    let mut bytes = [0u8; 16];
    // SystemRandom only fails when the OS has no entropy source at all, in
    // which case a time-based serial is still unique enough for one CA.
    if ring::rand::SystemRandom::new().fill(&mut bytes).is_err() {
        let nanos = OffsetDateTime::now_utc().unix_timestamp_nanos();
        bytes.copy_from_slice(&nanos.to_be_bytes());
    }
    bytes[0] &= 0x7f; // positive INTEGER
    SerialNumber::from_slice(&bytes)
}

fn rcgen_err(action: &'static str) -> impl Fn(rcgen::Error) -> CaError {
    move |source| CaError::Rcgen { action, source }
}

#[cfg(test)]
mod tests;
