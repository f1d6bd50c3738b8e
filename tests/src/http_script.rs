//! A scripted HTTP backend and a header-aware keep-alive client, for the
//! tests of route policies (retries, timeouts, faults, header filters).
//!
//! The backend answers by path, so one backend plays every part:
//! `/fail-once/...` answers 503 to the first request for that exact path
//! and 200 after; `/grpc-unavailable-once/...` answers as a gRPC server
//! would, first a trailers-only UNAVAILABLE (`grpc-status: 14` in the
//! headers of a 200), then `grpc-status: 0`; `/sleep/<ms>/...` waits
//! `<ms>` before a 200; `/stream/<ms>/...` sends its head and a first
//! chunk at once and ends the body `<ms>` later; anything else is a 200 at
//! once. Every 200 has the backend's name as its body
//! and echoes the request's `x-policy` header as `x-saw-policy`. Each
//! request's path is recorded, so a test can say which ones it saw.
//!
//! Like [`crate::HttpBackend`], it runs on its own runtime; dropping it
//! closes the listener and every connection at once.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::serve;
use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Empty, Full, StreamBody};
use hyper::header::{HOST, HeaderMap, HeaderName, HeaderValue};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};

/// How long one client request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// The longest `/sleep/<ms>` honoured, so a typo cannot hang a test.
const MAX_SLEEP: Duration = Duration::from_secs(10);

/// A response body of the backend.
type Reply = Response<BoxBody<Bytes, std::convert::Infallible>>;

/// What the backend has seen.
#[derive(Debug, Default)]
struct Seen {
    paths: Vec<String>,
    failed_once: HashSet<String>,
}

