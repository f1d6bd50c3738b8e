//! The acceptor side: the `Peering` gRPC service. Join is served to anyone
//! holding a valid token; Sync only to a peer's control plane, identified by
//! its client certificate (already verified against that peer's root by the
//! TLS layer; here it is mapped to the peer's name).
//!
//! Join runs before any authentication, so [`JoinLimitLayer`] caps its
//! message size and how many run at once; Sync keeps its large limit.

use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;

use fedmesh_proto::identity::identify_peer;
use fedmesh_proto::v1::{self, peering_server::Peering};
use tokio::sync::{Semaphore, mpsc};
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::{Stream, StreamExt};
use tonic::body::Body;
use tonic::{Request, Response, Status, Streaming};
use tracing::{Instrument, info, info_span};

use super::handles::PeeringHandles;
use super::{join, session};

/// The `Peering` service.
#[derive(Debug, Clone)]
pub struct PeeringService {
    h: PeeringHandles,
}

impl PeeringService {
    /// A service over the control plane's state.
    pub fn new(h: PeeringHandles) -> Self {
        Self { h }
    }
}

type SyncStream = Pin<Box<dyn Stream<Item = Result<v1::SyncMessage, Status>> + Send>>;

#[tonic::async_trait]
impl Peering for PeeringService {
    async fn join(
        &self,
        request: Request<v1::JoinRequest>,
    ) -> Result<Response<v1::JoinResponse>, Status> {
        let remote = request.remote_addr();
        let span = info_span!("join", remote = ?remote);
        join::accept(&self.h, request.into_inner())
            .instrument(span)
            .await
            .map(Response::new)
    }

    type SyncStream = SyncStream;

    async fn sync(
        &self,
        request: Request<Streaming<v1::SyncMessage>>,
    ) -> Result<Response<SyncStream>, Status> {
        let peer = authenticate(&self.h, &request)?;
        let inbound = request.into_inner();
        let (tx, rx) = mpsc::channel(64);
        let Some((id, kill)) = self.h.peers.open_session(&peer, tx.clone()) else {
            return Err(Status::permission_denied(format!(
                "{peer} is not a peer of {}",
                self.h.me.name
            )));
        };
        info!(%peer, session = id, "peering stream accepted");
        let span = info_span!("session", %peer, session = id);
        tokio::spawn(session::run(self.h.clone(), peer, id, inbound, tx, kill).instrument(span));
        let outbound = ReceiverStream::new(rx).map(Ok);
        Ok(Response::new(Box::pin(outbound)))
    }
}

/// The peer cluster behind a request's client certificate.
fn authenticate<T>(h: &PeeringHandles, request: &Request<T>) -> Result<String, Status> {
    let certs = request.peer_certs().ok_or_else(|| {
        Status::unauthenticated(
            "this call needs the client certificate of a peer cluster's control plane; join first with `fedctl join`",
        )
    })?;
    let leaf = certs
        .first()
        .ok_or_else(|| Status::unauthenticated("empty client certificate chain"))?;
    let (peer, id) = identify_peer(&h.peers.trust().snapshot(), leaf)
        .map_err(|e| Status::permission_denied(e.to_string()))?;
    if !id.is_control() {
        return Err(Status::permission_denied(format!(
            "{id} is not a control plane identity; only control planes open peering streams"
        )));
    }
    Ok(peer.cluster)
}

/// The largest Join request decoded. A real one carries a token, a CA root
/// PEM (about 700 bytes) and a few names: a few KiB. Join is served before
/// any authentication, so the authenticated Sync stream's 64 MiB limit
/// must not apply to it.
pub const MAX_JOIN_MESSAGE: usize = 64 << 10;

/// How many Join calls are decoded and served at once; more are refused
/// at once rather than queued.
pub const MAX_CONCURRENT_JOINS: usize = 16;

/// The gRPC path of `Peering/Join`.
const JOIN_PATH: &str = "/fedmesh.v1.Peering/Join";

/// Limits the unauthenticated Join call (size and concurrency) in front of
/// the `Peering` service; every other call passes through untouched.
#[derive(Debug, Clone)]
pub struct JoinLimitLayer {
    joins: Arc<Semaphore>,
}

impl JoinLimitLayer {
    /// At most `concurrent` Join calls at once.
    pub fn new(concurrent: usize) -> Self {
        Self {
            joins: Arc::new(Semaphore::new(concurrent)),
        }
    }
}

impl<S> tower::Layer<S> for JoinLimitLayer {
    type Service = JoinLimit<S>;

    fn layer(&self, inner: S) -> JoinLimit<S> {
        JoinLimit {
            inner,
            joins: self.joins.clone(),
        }
    }
}

/// The service [`JoinLimitLayer`] builds.
#[derive(Debug, Clone)]
pub struct JoinLimit<S> {
    inner: S,
    joins: Arc<Semaphore>,
}

type BoxFuture<T, E> = Pin<Box<dyn Future<Output = Result<T, E>> + Send>>;

impl<S> tower::Service<http::Request<Body>> for JoinLimit<S>
where
    S: tower::Service<http::Request<Body>, Response = http::Response<Body>>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = S::Error;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, cx: &mut std::task::Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        if request.uri().path() != JOIN_PATH {
            return Box::pin(self.inner.call(request));
        }
        let Ok(permit) = self.joins.clone().try_acquire_owned() else {
            let busy = Status::resource_exhausted(
                "too many joins at once on this cluster; retry `fedctl join` in a few seconds",
            );
            return Box::pin(std::future::ready(Ok(busy.into_http())));
        };
        let request = request.map(|body| Body::new(Capped::new(body, MAX_JOIN_MESSAGE)));
        // `call` after `poll_ready` on this clone is tower's usual pattern
        // for a service moved into a future.
        let mut inner = self.inner.clone();
        std::mem::swap(&mut inner, &mut self.inner);
        Box::pin(async move {
            let response = inner.call(request).await;
            drop(permit);
            response
        })
    }
}

/// A request body that fails with `RESOURCE_EXHAUSTED` past `limit` bytes,
/// so an oversized message is refused before it is buffered whole.
struct Capped {
    inner: Body,
    left: usize,
}

impl Capped {
    fn new(inner: Body, limit: usize) -> Self {
        Self { inner, left: limit }
    }
}

impl http_body::Body for Capped {
    type Data = bytes::Bytes;
    type Error = Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<bytes::Bytes>, Status>>> {
        let frame = match Pin::new(&mut self.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => frame,
            Poll::Ready(Some(Err(status))) => return Poll::Ready(Some(Err(status))),
            Poll::Ready(None) => return Poll::Ready(None),
            Poll::Pending => return Poll::Pending,
        };
        let len = frame.data_ref().map_or(0, bytes::Bytes::len);
        if len > self.left {
            return Poll::Ready(Some(Err(Status::resource_exhausted(format!(
                "join request larger than {MAX_JOIN_MESSAGE} bytes; a join carries a token, a CA root and a few names"
            )))));
        }
        self.left -= len;
        Poll::Ready(Some(Ok(frame)))
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }
}

#[cfg(test)]
mod tests;
