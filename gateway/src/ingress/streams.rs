//! Requests over the pooled transport: one HTTP/2 connection from a peer
//! gateway carries many CONNECT streams, each authorized on its own
//! exactly as a first-wave tunnel connection was
//! ([`super::authorize`]), then answered 200 once an endpoint was reached,
//! or refused with a status and a reason header. A stream's bytes (early
//! data included) are read only after the 200, so a refused request
//! reaches no endpoint and the egress may replay it elsewhere. A pooled
//! connection lives long: each stream re-checks the caller's certificate
//! against the trust bundle as it is now, so a peer that left (or whose
//! root was replaced) opens no stream on a connection it made before.

use std::sync::{Arc, Mutex};

use fedmesh_proto::identity::{SharedTrust, TrustBundle, identify_peer};
use rustls_pki_types::CertificateDer;

use http::{HeaderMap, StatusCode};
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;
use tracing::{Instrument, debug, info, info_span};

use super::Ingress;
use super::authorize::authorize;
use crate::dial;
use crate::observe::ConnectionDone;
use crate::otlp::Side;
use crate::splice::{TunnelSide, splice_tunnel};
use crate::transport::{self, Incoming, ServerConfig};
use crate::wire::{self, Refusal, Route};

/// The peer gateway at the other end of a pooled connection.
#[derive(Debug)]
pub(super) struct Peer {
    /// Its cluster.
    name: String,
    /// The certificate it presented.
    leaf: CertificateDer<'static>,
    /// The bundle it was last found in (checked again when it changes).
    checked: Mutex<Option<Arc<TrustBundle>>>,
}

impl Peer {
    /// `name`, identified by `leaf` at the handshake.
    pub(super) fn new(name: String, leaf: CertificateDer<'static>) -> Arc<Self> {
        Arc::new(Self {
            name,
            leaf,
            checked: Mutex::new(None),
        })
    }

    /// Whether the peer is still this cluster's peer, with this certificate.
    fn still_trusted(&self, trust: &SharedTrust) -> bool {
        let now = trust.snapshot();
        let mut checked = self.checked.lock().unwrap_or_else(|p| p.into_inner());
        if checked.as_ref().is_some_and(|c| Arc::ptr_eq(c, &now)) {
            return true;
        }
        let ok = matches!(identify_peer(&now, &self.leaf), Ok((p, _)) if p.cluster == self.name);
        if ok {
            *checked = Some(now);
        }
        ok
    }
}

/// Serves the streams of one pooled connection from `peer` until it ends
/// or the gateway drains (GOAWAY; open streams finish).
pub(super) async fn serve(ingress: Arc<Ingress>, peer: Arc<Peer>, tls: TlsStream<TcpStream>) {
    let config = ServerConfig {
        drain_timeout: ingress.drain_timeout,
        ..ServerConfig::default()
    };
    let life = ingress.life.clone();
    let handler = |incoming: Incoming| {
        let span = info_span!("stream", authority = %incoming.authority);
        one(ingress.clone(), peer.clone(), incoming).instrument(span)
    };
    if let Err(error) =
        transport::serve_connection(tls, config, handler, async move { life.drained().await }).await
    {
        debug!(%error, "pooled peer connection ended");
    }
}

/// Answers one CONNECT stream.
async fn one(ingress: Arc<Ingress>, caller: Arc<Peer>, incoming: Incoming) {
    if !caller.still_trusted(&ingress.trust) {
        info!(peer = %caller.name, "ingress refused a stream: the peer is no longer trusted");
        ingress.metrics.ingress_refused("unknown_peer");
        let _ = incoming.refuse(StatusCode::FORBIDDEN, "unknown_peer");
        return;
    }
    let peer = caller.name.clone();
    let Some(route) = Route::parse(&incoming.authority) else {
        refuse(&ingress, &peer, None, incoming, Refusal::BadRequest);
        return;
    };
    let budget = incoming
        .headers
        .get(wire::BUDGET_HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(wire::parse_budget)
        .map_or(ingress.connect_timeout, |b| b.min(ingress.connect_timeout));
    if incoming.is_request() {
        // An HTTP request stream: authorized the same way, then forwarded
        // per request (DESIGN.md, HTTP-aware services).
        match authorize(&ingress.state(), &peer, &route) {
            Ok(candidates) => {
                crate::http::forward(&ingress, &peer, &route, &candidates, budget, incoming).await
            }
            Err(refusal) => refuse(&ingress, &peer, Some(&route), incoming, refusal),
        }
        return;
    }
    let reached = match authorize(&ingress.state(), &peer, &route) {
        Ok(candidates) => dial::dial(&ingress.health, &candidates, budget)
            .await
            .map_err(|_| Refusal::EndpointFailed),
        Err(refusal) => Err(refusal),
    };
    let (mut upstream, _) = match reached {
        Ok(reached) => reached,
        Err(refusal) => {
            refuse(&ingress, &peer, Some(&route), incoming, refusal);
            return;
        }
    };
    let Ok(mut tunnel) = incoming.accept(HeaderMap::new()) else {
        return;
    };
    let _open = ingress.life.open_connection();
    let key = (route.namespace.clone(), route.service.clone());
    let _active = ingress.metrics.ingress_active(&key, &peer);
    let meters = ingress.metrics.ingress_meters(&key, &peer);
    let started = std::time::Instant::now();
    let moved = splice_tunnel(
        &mut upstream,
        &mut tunnel,
        TunnelSide::TunnelFirst,
        ingress.idle_timeout,
        &meters,
    )
    .await;
    // TunnelFirst: `up` counts what came from the tunnel (the client).
    ingress.observe.connection_done(&ConnectionDone {
        side: Side::Server,
        service: key,
        port: route.port,
        cluster: peer,
        bytes_up: moved.up,
        bytes_down: moved.down,
        duration: started.elapsed(),
        outcome: if moved.idle_timeout {
            "idle_timeout"
        } else {
            "closed"
        },
    });
}

fn refuse(
    ingress: &Ingress,
    peer: &str,
    route: Option<&Route>,
    incoming: Incoming,
    refusal: Refusal,
) {
    let status = StatusCode::from_u16(refusal.http_status()).unwrap_or(StatusCode::BAD_REQUEST);
    match route {
        Some(r) => {
            info!(%peer, service = %format!("{}/{}", r.namespace, r.service), port = r.port, reason = refusal.as_str(), "ingress refused")
        }
        None => info!(%peer, reason = refusal.as_str(), "ingress refused a malformed request"),
    }
    ingress.metrics.ingress_refused(refusal.as_str());
    let _ = incoming.refuse(status, refusal.as_str());
}
