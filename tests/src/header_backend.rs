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

use crate::serve;
use bytes::Bytes;
use http_body_util::Full;
use hyper::{Request, Response};
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
        let (runtime, listener) = serve::bind(addr, "HTTP backend");
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
    serve::serve_http(listener, move |req: Request<hyper::body::Incoming>| {
        seen.lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(SeenRequest {
                path: req.uri().path().to_owned(),
                headers: req.headers().clone(),
            });
        let body = Full::new(Bytes::from(name.clone()));
        std::future::ready(Response::new(body))
    })
    .await;
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
