//! The guard for plain-TCP gRPC ports without authentication (the admin
//! API on loopback): a connection counts as authenticated once it sent a
//! request, so idle connections are capped and closed while a `fedctl`
//! call, and a long watch it keeps open, are never limited.
//!
//! Data flow: [`guarded_tcp`] admits each accepted connection under the
//! guard; [`MarkRequestsLayer`] sees each request's remote address (the
//! connect info tonic puts in its extensions) and lifts the limits from
//! its connection.

use std::net::SocketAddr;
use std::task::{Context, Poll};

use tokio::net::{TcpListener, TcpStream};
use tokio_stream::{Stream, StreamExt, wrappers::TcpListenerStream};
use tonic::codegen::http;
use tonic::transport::server::TcpConnectInfo;

use super::{Guarded, Unauthenticated};

/// The accepted connections of `listener`, each under `guard` until it
/// sends a request; a connection the guard has no place for is dropped.
pub fn guarded_tcp(
    listener: TcpListener,
    guard: Unauthenticated,
) -> impl Stream<Item = std::io::Result<Guarded<TcpStream>>> {
    TcpListenerStream::new(listener).filter_map(move |accepted| match accepted {
        Ok(stream) => {
            let remote = stream.peer_addr().ok()?;
            guard.admit(stream, remote, false).ok().map(Ok)
        }
        Err(error) => Some(Err(error)),
    })
}

/// Marks a connection authenticated at its first request.
#[derive(Debug, Clone)]
pub struct MarkRequestsLayer {
    guard: Unauthenticated,
}

impl MarkRequestsLayer {
    /// Marks connections of `guard`.
    pub fn new(guard: Unauthenticated) -> Self {
        Self { guard }
    }
}

impl<S> tower::Layer<S> for MarkRequestsLayer {
    type Service = MarkRequests<S>;

    fn layer(&self, inner: S) -> Self::Service {
        MarkRequests {
            inner,
            guard: self.guard.clone(),
        }
    }
}

/// The service of [`MarkRequestsLayer`].
#[derive(Debug, Clone)]
pub struct MarkRequests<S> {
    inner: S,
    guard: Unauthenticated,
}

impl<S, B> tower::Service<http::Request<B>> for MarkRequests<S>
where
    S: tower::Service<http::Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let remote: Option<SocketAddr> = request
            .extensions()
            .get::<TcpConnectInfo>()
            .and_then(TcpConnectInfo::remote_addr);
        if let Some(remote) = remote {
            self.guard.mark_authenticated(remote);
        }
        self.inner.call(request)
    }
}
