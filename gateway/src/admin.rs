//! The admin port (`gateway.adminListen`): `/metrics` (Prometheus text),
//! `/ready` (200 once the gateway has a certificate and a snapshot and is
//! not draining), `/live` (200 while the process serves).

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use http_body_util::Full;
use hyper::body::Bytes;
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
                let reply = answer(req.uri().path(), &metrics, &state);
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

fn answer(path: &str, metrics: &Metrics, state: &AdminState) -> Response<Full<Bytes>> {
    let (code, body, content_type) = match path {
        "/metrics" => (
            StatusCode::OK,
            metrics.encode(),
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        ),
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
    if let Ok(v) = hyper::header::HeaderValue::from_str(content_type) {
        response
            .headers_mut()
            .insert(hyper::header::CONTENT_TYPE, v);
    }
    response
}
