//! [`Endpoints`]: pooled HTTP connections to this cluster's endpoints,
//! shared by the ingress (requests from peers) and the egress (requests
//! of this cluster's clients served locally).
//!
//! A request goes to a random ready endpoint that is not ejected: on an
//! idle pooled connection to it when there is one (HTTP/1.1: one request
//! at a time per connection; h2c: one multiplexed connection), or else on
//! a new connection dialed by the shared endpoint loop ([`crate::dial`]),
//! which tries the next endpoint when one refuses and feeds each result to
//! the endpoint's outlier record, as the TCP path does. Answers feed it
//! too: a 5xx counts as a failure, any other status as a success, so
//! consecutive 5xx from one endpoint eject it (L7 circuit breaking). Nothing of the
//! request is sent before a connection is up, so a failed dial loses no
//! body.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use fedmesh_proto::app_protocol::AppProtocol;
use http::{Request, Response, Uri, header};
use hyper::body::Incoming;
use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tracing::debug;

use super::Body;
use crate::dial;
use crate::error::AttemptError;
use crate::health::Health;
use crate::select::Rng;

/// Idle connections kept per endpoint; more are closed when they finish.
const IDLE_PER_ENDPOINT: usize = 64;

/// Endpoints remembered before those with no open connection are forgotten.
const MAX_ENDPOINTS: usize = 4096;