/// An HTTP/1.1 and h2c backend that answers by path (module docs).
#[derive(Debug)]
pub struct ScriptedBackend {
    seen: Arc<Mutex<Seen>>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl ScriptedBackend {
    /// Listens on `addr` as `name`.
    ///
    /// # Panics
    /// When the address cannot be bound.
    pub fn start(addr: SocketAddr, name: &str) -> Self {
        let (runtime, listener) = serve::bind(addr, "scripted backend");
        let seen = Arc::new(Mutex::new(Seen::default()));
        runtime.spawn(accept(listener, name.to_string(), seen.clone()));
        Self {
            seen,
            runtime: Some(runtime),
        }
    }

    /// How many requests it saw whose path starts with `prefix`.
    pub fn seen(&self, prefix: &str) -> usize {
        let seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        seen.paths.iter().filter(|p| p.starts_with(prefix)).count()
    }
}

impl Drop for ScriptedBackend {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

async fn accept(listener: TcpListener, name: String, seen: Arc<Mutex<Seen>>) {
    serve::serve_http(listener, move |req| {
        let (name, seen) = (name.clone(), seen.clone());
        async move { answer(req, &name, &seen).await }
    })
    .await;
}

/// The script: see the module docs.
async fn answer(req: Request<hyper::body::Incoming>, name: &str, seen: &Mutex<Seen>) -> Reply {
    let path = req.uri().path().to_string();
    let grpc = path.starts_with("/grpc-unavailable-once/");
    let first_failure = {
        let mut seen = seen.lock().unwrap_or_else(|p| p.into_inner());
        seen.paths.push(path.clone());
        (grpc || path.starts_with("/fail-once/")) && seen.failed_once.insert(path.clone())
    };
    if grpc {
        return grpc_answer(name, first_failure).map(BodyExt::boxed);
    }
    if first_failure {
        let mut r = Response::new(Full::new(Bytes::from_static(b"failing once")).boxed());
        *r.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
        return r;
    }
    if let Some(ms) = millis(&path, "/sleep/") {
        tokio::time::sleep(ms).await;
    }
    if let Some(ms) = millis(&path, "/stream/") {
        return Response::new(streamed(name, ms));
    }
    let policy = req.headers().get("x-policy").cloned();
    let mut r = Response::new(Full::new(Bytes::from(name.to_string())).boxed());
    if let Some(value) = policy {
        r.headers_mut().insert("x-saw-policy", value);
    }
    r
}

/// The `<ms>` of a path `<prefix><ms>/...`, at most [`MAX_SLEEP`].
fn millis(path: &str, prefix: &str) -> Option<Duration> {
    let ms = path.strip_prefix(prefix)?.split('/').next()?.parse().ok()?;
    Some(Duration::from_millis(ms).min(MAX_SLEEP))
}

/// `name` at once, then the end of the body after `wait`.
fn streamed(name: &str, wait: Duration) -> BoxBody<Bytes, std::convert::Infallible> {
    let first = Bytes::from(name.to_string());
    let frames = async_stream(first, wait);
    StreamBody::new(frames).boxed()
}

/// A stream of one data frame now and a last empty one after `wait`.
fn async_stream(
    first: Bytes,
    wait: Duration,
) -> impl tokio_stream::Stream<Item = Result<hyper::body::Frame<Bytes>, std::convert::Infallible>> {
    use tokio_stream::StreamExt;
    let now = tokio_stream::once(Ok(hyper::body::Frame::data(first)));
    let later = tokio_stream::once(Ok(hyper::body::Frame::data(Bytes::new()))).then(
        move |frame| async move {
            tokio::time::sleep(wait).await;
            frame
        },
    );
    now.chain(later)
}

/// A gRPC answer with its status in the headers: UNAVAILABLE (14) as a
/// trailers-only response when `unavailable`, else OK with `name`.
fn grpc_answer(name: &str, unavailable: bool) -> Response<Full<Bytes>> {
    let (status, body) = if unavailable {
        ("14", Bytes::new())
    } else {
        ("0", Bytes::from(name.to_string()))
    };
    let mut r = Response::new(Full::new(body));
    let headers = r.headers_mut();
    headers.insert(
        hyper::header::CONTENT_TYPE,
        HeaderValue::from_static("application/grpc"),
    );
    headers.insert("grpc-status", HeaderValue::from_static(status));
    r
}

/// One answer: status, headers and body as text.
#[derive(Debug, Clone)]
pub struct Answer {
    /// The status code.
    pub status: u16,
    /// The response headers.
    pub headers: HeaderMap,
    /// The body, as text.
    pub body: String,
}

impl Answer {
    /// A response header's value as text, if present.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// An HTTP/1.1 keep-alive client that sends request headers and returns
/// response headers.
pub struct HeaderClient {
    runtime: tokio::runtime::Runtime,
    sender: hyper::client::conn::http1::SendRequest<Empty<Bytes>>,
    authority: String,
}

impl std::fmt::Debug for HeaderClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HeaderClient")
            .field("authority", &self.authority)
            .finish_non_exhaustive()
    }
}

impl HeaderClient {
    /// Connects to `addr`.
    ///
    /// # Errors
    /// What failed: the connect or the handshake.
    pub fn connect(addr: SocketAddr) -> Result<Self, String> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?;
        let sender = runtime.block_on(async {
            let tcp = tokio::time::timeout(REQUEST_TIMEOUT, TcpStream::connect(addr))
                .await
                .map_err(|_| format!("connect {addr}: timed out"))?
                .map_err(|e| format!("connect {addr}: {e}"))?;
            let (send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
                .await
                .map_err(|e| format!("HTTP/1.1 handshake: {e}"))?;
            tokio::spawn(conn);
            Ok::<_, String>(send)
        })?;
        Ok(Self {
            runtime,
            sender,
            authority: addr.to_string(),
        })
    }

    /// One GET of `path` with `headers` on the connection.
    ///
    /// # Errors
    /// What failed (a bad header, the connection closed, a timeout).
    pub fn get(&mut self, path: &str, headers: &[(&str, &str)]) -> Result<Answer, String> {
        let mut request = Request::get(path)
            .header(HOST, &self.authority)
            .body(Empty::new())
            .map_err(|e| e.to_string())?;
        for (name, value) in headers {
            let name = HeaderName::from_bytes(name.as_bytes()).map_err(|e| e.to_string())?;
            let value = HeaderValue::from_str(value).map_err(|e| e.to_string())?;
            request.headers_mut().append(name, value);
        }
        let sender = &mut self.sender;
        self.runtime.block_on(async move {
            let answer = async {
                sender
                    .ready()
                    .await
                    .map_err(|e| format!("not ready: {e}"))?;
                let response = sender
                    .send_request(request)
                    .await
                    .map_err(|e| format!("request: {e}"))?;
                let (parts, body) = response.into_parts();
                let body = body
                    .collect()
                    .await
                    .map_err(|e| format!("body: {e}"))?
                    .to_bytes();
                Ok(Answer {
                    status: parts.status.as_u16(),
                    headers: parts.headers,
                    body: String::from_utf8_lossy(&body).into_owned(),
                })
            };
            tokio::time::timeout(REQUEST_TIMEOUT, answer)
                .await
                .map_err(|_| "timed out".to_string())?
        })
    }
}
