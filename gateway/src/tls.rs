//! TLS between gateways: this gateway's certificate and the peers' roots
//! (DESIGN.md, Identity and trust). Dialing a cluster's gateways requires
//! their certificate to be a gateway identity of that cluster's trust
//! domain under that cluster's root; the ingress requires a client
//! certificate from a trusted peer. One client config per cluster is
//! kept, so TLS sessions resume.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use fedmesh_proto::identity::{
    self, IdentityError, LiveCert, PathRule, PeerClientVerifier, PeerServerVerifier, SharedTrust,
};

/// The TLS settings of one gateway.
#[derive(Debug, Clone)]
pub struct GatewayTls {
    cert: LiveCert,
    trust: SharedTrust,
    alpn: Vec<Vec<u8>>,
    clients: Arc<Mutex<HashMap<String, Arc<rustls::ClientConfig>>>>,
}

impl GatewayTls {
    /// TLS with `cert`, trusting `trust`, offering `alpn` (best first).
    pub fn new(cert: LiveCert, trust: SharedTrust, alpn: &[&[u8]]) -> Self {
        Self {
            cert,
            trust,
            alpn: alpn.iter().map(|a| a.to_vec()).collect(),
            clients: Arc::default(),
        }
    }

    /// The peer roots, as they are now.
    pub fn trust(&self) -> &SharedTrust {
        &self.trust
    }

    /// TLS for dialing `cluster`'s gateways.
    ///
    /// # Errors
    /// When rustls refuses the configuration.
    pub fn client(&self, cluster: &str) -> Result<Arc<rustls::ClientConfig>, IdentityError> {
        let mut cache = self.clients.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(c) = cache.get(cluster) {
            return Ok(c.clone());
        }
        let verifier = PeerServerVerifier::new(
            self.trust.clone(),
            cluster,
            PathRule::Prefix("/gateway/".into()),
        );
        let alpn: Vec<&[u8]> = self.alpn.iter().map(Vec::as_slice).collect();
        let tls = Arc::new(identity::client_config(Some(&self.cert), verifier, &alpn)?);
        cache.insert(cluster.to_string(), tls.clone());
        Ok(tls)
    }

    /// TLS for the ingress: a peer gateway's client certificate required.
    ///
    /// # Errors
    /// When rustls refuses the configuration.
    pub fn server(&self) -> Result<Arc<rustls::ServerConfig>, IdentityError> {
        let verifier = PeerClientVerifier::new(self.trust.clone(), true);
        let alpn: Vec<&[u8]> = self.alpn.iter().map(Vec::as_slice).collect();
        identity::server_config(&self.cert, verifier, &alpn).map(Arc::new)
    }
}
