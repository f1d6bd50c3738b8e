//! HTTP for the harness, built on hyper: a backend that answers every
//! request with its name (HTTP/1.1 and h2c, told apart by the preface),
//! and clients that hold one connection for many requests (HTTP/1.1
//! keep-alive, HTTP/2 with prior knowledge), so that tests see how a
//! gateway balances and fails over the requests of one connection.
//!
//! The backend runs on a runtime of its own; dropping it stops that
//! runtime, which closes its listener and every open connection at once
//! (what a killed process does to its peers).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use crate::serve;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::{TcpListener, TcpStream};

/// How long one client request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// An HTTP backend that answers `<name>` to every request.
#[derive(Debug)]
pub struct HttpBackend {
    addr: SocketAddr,
    seen: Arc<AtomicUsize>,
    seen_h2: Arc<AtomicUsize>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl HttpBackend {
    /// Listens on `addr` as `name`.
    ///
    /// # Panics
    /// When the address cannot be bound.
    pub fn start(addr: SocketAddr, name: &str) -> Self {
        let (runtime, listener) = serve::bind(addr, "HTTP backend");
        let seen = Arc::new(AtomicUsize::new(0));
        let seen_h2 = Arc::new(AtomicUsize::new(0));
        let counts = (seen.clone(), seen_h2.clone());
        runtime.spawn(accept(listener, name.to_string(), counts));
        Self {
            addr,
            seen,
            seen_h2,
            runtime: Some(runtime),
        }
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Requests it answered so far.
    pub fn seen(&self) -> usize {
        self.seen.load(Ordering::Relaxed)
    }

    /// Of those, the ones that came over HTTP/2.
    pub fn seen_h2(&self) -> usize {
        self.seen_h2.load(Ordering::Relaxed)
    }
}

impl Drop for HttpBackend {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// Requests answered, and of those over HTTP/2.
type Counts = (Arc<AtomicUsize>, Arc<AtomicUsize>);

async fn accept(listener: TcpListener, name: String, counts: Counts) {
    serve::serve_http(listener, move |req: Request<hyper::body::Incoming>| {
        let (seen, seen_h2) = &counts;
        seen.fetch_add(1, Ordering::Relaxed);
        if req.version() == hyper::Version::HTTP_2 {
            seen_h2.fetch_add(1, Ordering::Relaxed);
        }
        // Trailers as gRPC sends its status (HTTP/2 only: HTTP/1.1
        // drops them unless the client asked with `TE: trailers`).
        let mut trailers = hyper::HeaderMap::new();
        trailers.insert("grpc-status", hyper::header::HeaderValue::from_static("0"));
        if let Ok(by) = hyper::header::HeaderValue::from_str(&name) {
            trailers.insert("x-served-by", by);
        }
        let trailers = std::future::ready(Some(Ok(trailers)));
        let name = name.clone();
        async move {
            // A request with a body is answered `<name> <body>`.
            let got = req.into_body().collect().await.map(|b| b.to_bytes());
            let text = match got {
                Ok(body) if !body.is_empty() => {
                    format!("{name} {}", String::from_utf8_lossy(&body))
                }
                _ => name,
            };
            Response::new(Full::new(Bytes::from(text)).with_trailers(trailers))
        }
    })
    .await;
}

/// Which HTTP a [`KeepAliveClient`] speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    /// HTTP/1.1 with keep-alive.
    Http1,
    /// HTTP/2 with prior knowledge (h2c).
    H2c,
}

/// A client request body.
type ClientBody = http_body_util::combinators::BoxBody<Bytes, std::convert::Infallible>;

enum Sender {
    H1(hyper::client::conn::http1::SendRequest<ClientBody>),
    H2(hyper::client::conn::http2::SendRequest<ClientBody>),
}

/// One client connection that sends request after request on it.
pub struct KeepAliveClient {
    runtime: tokio::runtime::Runtime,
    sender: Sender,
    authority: String,
}

impl std::fmt::Debug for KeepAliveClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeepAliveClient")
            .field("authority", &self.authority)
            .finish_non_exhaustive()
    }
}

