//! The remote hop of an attempt: a CONNECT stream to a peer cluster's
//! ingress over the pooled HTTP/2 transport ([`crate::pools`]), which
//! answers 200 only once it reached one of its endpoints, or refuses with
//! a reason (503 when it has nothing to serve with: the next target is
//! tried). Client bytes that arrive meanwhile travel with the request and
//! are kept for a replay ([`super::early`]). A warm pool costs no TCP or
//! TLS handshake: a new client connection reaches its first response in
//! one round trip to the peer.

use http::{HeaderMap, HeaderValue};
use tokio::net::TcpStream;

use super::Egress;
use super::carry::Upstream;
use super::early::Early;
use crate::error::AttemptError;
use crate::state::Target;
use crate::wire::{self, Refusal, Route};

/// Reaches `route` through `target`'s gateway within
/// `gateway.connectTimeout`, sending `early` bytes (and what the client
/// sends meanwhile) with the request.
///
/// # Errors
/// Which step failed; every one lets the next target be tried unless the
/// client went away.
pub(super) async fn connect(
    egress: &Egress,
    target: &Target,
    route: &Route,
    client: &mut TcpStream,
    early: &mut Early,
) -> Result<Upstream, AttemptError> {
    let addr = &target.gateway;
    let deadline = tokio::time::Instant::now() + egress.connect_timeout;
    let pool = egress.pools.get(&target.cluster, addr);
    // The ingress's share of the wait: what is left once the answer has
    // come back (one smoothed round trip, as the probes measure it).
    let budget = egress
        .connect_timeout
        .saturating_sub(egress.health.rtt(addr).unwrap_or_default());
    let mut headers = HeaderMap::new();
    if let Ok(value) = HeaderValue::from_str(&wire::budget_header(budget)) {
        headers.insert(wire::BUDGET_HEADER, value);
    }
    let mut opening = pool
        .open(&route.name(), headers, deadline)
        .await
        .map_err(AttemptError::Transport)?;
    if !early.is_empty() {
        opening
            .send(early.bytes())
            .map_err(AttemptError::Transport)?;
    }
    let response = loop {
        tokio::select! {
            r = opening.response() => break r.map_err(AttemptError::Transport)?,
            chunk = early.read_more(client), if early.has_room() => match chunk {
                Ok(Some(bytes)) => opening.send(bytes).map_err(AttemptError::Transport)?,
                Ok(None) => {}
                Err(_) => return Err(AttemptError::ClientGone),
            },
            () = tokio::time::sleep_until(deadline) => {
                return Err(AttemptError::Timeout { addr: addr.clone() });
            }
        }
    };
    if response.status == http::StatusCode::OK {
        early.delivered();
        let tunnel = opening.into_tunnel().map_err(AttemptError::Transport)?;
        return Ok(Upstream::Tunnel(Box::new(tunnel)));
    }
    Err(match response.reason().and_then(Refusal::from_reason) {
        Some(refusal) => AttemptError::Refused(refusal),
        None => AttemptError::BadAnswer(format!("status {}", response.status)),
    })
}
