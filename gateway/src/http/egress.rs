//! The request stage of egress: one client request, balanced and failed
//! over on its own (DESIGN.md, HTTP-aware services). Stages 1–2 are here,
//! 3–4 in [`super::attempts`].
//!
//! 1. **head**: hop-by-hop and gateway headers are dropped (RFC 9110
//!    §7.6.1), the URI made absolute with the client's authority.
//! 2. **body**: kept for a replay when small and complete
//!    ([`RequestBody`]), else streamed to one target only.
//! 3. **targets**: the same choice as a connection's
//!    ([`crate::egress::choose_targets`]: locality, affinity, weights,
//!    spill-over), made per request.
//! 4. **attempts**: in order, each under its target's permit
//!    (`maxConnectionsPerTarget` counts requests in flight here). A target
//!    that fails before any response byte — connect failure, reset, a 503
//!    whose `fedmesh-reason` says the peer has nothing — passes the request
//!    to the next, unless it may have reached an endpoint and the method
//!    is not idempotent (GET, HEAD, OPTIONS, PUT, DELETE), or its body is
//!    gone. An idempotent request's response is held for a moment
//!    ([`super::settle`]): if it breaks then, the next target is tried.
//!    Failures and 5xx answers feed the cluster's outlier record.
//!
//! Between 2 and 3, the service's routes ([`super::policy`]) may answer
//! the request themselves (no rule, a fault) or pick the service, cluster
//! copy and port it goes to, and wrap 3–4 in their timeouts and retries;
//! then this stage runs as it is, once per try.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Instant;

use http::{Request, Response, StatusCode, header};
use hyper::body::Incoming;

use super::body::RequestBody;
use super::headers::{absolute, strip_gateway, strip_hop_by_hop};
use super::observed::observed;
use super::reply::status;
use super::{Body, policy};
use crate::egress::Egress;
use crate::observe::RequestDone;
use crate::state::Listener;
use crate::wire::Route;

/// What every request of one client connection shares.
#[derive(Debug)]
pub(super) struct ClientConn {
    /// The egress's handles.
    pub(super) egress: Arc<Egress>,
    /// The listener the client connected to.
    pub(super) listener: Listener,
}

/// Serves one request of `conn`'s client.
pub(super) async fn handle(
    conn: Arc<ClientConn>,
    mut request: Request<Incoming>,
) -> Result<Response<Body>, Infallible> {
    let started = Instant::now();
    let egress = &conn.egress;
    // W3C trace context: continued or started, this hop as the parent.
    let (method, uri) = (request.method().clone(), request.uri().clone());
    let begun = egress.observe.begin(&method, &uri, request.headers_mut());
    let state = egress.state();
    let key = &conn.listener.key;
    let Some(import) = state.imports.get(key) else {
        return Ok(status(
            StatusCode::SERVICE_UNAVAILABLE,
            "service not imported",
        ));
    };
    let route = Route::new(&key.0, &key.1, conn.listener.port);
    let Some((head, body)) = prepare(request, &route).await else {
        return Ok(status(StatusCode::BAD_REQUEST, "malformed request"));
    };
    let tried = AtomicU32::new(0);
    let (cluster, response) = policy::answer(
        egress,
        &state,
        &conn.listener,
        import,
        &route,
        (head, body),
        &tried,
    )
    .await;
    let code = response.status().as_u16();
    egress
        .metrics
        .http_request(key, &cluster, code, started.elapsed());
    let tried = tried.load(Ordering::Relaxed);
    let done = RequestDone::at_egress(key.clone(), conn.listener.port, cluster, tried);
    Ok(observed(&egress.observe, begun, done, response))
}

/// Stages 1–2: the head as it goes upstream, and the body held for it.
async fn prepare(request: Request<Incoming>, route: &Route) -> Option<(Request<()>, RequestBody)> {
    let (mut parts, body) = request.into_parts();
    strip_hop_by_hop(&mut parts.headers);
    strip_gateway(&mut parts.headers);
    let uri = absolute(&parts.uri, &parts.headers, &route.name())?;
    // RFC 9113 §8.3.1: `:authority` carries it from here on.
    parts.headers.remove(header::HOST);
    let mut head = Request::new(());
    *head.method_mut() = parts.method;
    *head.uri_mut() = uri;
    *head.headers_mut() = parts.headers;
    let body = RequestBody::read(body).await.ok()?;
    Some((head, body))
}