impl KeepAliveClient {
    /// Connects to `addr` and does the `flavor` handshake.
    ///
    /// # Errors
    /// What failed: the connect or the handshake.
    pub fn connect(addr: SocketAddr, flavor: Flavor) -> Result<Self, String> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?;
        let sender = runtime.block_on(async {
            let tcp = tokio::time::timeout(REQUEST_TIMEOUT, TcpStream::connect(addr))
                .await
                .map_err(|_| format!("connect {addr}: timed out"))?
                .map_err(|e| format!("connect {addr}: {e}"))?;
            let io = TokioIo::new(tcp);
            match flavor {
                Flavor::Http1 => {
                    let (send, conn) = hyper::client::conn::http1::handshake(io)
                        .await
                        .map_err(|e| format!("HTTP/1.1 handshake: {e}"))?;
                    tokio::spawn(conn);
                    Ok::<_, String>(Sender::H1(send))
                }
                Flavor::H2c => {
                    let (send, conn) =
                        hyper::client::conn::http2::handshake(TokioExecutor::new(), io)
                            .await
                            .map_err(|e| format!("h2c handshake: {e}"))?;
                    tokio::spawn(conn);
                    Ok(Sender::H2(send))
                }
            }
        })?;
        Ok(Self {
            runtime,
            sender,
            authority: addr.to_string(),
        })
    }

    /// One GET of `path` on the connection: (status, body).
    ///
    /// # Errors
    /// What failed (the connection closed, a timeout, a bad body).
    pub fn get(&mut self, path: &str) -> Result<(u16, String), String> {
        self.get_with_trailers(path)
            .map(|(status, body, _)| (status, body))
    }

    /// One GET of `path`: (status, body, trailers if any).
    ///
    /// # Errors
    /// What failed (the connection closed, a timeout, a bad body).
    pub fn get_with_trailers(
        &mut self,
        path: &str,
    ) -> Result<(u16, String, Option<hyper::HeaderMap>), String> {
        let request = Request::get(format!("http://{}{path}", self.authority))
            .header(hyper::header::HOST, &self.authority)
            .body(Full::new(Bytes::new()).boxed())
            .map_err(|e| e.to_string())?;
        self.send(request, path)
    }

    /// One POST of `chunks` to `path`, streamed with no length given
    /// (HTTP/1.1: chunked; HTTP/2: no `content-length`): (status, body).
    ///
    /// # Errors
    /// What failed (the connection closed, a timeout, a bad body).
    pub fn post_streamed(&mut self, path: &str, chunks: &[&str]) -> Result<(u16, String), String> {
        let frames: Vec<Result<hyper::body::Frame<Bytes>, std::convert::Infallible>> = chunks
            .iter()
            .map(|c| Ok(hyper::body::Frame::data(Bytes::from(c.to_string()))))
            .collect();
        let body = http_body_util::StreamBody::new(tokio_stream::iter(frames)).boxed();
        let request = Request::post(format!("http://{}{path}", self.authority))
            .header(hyper::header::HOST, &self.authority)
            .body(body)
            .map_err(|e| e.to_string())?;
        self.send(request, path)
            .map(|(status, body, _)| (status, body))
    }

    fn send(
        &mut self,
        request: Request<ClientBody>,
        path: &str,
    ) -> Result<(u16, String, Option<hyper::HeaderMap>), String> {
        let sender = &mut self.sender;
        self.runtime.block_on(async move {
            let answer = async {
                let response = match sender {
                    Sender::H1(s) => {
                        s.ready().await.map_err(|e| format!("not ready: {e}"))?;
                        let mut request = request;
                        // HTTP/1.1 origin form (RFC 9112 §3.2.1).
                        *request.uri_mut() = path.parse().map_err(|e| format!("{e}"))?;
                        s.send_request(request).await
                    }
                    Sender::H2(s) => s.send_request(request).await,
                }
                .map_err(|e| format!("request: {e}"))?;
                let status = response.status().as_u16();
                let collected = response
                    .into_body()
                    .collect()
                    .await
                    .map_err(|e| format!("body: {e}"))?;
                let trailers = collected.trailers().cloned();
                let body = collected.to_bytes();
                Ok((
                    status,
                    String::from_utf8_lossy(&body).into_owned(),
                    trailers,
                ))
            };
            tokio::time::timeout(REQUEST_TIMEOUT, answer)
                .await
                .map_err(|_| "timed out".to_string())?
        })
    }
}
