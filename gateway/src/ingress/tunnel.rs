//! Requests over the first-wave tunnel: one TLS connection per request,
//! the SNI naming the service port, a two-byte status preface answering
//! before bytes flow ([`crate::wire::preface`]).

use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;
use tracing::info;

use super::Ingress;
use super::authorize::authorize;
use crate::dial;
use crate::splice::{TlsSide, splice};
use crate::wire::{Refusal, Route, preface};

/// Answers the one request of a tunnel connection from `peer`.
pub(super) async fn handle(ingress: &Ingress, peer: &str, mut tls: TlsStream<TcpStream>) {
    let route = tls.get_ref().1.server_name().and_then(Route::parse);
    let Some(route) = route else {
        let _ = preface::write(&mut tls, Err(Refusal::BadRequest)).await;
        ingress
            .metrics
            .ingress_refused(Refusal::BadRequest.as_str());
        return;
    };
    let key = (route.namespace.clone(), route.service.clone());
    let reached = match authorize(&ingress.state(), peer, &route) {
        Ok(candidates) => dial::dial(&ingress.health, &candidates, ingress.connect_timeout)
            .await
            .map_err(|_| Refusal::EndpointFailed),
        Err(refusal) => Err(refusal),
    };
    match reached {
        Ok((mut upstream, _)) => {
            let _open = ingress.life.open_connection();
            if preface::write(&mut tls, Ok(())).await.is_err() {
                return;
            }
            let _active = ingress.metrics.ingress_active(&key, peer);
            let meters = ingress.metrics.ingress_meters(&key, peer);
            splice(
                &mut tls,
                &mut upstream,
                TlsSide::A,
                ingress.idle_timeout,
                &meters,
            )
            .await;
        }
        Err(refusal) => {
            info!(%peer, namespace = %key.0, service = %key.1, port = route.port, reason = refusal.as_str(), "ingress refused");
            ingress.metrics.ingress_refused(refusal.as_str());
            let _ = preface::write(&mut tls, Err(refusal)).await;
        }
    }
}
