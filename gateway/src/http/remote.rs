//! The remote hop of a request: an ordinary HTTP/2 request stream to a
//! peer cluster's ingress over the pooled transport ([`crate::pools`]),
//! naming the service port in [`wire::SERVICE_HEADER`] and keeping the
//! client's `:authority`. The body is pumped in a task of its own, so that
//! a stream that answers while the client still sends (gRPC streaming)
//! keeps both directions moving.

use http::{HeaderValue, Request, Response};
use tokio::time::Instant;
use tracing::debug;

use super::Body;
use super::body::{H2Body, Held, send_body};
use crate::egress::Egress;
use crate::error::AttemptError;
use crate::state::Target;
use crate::transport::stream::StreamSlot;
use crate::transport::{RequestStream, TransportError};
use crate::wire::{self, Route};

/// One target being tried.
pub(super) struct Hop<'a> {
    /// The egress's handles.
    pub(super) egress: &'a Egress,
    /// The target.
    pub(super) target: &'a Target,
}

/// What a peer answered: its response head and a body that keeps the
/// stream counted in its pool while it is read.
pub(super) type PeerResponse = Response<Held<H2Body, StreamSlot>>;

/// Sends `head` and `body` (`None`: no body) through `hop`'s gateway; the
/// stream must be taken by a connection before `deadline`.
///
/// # Errors
/// [`AttemptError::Transport`]: before the peer could act on it when
/// [`TransportError::is_before_request`], else a reset or lost connection.
pub(super) async fn send(
    hop: &Hop<'_>,
    route: &Route,
    head: &Request<()>,
    body: Option<Body>,
    deadline: Instant,
) -> Result<PeerResponse, AttemptError> {
    let pool = hop
        .egress
        .pools
        .get(&hop.target.cluster, &hop.target.gateway);
    let mut head = clone_head(head);
    if let Ok(name) = HeaderValue::from_str(&route.name()) {
        head.headers_mut().insert(wire::SERVICE_HEADER, name);
    }
    let budget = wire::budget_header(hop.egress.connect_timeout);
    if let Ok(value) = HeaderValue::from_str(&budget) {
        head.headers_mut().insert(wire::BUDGET_HEADER, value);
    }
    let stream = pool
        .request(&head, body.is_none(), deadline)
        .await
        .map_err(AttemptError::Transport)?;
    let RequestStream {
        addr,
        response,
        mut send,
        slot,
    } = stream;
    if let Some(body) = body {
        tokio::spawn(async move {
            if let Err(error) = send_body(body, &mut send).await {
                debug!(%error, "request body not sent in full");
            }
        });
    }
    let response = response
        .await
        .map_err(|source| AttemptError::Transport(TransportError::from_stream(&addr, source)))?;
    let (parts, recv) = response.into_parts();
    Ok(Response::from_parts(
        parts,
        Held::new(H2Body::new(recv), slot),
    ))
}

/// A copy of a request head.
fn clone_head(head: &Request<()>) -> Request<()> {
    let mut copy = Request::new(());
    *copy.method_mut() = head.method().clone();
    *copy.uri_mut() = head.uri().clone();
    *copy.headers_mut() = head.headers().clone();
    copy
}
