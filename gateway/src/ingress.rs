//! Ingress: connections from peer clusters' gateways. mTLS with a client
//! certificate from a trusted peer (its own root, its own trust domain,
//! a gateway identity); the SNI `<port>.<svc>.<ns>.fedmesh` names the
//! service; the service must be exported, and exported to that peer. Then
//! a ready local endpoint is dialed, the status preface says whether it
//! worked, and bytes flow.

use std::sync::Arc;
use std::time::Duration;

use fedmesh_proto::identity::identify_peer;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tracing::{Instrument, debug, info, info_span, warn};

use crate::gateway::Gateway;
use crate::select::Rng;
use crate::splice::{TlsSide, splice};
use crate::status::{self, Status};

/// How long a TLS handshake may take.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// A request named by SNI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// Service port.
    pub port: u16,
    /// Service name.
    pub service: String,
    /// Namespace.
    pub namespace: String,
}

/// Parses `<port>.<svc>.<ns>.fedmesh` (case-insensitive).
pub fn parse_sni(sni: &str) -> Option<Route> {
    let lower = sni.to_ascii_lowercase();
    let rest = lower.strip_suffix(".fedmesh")?;
    let mut parts = rest.splitn(3, '.');
    let port = parts.next()?.parse().ok().filter(|p: &u16| *p > 0)?;
    let service = parts.next()?.to_string();
    let namespace = parts.next()?.to_string();
    if service.is_empty() || namespace.is_empty() || namespace.contains('.') {
        return None;
    }
    Some(Route {
        port,
        service,
        namespace,
    })
}

/// The SNI egress sends for a route.
pub fn sni(port: u16, service: &str, namespace: &str) -> String {
    format!("{port}.{service}.{namespace}.fedmesh")
}

/// Accepts peer connections forever.
pub async fn serve(gw: Arc<Gateway>, listener: TcpListener) {
    let acceptor = TlsAcceptor::from(gw.ingress_tls.clone());
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            () = gw.drained() => return,
        };
        let (tcp, remote) = match accepted {
            Ok(c) => c,
            Err(error) => {
                warn!(%error, "ingress accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let _ = tcp.set_nodelay(true);
        let gw = gw.clone();
        let acceptor = acceptor.clone();
        let span = info_span!("ingress", %remote);
        tokio::spawn(handle(gw, acceptor, tcp).instrument(span));
    }
}

async fn handle(gw: Arc<Gateway>, acceptor: TlsAcceptor, tcp: TcpStream) {
    let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
        Ok(Ok(tls)) => tls,
        Ok(Err(error)) if error.kind() == std::io::ErrorKind::UnexpectedEof => {
            // Peer gateways' active probes connect and close without a
            // ClientHello: not a refusal, or `ingress_refused` would count
            // every probe and hide real handshake failures.
            debug!(%error, "ingress connection closed before a TLS handshake");
            return;
        }
        Ok(Err(error)) => {
            debug!(%error, "ingress handshake failed");
            gw.metrics.ingress_refused("handshake");
            return;
        }
        Err(_) => return,
    };
    let (_, conn) = tls.get_ref();
    let sni = conn.server_name().map(str::to_string);
    let leaf = conn.peer_certificates().and_then(|c| c.first()).cloned();
    let Some(leaf) = leaf else {
        return;
    };
    // The verifier already checked the chain; this maps it to a peer and
    // re-checks against the bundle as it is now (a peer that left is out).
    let peer = match identify_peer(&gw.trust.snapshot(), &leaf) {
        Ok((peer, id)) if id.gateway_name().is_some() => peer.cluster,
        Ok((_, id)) => {
            warn!(%id, "ingress refused: not a gateway identity");
            gw.metrics.ingress_refused("not_a_gateway");
            return;
        }
        Err(error) => {
            warn!(%error, "ingress refused: unknown peer");
            gw.metrics.ingress_refused("unknown_peer");
            return;
        }
    };
    let mut tls = tls;
    let Some(route) = sni.as_deref().and_then(parse_sni) else {
        let _ = status::write(&mut tls, Status::BadRequest).await;
        gw.metrics.ingress_refused(Status::BadRequest.as_str());
        return;
    };
    match dial_endpoint(&gw, &peer, &route).await {
        Ok(mut upstream) => {
            let _open = gw.open_connection();
            if status::write(&mut tls, Status::Connected).await.is_err() {
                return;
            }
            let key = (route.namespace.clone(), route.service.clone());
            let _active = gw.metrics.ingress_active(&key, &peer);
            let meters = gw.metrics.ingress_meters(&key, &peer);
            let idle = gw.config.idle_timeout;
            splice(&mut tls, &mut upstream, TlsSide::A, idle, &meters).await;
        }
        Err(status) => {
            info!(%peer, service = %format!("{}/{}", route.namespace, route.service), port = route.port, reason = status.as_str(), "ingress refused");
            gw.metrics.ingress_refused(status.as_str());
            let _ = status::write(&mut tls, status).await;
        }
    }
}

/// Dials a ready local endpoint of the routed service for `peer`.
async fn dial_endpoint(gw: &Gateway, peer: &str, route: &Route) -> Result<TcpStream, Status> {
    let state = gw.state();
    let export = state
        .exports
        .get(&(route.namespace.clone(), route.service.clone()))
        .ok_or(Status::UnknownService)?;
    if !export.ports.iter().any(|(_, p)| *p == route.port) {
        return Err(Status::UnknownService);
    }
    if !export.allows(peer) {
        return Err(Status::NotExportedToYou);
    }
    let mut endpoints: Vec<(std::net::SocketAddr, f64)> = Vec::new();
    let mut rng = Rng::new();
    for e in export.endpoints.iter().filter(|e| e.ready) {
        if let Some(port) = export.target_port(e, route.port) {
            endpoints.push(((e.address, port).into(), rng.unit()));
        }
    }
    if endpoints.is_empty() {
        return Err(Status::NoHealthyEndpoint);
    }
    endpoints.sort_by(|a, b| a.1.total_cmp(&b.1));
    for (addr, _) in endpoints {
        if let Ok(Ok(stream)) =
            tokio::time::timeout(gw.config.connect_timeout, TcpStream::connect(addr)).await
        {
            let _ = stream.set_nodelay(true);
            return Ok(stream);
        }
    }
    Err(Status::EndpointFailed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sni_names_port_service_and_namespace() {
        let r = parse_sni("8080.hello.demo.fedmesh").unwrap();
        assert_eq!(
            r,
            Route {
                port: 8080,
                service: "hello".into(),
                namespace: "demo".into()
            }
        );
        assert_eq!(parse_sni(&sni(8080, "hello", "demo")), Some(r.clone()));
        assert_eq!(parse_sni("8080.HELLO.Demo.FEDMESH"), Some(r));
        for bad in [
            "hello.demo.fedmesh",
            "0.hello.demo.fedmesh",
            "x.hello.demo.fedmesh",
            "8080.hello.demo.example",
            "8080.hello.a.b.fedmesh",
            "8080..demo.fedmesh",
        ] {
            assert_eq!(parse_sni(bad), None, "{bad}");
        }
    }
}
