//! The ingress side of a request stream: authorized by
//! [`crate::ingress`] as a CONNECT is, then sent to an endpoint over the
//! endpoint pool ([`super::Endpoints`]: HTTP/1.1, or h2c for h2c and gRPC
//! ports), and the response streamed back on the stream, trailers
//! included. No endpoint reached: 503 with `fedmesh-reason:
//! endpoint_failed`, which tells the egress to try the next target. An
//! endpoint that took the request and then failed: the stream is reset
//! (INTERNAL_ERROR), so the egress retries only an idempotent request.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use h2::server::SendResponse;
use http::{HeaderMap, HeaderValue, Request, Response, StatusCode};
use hyper::body::Body as _;
use tracing::{debug, info};

use super::Body;
use super::body::{H2Body, boxed, full, send_body};
use super::endpoints::EndpointError;
use super::headers::{strip_gateway, strip_hop_by_hop};
use super::observed::observed;
use crate::ingress::Ingress;
use crate::observe::RequestDone;
use crate::transport::Incoming;
use crate::wire::{self, Refusal, Route};

/// Forwards the request of `incoming` from `peer` (already authorized for
/// `route`) to one of `candidates`, dialing within `budget`.
pub(crate) async fn forward(
    ingress: &Ingress,
    peer: &str,
    route: &Route,
    candidates: &[SocketAddr],
    budget: Duration,
    incoming: Incoming,
) {
    let key = (route.namespace.clone(), route.service.clone());
    let protocol = ingress.state().export_protocol(&key, route.port);
    let Some((request, mut respond)) = incoming.into_request() else {
        return;
    };
    let (mut parts, recv) = request.into_parts();
    strip_gateway(&mut parts.headers);
    strip_hop_by_hop(&mut parts.headers);
    // The client-side gateway's span is this hop's parent.
    let begun = ingress
        .observe
        .begin(&parts.method, &parts.uri, &mut parts.headers);
    let done = RequestDone::at_ingress(key.clone(), route.port, peer);
    let body = if recv.is_end_stream() {
        full(Bytes::new())
    } else {
        boxed(H2Body::new(recv))
    };
    let request = Request::from_parts(parts, body);
    let sent = ingress
        .endpoints
        .send(&ingress.health, candidates, protocol, request, budget);
    let status = match sent.await {
        Ok(response) => {
            let response = observed(&ingress.observe, begun, done, response.map(boxed));
            return relay(response, respond).await;
        }
        Err(EndpointError::Unreachable(error)) => {
            info!(service = %key.1, namespace = %key.0, %error, "no endpoint for a request");
            refuse(ingress, &mut respond, Refusal::EndpointFailed)
        }
        Err(EndpointError::NotSent(error)) => {
            debug!(%error, "endpoint connection closed before the request went");
            refuse(ingress, &mut respond, Refusal::EndpointFailed)
        }
        Err(EndpointError::Failed(error)) => {
            debug!(%error, "endpoint failed a request it took; resetting the stream");
            respond.send_reset(h2::Reason::INTERNAL_ERROR);
            0
        }
    };
    ingress
        .observe
        .request_done(begun, RequestDone { status, ..done });
}

/// Streams an endpoint's response back on the request stream.
async fn relay(response: Response<Body>, mut respond: SendResponse<Bytes>) {
    let (mut parts, body) = response.into_parts();
    strip_hop_by_hop(&mut parts.headers);
    // No endpoint may pose as a gateway (a forged reason would make the
    // egress send a request that reached an endpoint elsewhere again).
    strip_gateway(&mut parts.headers);
    let end = body.is_end_stream();
    let mut head = Response::new(());
    *head.status_mut() = parts.status;
    *head.headers_mut() = parts.headers;
    let mut send = match respond.send_response(head, end) {
        Ok(send) => send,
        Err(error) => {
            debug!(%error, "request stream gone before the response");
            return;
        }
    };
    if !end && let Err(error) = send_body(body, &mut send).await {
        debug!(%error, "response body not relayed in full");
    }
}

/// Answers a request stream with `refusal`'s status and reason header;
/// returns the status.
fn refuse(ingress: &Ingress, respond: &mut SendResponse<Bytes>, refusal: Refusal) -> u16 {
    ingress.metrics.ingress_refused(refusal.as_str());
    let mut head = Response::new(());
    let status =
        StatusCode::from_u16(refusal.http_status()).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
    *head.status_mut() = status;
    let mut headers = HeaderMap::new();
    headers.insert(
        wire::REASON_HEADER,
        HeaderValue::from_static(refusal.as_str()),
    );
    *head.headers_mut() = headers;
    let _ = respond.send_response(head, true);
    status.as_u16()
}
