//! Test PKI made with rcgen at test time (no checked-in keys): cluster CAs
//! and leaves with SPIFFE URI SANs.

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, PublicKeyData, SanType,
};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use time::{Duration, OffsetDateTime};

use super::{LiveCert, PeerTrust};

/// Installs ring as the process provider (idempotent), as binaries do.
pub(super) fn init() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// A cluster CA: a self-signed root that signs leaves directly.
pub(super) struct Ca {
    pub(super) cluster: String,
    pub(super) td: String,
    pub(super) cert: CertificateDer<'static>,
    /// DER SubjectPublicKeyInfo of the CA key, as rcgen encodes it.
    pub(super) spki: Vec<u8>,
    issuer: Issuer<'static, KeyPair>,
}

/// A leaf certificate and its key.
pub(super) struct Leaf {
    pub(super) cert: CertificateDer<'static>,
    pub(super) ca: CertificateDer<'static>,
    key_der: Vec<u8>,
}

/// What to put in a leaf.
pub(super) struct LeafSpec {
    pub(super) cn: String,
    pub(super) uris: Vec<String>,
    pub(super) not_before: OffsetDateTime,
    pub(super) not_after: OffsetDateTime,
    pub(super) eku: Vec<ExtendedKeyUsagePurpose>,
}

impl LeafSpec {
    /// Valid from an hour ago for a day, serverAuth + clientAuth.
    pub(super) fn new(cn: &str, uris: &[&str]) -> LeafSpec {
        let now = OffsetDateTime::now_utc();
        LeafSpec {
            cn: cn.to_owned(),
            uris: uris.iter().map(|u| (*u).to_owned()).collect(),
            not_before: now - Duration::hours(1),
            not_after: now + Duration::days(1),
            eku: vec![
                ExtendedKeyUsagePurpose::ServerAuth,
                ExtendedKeyUsagePurpose::ClientAuth,
            ],
        }
    }
}

impl Ca {
    /// CA for `cluster` with trust domain `<cluster>.fedmesh`, CN `<cluster> CA`.
    pub(super) fn new(cluster: &str) -> Ca {
        Ca::with_cn(cluster, &format!("{cluster} CA"))
    }

    /// A CA with a chosen common name (rotations reuse the name).
    pub(super) fn with_cn(cluster: &str, cn: &str) -> Ca {
        let key = KeyPair::generate().expect("test key generation");
        let mut params = CertificateParams::default();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params.distinguished_name.push(DnType::CommonName, cn);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let cert = params.self_signed(&key).expect("self-signed test CA");
        Ca {
            cluster: cluster.to_owned(),
            td: format!("{cluster}.fedmesh"),
            cert: cert.der().clone(),
            spki: key.subject_public_key_info(),
            issuer: Issuer::new(params, key),
        }
    }

    /// This CA as a trust-bundle peer with itself as the only root.
    pub(super) fn peer(&self) -> PeerTrust {
        PeerTrust {
            cluster: self.cluster.clone(),
            trust_domain: self.td.clone(),
            roots: vec![self.cert.clone()],
        }
    }

    /// The control plane leaf, `spiffe://<td>/control`.
    pub(super) fn control(&self) -> Leaf {
        let uri = format!("spiffe://{}/control", self.td);
        self.leaf(LeafSpec::new(&format!("{} control", self.cluster), &[&uri]))
    }

    /// A gateway leaf, `spiffe://<td>/gateway/<name>`.
    pub(super) fn gateway(&self, name: &str) -> Leaf {
        let uri = format!("spiffe://{}/gateway/{name}", self.td);
        self.leaf(LeafSpec::new(&format!("{} {name}", self.cluster), &[&uri]))
    }

    /// A control plane leaf that expired a day ago (CN `old`).
    pub(super) fn expired_control(&self) -> Leaf {
        let now = OffsetDateTime::now_utc();
        let mut spec = LeafSpec::new("old", &[&format!("spiffe://{}/control", self.td)]);
        spec.not_before = now - Duration::days(2);
        spec.not_after = now - Duration::days(1);
        self.leaf(spec)
    }

    /// A leaf with any URI SANs.
    pub(super) fn leaf_with_uris(&self, uris: &[&str]) -> Leaf {
        self.leaf(LeafSpec::new("custom leaf", uris))
    }

    /// A leaf as specified, signed by this CA.
    pub(super) fn leaf(&self, spec: LeafSpec) -> Leaf {
        let key = KeyPair::generate().expect("test key generation");
        let mut params = CertificateParams::default();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(DnType::CommonName, spec.cn.as_str());
        params.not_before = spec.not_before;
        params.not_after = spec.not_after;
        params.subject_alt_names = spec
            .uris
            .iter()
            .map(|u| SanType::URI(u.as_str().try_into().expect("ASCII test URI")))
            .collect();
        params.extended_key_usages = spec.eku;
        params.use_authority_key_identifier_extension = true;
        let cert = params
            .signed_by(&key, &self.issuer)
            .expect("signed test leaf");
        Leaf {
            cert: cert.der().clone(),
            ca: self.cert.clone(),
            key_der: key.serialize_der(),
        }
    }
}

impl Leaf {
    /// The leaf's private key (PKCS#8).
    pub(super) fn key(&self) -> PrivateKeyDer<'static> {
        PrivatePkcs8KeyDer::from(self.key_der.clone()).into()
    }

    /// `[leaf, ca]`, as servers send it.
    pub(super) fn chain(&self) -> Vec<CertificateDer<'static>> {
        vec![self.cert.clone(), self.ca.clone()]
    }

    /// A [`LiveCert`] presenting `[leaf, ca]`.
    pub(super) fn live(&self) -> LiveCert {
        LiveCert::new(self.chain(), self.key()).expect("test leaf loads")
    }
}
