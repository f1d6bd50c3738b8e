//! The remote hop of an attempt: reaching a peer cluster's ingress, which
//! answers only once it reached one of its endpoints. Over the first-wave
//! tunnel: a TCP connect and an mTLS handshake per client connection, the
//! SNI naming the service port, then the two-byte status preface.

use std::time::Instant;

use rustls_pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use super::Egress;
use super::carry::Upstream;
use crate::error::AttemptError;
use crate::state::Target;
use crate::wire::{Route, preface};

/// Reaches `route` through `target`'s gateway within `gateway.connectTimeout`.
///
/// # Errors
/// Which step failed; every one lets the next target be tried.
pub(super) async fn connect(
    egress: &Egress,
    target: &Target,
    route: &Route,
) -> Result<Upstream, AttemptError> {
    let addr = &target.gateway;
    let deadline = tokio::time::Instant::now() + egress.connect_timeout;
    let timeout = || AttemptError::Timeout { addr: addr.clone() };
    let started = Instant::now();
    let tcp = tokio::time::timeout_at(deadline, TcpStream::connect(addr))
        .await
        .map_err(|_| timeout())?
        .map_err(|source| AttemptError::Connect {
            addr: addr.clone(),
            source,
        })?;
    egress.health.connected_in(addr, started.elapsed());
    let _ = tcp.set_nodelay(true);
    let name = ServerName::try_from(route.name())
        .map_err(|e| AttemptError::Settings(format!("{}: {e}", route.name())))?;
    let tls = egress
        .tls
        .client(&target.cluster)
        .map_err(|e| AttemptError::Settings(e.to_string()))?;
    let mut tls = tokio::time::timeout_at(deadline, TlsConnector::from(tls).connect(name, tcp))
        .await
        .map_err(|_| timeout())?
        .map_err(|source| AttemptError::Tls {
            addr: addr.clone(),
            source,
        })?;
    let resumed = matches!(
        tls.get_ref().1.handshake_kind(),
        Some(rustls::HandshakeKind::Resumed)
    );
    egress.metrics.tls_handshake(&target.cluster, resumed);
    match tokio::time::timeout_at(deadline, preface::read(&mut tls)).await {
        Ok(Ok(Ok(()))) => Ok(Upstream::Tls(Box::new(tls))),
        Ok(Ok(Err(refusal))) => Err(AttemptError::Refused(refusal)),
        Ok(Err(e)) => Err(AttemptError::BadAnswer(e.to_string())),
        Err(_) => Err(timeout()),
    }
}
