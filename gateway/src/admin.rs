//! The admin port (`gateway.adminListen`): `/metrics` (Prometheus text),
//! `/ready` (200 once the gateway has a certificate and a snapshot and is
//! not draining), `/live` (200 while the process serves).
//!
//! `/metrics` speaks both text formats: OpenMetrics when the scrape's
//! `Accept` asks for `application/openmetrics-text` (as Prometheus does),
//! the classic `text/plain; version=0.0.4` otherwise ([`metrics_format`]).

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::header::{ACCEPT, CONTENT_TYPE, HeaderValue};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tracing::debug;

use crate::metrics::Metrics;

/// What the admin port reports.
#[derive(Debug, Default)]
pub struct AdminState {
    /// Ready to serve traffic.
    pub ready: AtomicBool,
}

/// Serves the admin port forever.
pub async fn serve(listener: TcpListener, metrics: Arc<Metrics>, state: Arc<AdminState>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
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
