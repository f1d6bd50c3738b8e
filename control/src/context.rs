//! The control plane's shared state, built once by `fedctl run` and handed
//! (as `Arc<Control>`) to the peering, admin and gateway servers.

use std::sync::Arc;
use std::time::Duration;

use fedmesh_proto::config::Config;
use fedmesh_proto::identity::{
    self, LiveCert, PathRule, PeerClientVerifier, PeerServerVerifier, PinnedServerVerifier,
};
use fedmesh_proto::v1;

use tokio::sync::{mpsc, watch};

use crate::ca::ClusterCa;
use crate::exports::ExportState;
use crate::model::LocalSnapshot;
use crate::model::Locality;
use crate::peering::PeerSet;
use crate::peering::sync::AckedViews;
use crate::store::Store;
use crate::table::{TableEvent, TableSnapshot};
use fedmesh_proto::token::BootstrapToken;

/// ALPN for gRPC over TLS.
pub const ALPN_H2: &[u8] = b"h2";

/// Everything the control plane's tasks share.
#[derive(Debug)]
pub struct Control {
    /// The validated config.
    pub config: Config,
    /// The state store.
    pub store: Arc<Store>,
    /// This cluster's CA.
    pub ca: ClusterCa,
    /// This control plane's own leaf (`spiffe://<td>/control`), renewed in
    /// place.
    pub cert: LiveCert,
    /// Peers and their links.
    pub peers: PeerSet,
    /// The gateway bootstrap token.
    pub bootstrap: BootstrapToken,
    /// Peering address put in tokens and sent to peers (host:port).
    pub peering_advertise: String,
    /// Gateway ingress address sent to peers (host:port).
    pub gateway_advertise: String,
    /// This cluster's services, from the registry.
    pub local: watch::Receiver<Arc<LocalSnapshot>>,
    /// This cluster's exports.
    pub exports: watch::Receiver<Arc<ExportState>>,
    /// The export view each peer acked.
    pub acked_views: AckedViews,
    /// Import changes for the table.
    pub table_events: mpsc::Sender<TableEvent>,
    /// The global service table.
    pub table: watch::Receiver<Arc<TableSnapshot>>,
    /// Kubernetes mode: the gateway port of each VIP name and service port
    /// (empty in standalone mode).
    pub listen_ports: watch::Receiver<Arc<crate::import_services::ListenPorts>>,
}

impl Control {
    /// This cluster's `ClusterInfo`, as sent at join and on every stream.
    pub fn local_info(&self) -> v1::ClusterInfo {
        v1::ClusterInfo {
            name: self.config.cluster.clone(),
            trust_domain: self.config.trust_domain.clone(),
            locality: Some(self.locality().to_proto()),
            gateway_address: self.gateway_advertise.clone(),
            dns_zone: self.config.dns.zone.clone(),
            ca_roots_pem: vec![self.ca.cert_pem().to_string()],
            peering_endpoint: self.peering_advertise.clone(),
        }
    }

    /// This cluster's locality.
    pub fn locality(&self) -> Locality {
        Locality {
            region: self.config.locality.region.clone(),
            zone: self.config.locality.zone.clone(),
        }
    }

    /// TLS for the peering server: our control leaf; client certificates
    /// optional at the TLS layer (Join is served without one) and checked
    /// per RPC.
    ///
    /// # Errors
    /// When rustls refuses the configuration.
    pub fn peering_server_tls(&self) -> Result<Arc<rustls::ServerConfig>, identity::IdentityError> {
        let verifier = PeerClientVerifier::new(self.peers.trust().clone(), false);
        identity::server_config(&self.cert, verifier, &[ALPN_H2]).map(Arc::new)
    }

    /// TLS for dialing `peer`'s control plane: our leaf as client
    /// certificate; the server must be `peer`'s control identity.
    ///
    /// # Errors
    /// When rustls refuses the configuration.
    pub fn peering_client_tls(
        &self,
        peer: &str,
    ) -> Result<Arc<rustls::ClientConfig>, identity::IdentityError> {
        let verifier = PeerServerVerifier::new(
            self.peers.trust().clone(),
            peer,
            PathRule::Exact("/control".into()),
        );
        identity::client_config(Some(&self.cert), verifier, &[ALPN_H2]).map(Arc::new)
    }

    /// TLS for `fedctl join`: no client certificate; the server must chain
    /// to the CA pinned in the token.
    ///
    /// # Errors
    /// When rustls refuses the configuration.
    pub fn join_client_tls(
        &self,
        pin: [u8; 32],
    ) -> Result<(Arc<rustls::ClientConfig>, Arc<PinnedServerVerifier>), identity::IdentityError>
    {
        let verifier = PinnedServerVerifier::new(pin);
        let tls = identity::client_config(None, verifier.clone(), &[ALPN_H2])?;
        Ok((Arc::new(tls), verifier))
    }

    /// Connect timeout for peering dials.
    pub fn dial_timeout(&self) -> Duration {
        Duration::from_secs(5)
    }
}