/// Why a request did not get a response from an endpoint.
#[derive(Debug, thiserror::Error)]
pub(crate) enum EndpointError {
    /// No endpoint could be reached; nothing was sent.
    #[error("no endpoint reached: {0}")]
    Unreachable(#[source] AttemptError),
    /// The connection ended before the request was written; nothing was
    /// sent, but the body was used.
    #[error("the endpoint connection closed before the request went: {0}")]
    NotSent(#[source] hyper::Error),
    /// The request may have reached the endpoint, which gave no response.
    #[error("the endpoint gave no response: {0}")]
    Failed(#[source] hyper::Error),
}

/// One pooled connection.
#[derive(Debug)]
enum Sender {
    H1(http1::SendRequest<Body>),
    H2(http2::SendRequest<Body>),
}

impl Sender {
    fn is_closed(&self) -> bool {
        match self {
            Sender::H1(s) => s.is_closed(),
            Sender::H2(s) => s.is_closed(),
        }
    }

    fn is_ready(&self) -> bool {
        match self {
            Sender::H1(s) => s.is_ready(),
            Sender::H2(s) => s.is_ready(),
        }
    }
}

/// The endpoint connection pool.
#[derive(Debug, Default)]
pub struct Endpoints {
    idle: Mutex<HashMap<(SocketAddr, bool), Vec<Sender>>>,
}

impl Endpoints {
    /// An empty pool.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sends `request` to one of `candidates` (`protocol` says HTTP/1.1 or
    /// h2c), dialing within `budget` when no pooled connection is idle.
    ///
    /// # Errors
    /// Whether anything was sent ([`EndpointError`]).
    pub(crate) async fn send(
        &self,
        health: &Health,
        candidates: &[SocketAddr],
        protocol: AppProtocol,
        request: Request<Body>,
        budget: Duration,
    ) -> Result<Response<Incoming>, EndpointError> {
        let h2 = protocol.endpoint_h2();
        let (sender, addr) = match self.pooled(health, candidates, h2) {
            Some(found) => found,
            None => self.connect(health, candidates, h2, budget).await?,
        };
        let request = for_endpoint(request, h2);
        let (result, sender) = match sender {
            Sender::H1(mut s) => (s.send_request(request).await, Sender::H1(s)),
            Sender::H2(mut s) => (s.send_request(request).await, Sender::H2(s)),
        };
        match result {
            Ok(response) => {
                // HTTP/1.1: ready again once this response's body is read.
                self.checkin(addr, h2, sender);
                // Consecutive 5xx answers eject the endpoint as failed
                // dials do (`outlierDetection.consecutiveFailures`); any
                // other answer ends the run.
                let ok = !response.status().is_server_error();
                if health.endpoint_result(addr, ok, candidates, Instant::now()) {
                    debug!(endpoint = %addr, "endpoint ejected after consecutive 5xx answers");
                }
                Ok(response)
            }
            Err(error) => {
                health.endpoint_result(addr, false, candidates, Instant::now());
                debug!(endpoint = %addr, %error, "endpoint request failed");
                if error.is_canceled() {
                    Err(EndpointError::NotSent(error))
                } else {
                    Err(EndpointError::Failed(error))
                }
            }
        }
    }

    /// An idle connection to a random non-ejected candidate, if it has one.
    fn pooled(
        &self,
        health: &Health,
        candidates: &[SocketAddr],
        h2: bool,
    ) -> Option<(Sender, SocketAddr)> {
        let now = Instant::now();
        let usable: Vec<&SocketAddr> = candidates
            .iter()
            .filter(|a| !health.endpoint_ejected(a, now))
            .collect();
        let pick = usable.len() as f64 * Rng::new().unit();
        let addr = **usable.get((pick as usize).min(usable.len().checked_sub(1)?))?;
        let mut idle = self.lock();
        let list = idle.get_mut(&(addr, h2))?;
        list.retain(|s| !s.is_closed());
        let at = list.iter().position(Sender::is_ready)?;
        let sender = match &list[at] {
            // One h2c connection carries every request: it stays pooled.
            Sender::H2(s) => Sender::H2(s.clone()),
            Sender::H1(_) => list.swap_remove(at),
        };
        Some((sender, addr))
    }

    /// A new connection to one of `candidates`.
    async fn connect(
        &self,
        health: &Health,
        candidates: &[SocketAddr],
        h2: bool,
        budget: Duration,
    ) -> Result<(Sender, SocketAddr), EndpointError> {
        let (stream, addr) = dial::dial_for_requests(health, candidates, budget)
            .await
            .map_err(EndpointError::Unreachable)?;
        let io = TokioIo::new(stream);
        let handshake_failed = |source: hyper::Error| {
            EndpointError::Unreachable(AttemptError::Connect {
                addr: addr.to_string(),
                source: std::io::Error::other(source),
            })
        };
        let sender = if h2 {
            let (send, conn) = http2::handshake(TokioExecutor::new(), io)
                .await
                .map_err(handshake_failed)?;
            tokio::spawn(async move {
                if let Err(error) = conn.await {
                    debug!(endpoint = %addr, %error, "h2c endpoint connection ended");
                }
            });
            Sender::H2(send)
        } else {
            let (send, conn) = http1::handshake(io).await.map_err(handshake_failed)?;
            tokio::spawn(async move {
                if let Err(error) = conn.await {
                    debug!(endpoint = %addr, %error, "endpoint connection ended");
                }
            });
            Sender::H1(send)
        };
        if h2 {
            // Pooled at once: concurrent requests share it.
            if let Sender::H2(s) = &sender {
                self.checkin(addr, true, Sender::H2(s.clone()));
            }
        }
        Ok((sender, addr))
    }

    /// Keeps `sender` for the next request to `addr`.
    fn checkin(&self, addr: SocketAddr, h2: bool, sender: Sender) {
        if sender.is_closed() {
            return;
        }
        let mut idle = self.lock();
        if idle.len() > MAX_ENDPOINTS {
            // Endpoints come and go: forget those with nothing open.
            idle.retain(|_, list| {
                list.retain(|s| !s.is_closed());
                !list.is_empty()
            });
        }
        let list = idle.entry((addr, h2)).or_default();
        list.retain(|s| !s.is_closed());
        let already = h2 && !list.is_empty();
        if !already && list.len() < IDLE_PER_ENDPOINT {
            list.push(sender);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(SocketAddr, bool), Vec<Sender>>> {
        // A map of connection handles: a poisoned lock is still consistent.
        self.idle.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The request as an endpoint gets it: HTTP/1.1 in origin form with the
/// client's authority as `Host` (RFC 9112 §3.2); h2c with the absolute URI
/// as it came (RFC 9113 §8.3.1).
fn for_endpoint(mut request: Request<Body>, h2: bool) -> Request<Body> {
    if h2 {
        *request.version_mut() = http::Version::HTTP_2;
        return request;
    }
    *request.version_mut() = http::Version::HTTP_11;
    if let Some(authority) = request.uri().authority().cloned()
        && !request.headers().contains_key(header::HOST)
        && let Ok(host) = http::HeaderValue::from_str(authority.as_str())
    {
        request.headers_mut().insert(header::HOST, host);
    }
    let path = request
        .uri()
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_owned();
    if let Ok(origin) = path.parse::<Uri>() {
        *request.uri_mut() = origin;
    }
    request
}

#[cfg(test)]
mod tests;
