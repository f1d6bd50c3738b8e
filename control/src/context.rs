//! What `fedctl check` reads: the one bundle of control-plane state left,
//! because the checks look at nearly all of it (CA, leaf, bootstrap token,
//! registry, peers). Every other task takes only the handles it uses
//! ([`crate::peering::handles`], [`crate::api`]).

use std::sync::Arc;

use fedmesh_proto::config::Config;
use fedmesh_proto::identity::LiveCert;
use fedmesh_proto::token::BootstrapToken;
use tokio::sync::watch;

use crate::ca::ClusterCa;
use crate::model::LocalSnapshot;
use crate::peering::PeerSet;

/// The state the health checks read.
#[derive(Debug)]
pub struct Control {
    /// The validated config.
    pub config: Config,
    /// This cluster's CA.
    pub ca: Arc<ClusterCa>,
    /// This control plane's own leaf (`spiffe://<td>/control`), renewed in
    /// place.
    pub cert: LiveCert,
    /// Peers and their links.
    pub peers: Arc<PeerSet>,
    /// The gateway bootstrap token.
    pub bootstrap: BootstrapToken,
    /// This cluster's services, from the registry.
    pub local: watch::Receiver<Arc<LocalSnapshot>>,
}
