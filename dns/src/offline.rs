//! Both answer paths of the DNS server without sockets, for the fuzz
//! targets and for tools that check answers offline.
//!
//! An [`OfflineZone`] holds what the server builds from one
//! [`ZoneSnapshot`]: the fast path's pre-encoded table (`fast`) and the
//! hickory router (`router`, no upstreams: names outside the zone are
//! refused). A packet goes in as a UDP worker receives it and the encoded
//! response comes out, exactly as it would be sent.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;

use tokio::sync::watch;

use crate::error::DnsError;
use crate::fast::FastZone;
use crate::router::ZoneRouter;
use crate::snapshot::{ZoneIndex, ZoneSnapshot, zone_name};
use crate::udp::hickory_answer;

/// The source address the offline answers are computed for (only logged).
const SOURCE: SocketAddr = SocketAddr::new(std::net::IpAddr::V4(Ipv4Addr::LOCALHOST), 53);

/// One snapshot's zone, answerable without sockets.
pub struct OfflineZone {
    fast: FastZone,
    router: ZoneRouter,
    /// Keeps the router's snapshot channel open.
    _snapshots: watch::Sender<Arc<ZoneSnapshot>>,
}

impl std::fmt::Debug for OfflineZone {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OfflineZone")
            .field("zone", &self.fast.snapshot().zone)
            .finish_non_exhaustive()
    }
}

impl OfflineZone {
    /// Builds both paths for `snapshot`, as the server does on publish.
    ///
    /// # Errors
    ///
    /// [`DnsError::Forwarder`] when hickory cannot build the router.
    pub fn new(snapshot: ZoneSnapshot) -> Result<Self, DnsError> {
        let snapshot = Arc::new(snapshot);
        let index = zone_name(&snapshot.zone)
            .ok()
            .map(|zone| ZoneIndex::build(Arc::clone(&snapshot), &zone));
        let fast = FastZone::build(Arc::clone(&snapshot), index.as_ref());
        let (tx, rx) = watch::channel(snapshot);
        let router = ZoneRouter::new(rx, &[])?;
        Ok(Self {
            fast,
            router,
            _snapshots: tx,
        })
    }

    /// The fast path's response to the UDP query `packet`, or `None` when
    /// the fast path leaves it to hickory.
    pub fn fast(&self, packet: &[u8]) -> Option<Vec<u8>> {
        let mut out = Vec::new();
        self.fast.warm(packet);
        self.fast.respond(packet, &mut out).then_some(out)
    }

    /// hickory's response to the UDP query `packet` (the path every query
    /// the fast path skips takes), or `None` when no response is due.
    pub async fn full(&self, packet: &[u8]) -> Option<Vec<u8>> {
        hickory_answer(&self.router, packet, SOURCE).await
    }
}
