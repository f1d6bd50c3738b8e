//! The admin port (`gateway.adminListen`): `/metrics` (Prometheus text),
//! `/ready` (200 once the gateway has a certificate and a snapshot and is
//! not draining), `/live` (200 while the process serves).
//!
//! The port has no authentication, so load on it is bounded
//! ([`ADMIN_LIMITS`]): at most 64 connections, the oldest closed to admit a
//! newcomer (a scrape gets in while idle connections hold every place), 10 s
//! of silence or 30 s in all per connection, 5 s to send a request's
//! headers (a slow writer is closed).
//!
//! `/metrics` speaks both text formats: OpenMetrics when the scrape's
//! `Accept` asks for `application/openmetrics-text` (as Prometheus does),
//! the classic `text/plain; version=0.0.4` otherwise ([`metrics_format`]).

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use fedmesh_proto::transport::{ListenerLimits, Unauthenticated};
use http_body_util::Full;
use hyper::body::Bytes;
use hyper::header::{ACCEPT, CONTENT_TYPE, HeaderValue};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tracing::debug;

use crate::metrics::Metrics;

/// What the admin port reports.
#[derive(Debug, Default)]
pub struct AdminState {
    /// Ready to serve traffic.
    pub ready: AtomicBool,
}

/// The bounds on admin connections (see the module doc).
pub const ADMIN_LIMITS: ListenerLimits = ListenerLimits {
    handshake_timeout: Duration::from_secs(10),
    idle_timeout: Duration::from_secs(10),
    unauthenticated_lifetime: Duration::from_secs(30),
    max_unauthenticated: 64,
};
/// How long a client may take to send a request's headers.
const HEADER_TIMEOUT: Duration = Duration::from_secs(5);

/// Serves the admin port forever.
pub async fn serve(listener: TcpListener, metrics: Arc<Metrics>, state: Arc<AdminState>) {
    let guard = Unauthenticated::evicting(ADMIN_LIMITS);
    loop {
        let (stream, remote) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(error) => {
                // Out of file descriptors, say: wait instead of spinning.
                debug!(%error, "admin accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(stream) = guard.admit(stream, remote, false) else {
            continue;
        };
        let metrics = metrics.clone();
        let state = state.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                let accept = req.headers().get(ACCEPT).and_then(|v| v.to_str().ok());
                let reply = answer(req.uri().path(), accept, &metrics, &state);
                async move { Ok::<_, Infallible>(reply) }
            });
            if let Err(error) = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                debug!(%error, "admin connection ended");
            }
        });
    }
}

/// The format a scrape with this `Accept` header gets (RFC 9110 §12.5.1
/// q-values; shared with the control plane's web port).
pub use fedmesh_proto::metrics_text::negotiate as metrics_format;

fn answer(
    path: &str,
    accept: Option<&str>,
    metrics: &Metrics,
    state: &AdminState,
) -> Response<Full<Bytes>> {
    let (code, body, content_type) = match path {
        "/metrics" => {
            let format = metrics_format(accept);
            (
                StatusCode::OK,
                metrics.encode(format),
                format.content_type(),
            )
        }
        "/live" => (StatusCode::OK, "live\n".to_string(), "text/plain"),
        "/ready" if state.ready.load(Ordering::Relaxed) => {
            (StatusCode::OK, "ready\n".to_string(), "text/plain")
        }
        "/ready" => (
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready\n".to_string(),
            "text/plain",
        ),
        _ => (
            StatusCode::NOT_FOUND,
            "not found: try /metrics, /ready or /live\n".to_string(),
            "text/plain",
        ),
    };
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = code;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

#[cfg(test)]
mod tests;
