//! What `fedctl check` reads: the one bundle of control-plane state left,
//! because the checks look at nearly all of it (CA, leaf, bootstrap token,
//! registry, peers, the service table, this cluster's gateways). Every other task takes only the handles it uses
//! ([`crate::peering::handles`], [`crate::api`]).

use std::sync::Arc;

use fedmesh_proto::config::Config;
use fedmesh_proto::identity::LiveCert;
use fedmesh_proto::token::BootstrapToken;
use tokio::sync::watch;

use crate::api::gateways::GatewayRegistry;
use crate::ca::ClusterCa;
use crate::ca::rotation::CaRotation;
use crate::model::LocalSnapshot;
use crate::peering::PeerSet;
use crate::store::Store;
use crate::table::TableSnapshot;

/// The state the health checks read.
#[derive(Debug)]
pub struct Control {
    /// The validated config.
    pub config: Config,
    /// This cluster's CA as it signed at start.
    pub ca: Arc<ClusterCa>,
    /// The CA rotation: the root that signs now.
    pub rotation: Arc<CaRotation>,
    /// This control plane's own leaf (`spiffe://<td>/control`), renewed in
    /// place.
    pub cert: LiveCert,
    /// Peers and their links.
    pub peers: Arc<PeerSet>,
    /// The gateway bootstrap token.
    pub bootstrap: BootstrapToken,
    /// This cluster's services, from the registry.
    pub local: watch::Receiver<Arc<LocalSnapshot>>,
    /// The global service table (export conflicts).
    pub table: watch::Receiver<Arc<TableSnapshot>>,
    /// This cluster's gateways as the gateway API saw them.
    pub gateways: Arc<GatewayRegistry>,
    /// The state store (whether writes work).
    pub store: Arc<Store>,
}
