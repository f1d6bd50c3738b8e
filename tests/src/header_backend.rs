//! An HTTP backend that remembers the headers of every request it answers
//! (to see what trace context a gateway passed on), and a one-shot
//! HTTP/1.1 client that sends headers of its choosing.
//!
//! The backend runs on a runtime of its own; dropping it stops that
//! runtime and frees its port.

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;

/// What one request carried.
#[derive(Debug, Clone)]
pub struct SeenRequest {
    /// Its path.
    pub path: String,
    /// Its headers.
    pub headers: hyper::HeaderMap,
}

/// The backend: answers `<name>` to every request, HTTP/1.1 or h2c.
#[derive(Debug)]
pub struct HeaderBackend {
    seen: Arc<Mutex<Vec<SeenRequest>>>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl HeaderBackend {
    /// Listens on `addr` as `name`.
    ///
    /// # Panics
    /// When the address cannot be bound.
    pub fn start(addr: SocketAddr, name: &str) -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("a runtime for the backend");
        let listener = runtime
            .block_on(TcpListener::bind(addr))
            .unwrap_or_else(|e| panic!("HTTP backend bind {addr}: {e}"));
        let seen = Arc::new(Mutex::new(Vec::new()));
        runtime.spawn(accept(listener, name.to_owned(), seen.clone()));
        Self {
            seen,
            runtime: Some(runtime),
        }
    }

    /// The requests answered so far, in order.
    pub fn seen(&self) -> Vec<SeenRequest> {
        self.seen.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The last request to `path`, if any.
    pub fn last_to(&self, path: &str) -> Option<SeenRequest> {
        self.seen().into_iter().rev().find(|r| r.path == path)
    }
}

impl Drop for HeaderBackend {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

async fn accept(listener: TcpListener, name: String, seen: Arc<Mutex<Vec<SeenRequest>>>) {
    // Bounded by the runtime: it ends when the backend is dropped.
    loop {
        let Ok((conn, _)) = listener.accept().await else {
            continue;
        };
        let (name, seen) = (name.clone(), seen.clone());
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                seen.lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push(SeenRequest {
                        path: req.uri().path().to_owned(),
                        headers: req.headers().clone(),
                    });
                let body = Full::new(Bytes::from(name.clone()));
                async move { Ok::<_, std::convert::Infallible>(Response::new(body)) }
            });
            let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
            let _ = builder.serve_connection(TokioIo::new(conn), service).await;
        });
    }
}

/// One HTTP/1.1 GET of `path` at `addr` with `headers`, on a connection of
/// its own (`Connection: close`): (status, body).
///
/// # Errors
/// What failed: the connect, the write, a timeout, an answer that is not
/// HTTP.
pub fn get_with_headers(
    addr: SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
) -> Result<(u16, String), String> {
    let mut conn = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(3))
        .map_err(|e| format!("connect {addr}: {e}"))?;
    conn.set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(|e| e.to_string())?;
    let mut request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    conn.write_all(request.as_bytes())
        .map_err(|e| format!("write: {e}"))?;
    let mut answer = Vec::new();
    conn.read_to_end(&mut answer)
        .map_err(|e| format!("read: {e}"))?;
    let text = String::from_utf8_lossy(&answer);
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("not an HTTP answer: {text:?}"))?;
    let body = text
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_owned();
    Ok((status, body))
}
