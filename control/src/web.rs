//! The control plane's web port (`control.webListen`, plain HTTP/1.1):
//!
//! - `/metrics`: Prometheus metrics ([`metrics`]), OpenMetrics or the
//!   classic text format by the scrape's `Accept`;
//! - `/ready` (200 once the registry was first read and exports are
//!   published), `/live` (200 while the process serves);
//! - `/api/topology`: this cluster, its peers, the links, the gateways and
//!   the services as JSON ([`topology`]);
//! - `/ui/`: one static page drawing that JSON, polled every second
//!   (`ui.html`, compiled in: no build step).
//!
//! Data flows one way: every answer is built at request time from the
//! handles in [`WebInputs`] (peer set, acked views, exports, table, gateway
//! registry, DNS counters, certificates), all read without holding a lock
//! across `.await`. The one background task ([`propagation`]) times how
//! long an export change takes to be acked by every connected peer.
//!
//! Start reading at [`serve`], then `routes.rs`.

mod metrics;
mod process;
mod propagation;
mod routes;
mod sample;
mod topology;

use std::future::Future;
use std::sync::Arc;

use fedmesh_dns::QueryCounters;
use fedmesh_proto::identity::LiveCert;
use time::OffsetDateTime;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::api::gateways::GatewayRegistry;
use crate::exports::ExportState;
use crate::model::Locality;
use crate::peering::PeerSet;
use crate::peering::sync::AckedViews;
use crate::table::TableSnapshot;

pub use metrics::ControlMetrics;
pub use topology::{Topology, build as build_topology};

/// The handles the web port reads; it writes none of them.
#[derive(Clone)]
pub struct WebInputs {
    /// This cluster's name.
    pub cluster: String,
    /// This cluster's locality.
    pub locality: Locality,
    /// Peers and their links.
    pub peers: Arc<PeerSet>,
    /// The export view each peer acked.
    pub acked: Arc<AckedViews>,
    /// This cluster's exports.
    pub exports: watch::Receiver<Arc<ExportState>>,
    /// The global service table.
    pub table: watch::Receiver<Arc<TableSnapshot>>,
    /// This cluster's gateways as the gateway API saw them.
    pub gateways: Arc<GatewayRegistry>,
    /// The gateway the config names (kept when silent), if any.
    pub gateway_name: String,
    /// DNS responses by rcode.
    pub dns: Arc<QueryCounters>,
    /// The end of this cluster's root certificate.
    pub root_not_after: OffsetDateTime,
    /// This control plane's own leaf, renewed in place.
    pub control_cert: LiveCert,
}

impl std::fmt::Debug for WebInputs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebInputs")
            .field("cluster", &self.cluster)
            .finish_non_exhaustive()
    }
}

/// Serves the web port on `listener` until `stop` completes, and runs the
/// propagation timer beside it.
pub async fn serve(
    listener: TcpListener,
    inputs: WebInputs,
    stop: impl Future<Output = ()> + Send + 'static,
) {
    let metrics = Arc::new(ControlMetrics::new());
    let timer = tokio::spawn(propagation::run(inputs.clone(), metrics.propagation()));
    routes::serve(listener, Arc::new(inputs), metrics, stop).await;
    timer.abort();
}

#[cfg(test)]
mod tests;
