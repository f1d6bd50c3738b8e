//! Test PKI for the transport tests, made with rcgen at test time: one CA,
//! a server leaf for [`SERVER_NAME`] and a client leaf, and the rustls
//! configs of both sides (TLS 1.3, mTLS, ALPN `h2`).

use std::sync::Arc;

use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
use rustls::RootCertStore;
use rustls::server::WebPkiClientVerifier;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};

use super::ALPN_H2;

/// The DNS name in the server certificate.
pub(super) const SERVER_NAME: &str = "gw.east.fedmesh.test";

/// A leaf and its key.
struct Leaf {
    cert: CertificateDer<'static>,
    key: Vec<u8>,
}

impl Leaf {
    fn key(&self) -> PrivateKeyDer<'static> {
        PrivatePkcs8KeyDer::from(self.key.clone()).into()
    }
}

/// A CA with one server and one client leaf.
pub(super) struct Pki {
    ca: CertificateDer<'static>,
    server: Leaf,
    client: Leaf,
}

impl Pki {
    /// Fresh keys and certificates.
    pub(super) fn new() -> Pki {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let ca_key = KeyPair::generate().expect("test CA key");
        let mut params = CertificateParams::new(Vec::new()).expect("test CA params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca = params.self_signed(&ca_key).expect("self-signed test CA");
        let issuer = Issuer::new(params, ca_key);
        Pki {
            ca: ca.der().clone(),
            server: leaf(&issuer, SERVER_NAME),
            client: leaf(&issuer, "gw.west.fedmesh.test"),
        }
    }

    fn roots(&self) -> Arc<RootCertStore> {
        let mut roots = RootCertStore::empty();
        roots.add(self.ca.clone()).expect("test CA is a valid root");
        Arc::new(roots)
    }

    /// The ingress's config: TLS 1.3, client certificates required.
    pub(super) fn server_config(&self) -> Arc<rustls::ServerConfig> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let verifier = WebPkiClientVerifier::builder_with_provider(self.roots(), provider.clone())
            .build()
            .expect("client verifier");
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])
            .expect("TLS 1.3 with ring")
            .with_client_cert_verifier(verifier)
            .with_single_cert(vec![self.server.cert.clone()], self.server.key())
            .expect("server leaf");
        config.alpn_protocols = vec![ALPN_H2.to_vec()];
        Arc::new(config)
    }

    /// The egress's config offering `alpn`.
    pub(super) fn client_config(&self, alpn: &[&[u8]]) -> Arc<rustls::ClientConfig> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])
            .expect("TLS 1.3 with ring")
            .with_root_certificates(self.roots())
            .with_client_auth_cert(vec![self.client.cert.clone()], self.client.key())
            .expect("client leaf");
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Arc::new(config)
    }
}

/// The server name the pool verifies.
pub(super) fn server_name() -> ServerName<'static> {
    ServerName::try_from(SERVER_NAME).expect("valid DNS name")
}

fn leaf(issuer: &Issuer<'static, KeyPair>, name: &str) -> Leaf {
    let key = KeyPair::generate().expect("test leaf key");
    let params = CertificateParams::new(vec![name.to_owned()]).expect("test leaf params");
    let cert = params.signed_by(&key, issuer).expect("signed test leaf");
    Leaf {
        cert: cert.der().clone(),
        key: key.serialize_der(),
    }
}
