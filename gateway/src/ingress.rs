//! Ingress: connections from peer clusters' gateways.
//!
//! Stages, top to bottom in [`serve`] and [`handle`]:
//!
//! 1. **accept** a TCP connection and finish the mTLS handshake within a
//!    deadline; a client certificate from a trusted peer is required.
//! 2. **identify** the peer: the certificate must map to a peer of the
//!    trust bundle as it is now, and be a gateway identity.
//! 3. **authorize** each request ([`authorize`]): the named service port
//!    must be exported, and exported to that peer.
//! 4. **dial** a ready, non-ejected local endpoint ([`crate::dial`]),
//!    each dial budgeted so that two endpoints fit in the egress's wait.
//! 5. **answer and carry**: connected, or why not ([`crate::wire::Refusal`]);
//!    then bytes both ways.
//!
//! Requests arrive by the pooled transport ([`streams`]: ALPN `h2`, one
//! CONNECT stream per request, `:authority` names the service port; for
//! HTTP ports one request stream per client request, forwarded by
//! [`crate::http`]), or
//! over the first-wave tunnel ([`tunnel`]: ALPN `fedmesh-gw/1`, SNI names
//! it, a status preface answers), which gateways of the previous release
//! still dial.

mod authorize;
mod streams;
mod tunnel;

use std::sync::Arc;
use std::time::Duration;

use fedmesh_proto::identity::{SharedTrust, identify_peer};
use fedmesh_proto::transport::{HandshakeLimits, Handshakes};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use tracing::{Instrument, debug, info_span, warn};

use crate::health::Health;
use crate::lifecycle::Lifecycle;
use crate::metrics::Metrics;
use crate::state::GatewayState;
use crate::wire;

/// How long a TLS handshake may take.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The handles ingress uses.
#[derive(Debug)]
pub struct Ingress {
    /// Snapshots from the control plane.
    pub states: watch::Receiver<Arc<GatewayState>>,
    /// Endpoint health.
    pub health: Arc<Health>,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// Peer roots, as they are now.
    pub trust: SharedTrust,
    /// TLS: a peer gateway's client certificate required.
    pub tls: Arc<rustls::ServerConfig>,
    /// How long the egress waits for an answer (`gateway.connectTimeout`)
    /// when a request does not say.
    pub connect_timeout: Duration,
    /// How long a carried connection may stay silent.
    pub idle_timeout: Duration,
    /// How long open streams of a pooled connection may take to finish
    /// once the gateway drains.
    pub drain_timeout: Duration,
    /// Pooled HTTP connections to endpoints (HTTP ports).
    pub endpoints: Arc<crate::http::Endpoints>,
    /// Trace context, spans and access log lines.
    pub observe: Arc<crate::observe::Observe>,
    /// Open connections and the drain.
    pub life: Lifecycle,
}

impl Ingress {
    /// The latest snapshot.
    pub fn state(&self) -> Arc<GatewayState> {
        self.states.borrow().clone()
    }
}

/// Accepts peer connections until the gateway drains.
pub async fn serve(ingress: Arc<Ingress>, listener: TcpListener) {
    let acceptor = TlsAcceptor::from(ingress.tls.clone());
    // Unauthenticated load: few handshakes at once, a bounded queue.
    let handshakes = Handshakes::new(HandshakeLimits {
        deadline: HANDSHAKE_TIMEOUT,
        ..HandshakeLimits::default()
    });
    loop {
        // 1. Accept.
        let accepted = tokio::select! {
            a = listener.accept() => a,
            () = ingress.life.drained() => return,
        };
        let (tcp, remote) = match accepted {
            Ok(c) => c,
            Err(error) => {
                warn!(%error, "ingress accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Some(queued) = handshakes.enqueue() else {
            debug!(%remote, "too many ingress handshakes waiting; closed");
            ingress.metrics.ingress_refused("handshake");
            continue;
        };
        let _ = tcp.set_nodelay(true);
        let span = info_span!("ingress", %remote);
        let acceptor = acceptor.clone();
        let handshake = async move {
            let _turn = queued.turn().await;
            acceptor.accept(tcp).await
        };
        tokio::spawn(handle(ingress.clone(), handshake).instrument(span));
    }
}

async fn handle(
    ingress: Arc<Ingress>,
    handshake: impl Future<Output = std::io::Result<TlsStream<TcpStream>>>,
) {
    let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake).await {
        Ok(Ok(tls)) => tls,
        Ok(Err(error)) if error.kind() == std::io::ErrorKind::UnexpectedEof => {
            // Closed before a ClientHello (a TCP probe): not a refusal, or
            // `ingress_refused` would count every probe and hide real
            // handshake failures.
            debug!(%error, "ingress connection closed before a TLS handshake");
            return;
        }
        Ok(Err(error)) => {
            debug!(%error, "ingress handshake failed");
            ingress.metrics.ingress_refused("handshake");
            return;
        }
        Err(_) => {
            debug!("ingress handshake timed out");
            ingress.metrics.ingress_refused("handshake");
            return;
        }
    };
    // 2. Identify: the verifier checked the chain; this maps it to a peer
    // and re-checks against the bundle as it is now (a peer that left is
    // out).
    let leaf = tls
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|c| c.first())
        .cloned();
    let Some(leaf) = leaf else {
        return;
    };
    let peer = match identify_peer(&ingress.trust.snapshot(), &leaf) {
        Ok((peer, id)) if id.gateway_name().is_some() => peer.cluster,
        Ok((_, id)) => {
            warn!(%id, "ingress refused: not a gateway identity");
            ingress.metrics.ingress_refused("not_a_gateway");
            return;
        }
        Err(error) => {
            warn!(%error, "ingress refused: unknown peer");
            ingress.metrics.ingress_refused("unknown_peer");
            return;
        }
    };
    // 3–5, per request.
    if tls.get_ref().1.alpn_protocol() == Some(wire::ALPN_H2) {
        let peer = streams::Peer::new(peer, leaf);
        streams::serve(ingress, peer, tls).await;
    } else {
        tunnel::handle(&ingress, &peer, tls).await;
    }
}
