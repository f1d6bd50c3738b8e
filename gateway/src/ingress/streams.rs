//! Requests over the pooled transport: one HTTP/2 connection from a peer
//! gateway carries many CONNECT streams, each authorized on its own
//! exactly as a first-wave tunnel connection was
//! ([`super::authorize`]), then answered 200 once an endpoint was reached,
//! or refused with a status and a reason header. A stream's bytes (early
//! data included) are read only after the 200, so a refused request
//! reaches no endpoint and the egress may replay it elsewhere.

use std::sync::Arc;

use http::{HeaderMap, StatusCode};
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;
use tracing::{Instrument, debug, info, info_span};

use super::Ingress;
use super::authorize::authorize;
use crate::dial;
use crate::splice::{TlsSide, splice};
use crate::transport::{self, Incoming, ServerConfig};
use crate::wire::{self, Refusal, Route};

/// Serves the streams of one pooled connection from `peer` until it ends
/// or the gateway drains (GOAWAY; open streams finish).
pub(super) async fn serve(ingress: Arc<Ingress>, peer: String, tls: TlsStream<TcpStream>) {
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
async fn one(ingress: Arc<Ingress>, peer: String, incoming: Incoming) {
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
    let service = format!("{}/{}", route.namespace, route.service);
    let moved = splice(&mut tunnel, &mut upstream, TlsSide::A, ingress.idle_timeout).await;
    ingress
        .metrics
        .ingress_bytes(&service, &peer, moved.up, moved.down);
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
