//! The HTTP/1.1 server of the web port and its routes. Only `GET` (and
//! `HEAD`, which hyper answers without a body) is served; each answer is
//! built from the handles at request time.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use fedmesh_proto::metrics_text;
use fedmesh_proto::transport::{ListenerLimits, Unauthenticated};
use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::header::{
    ACCEPT, CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, HeaderValue, LOCATION,
    X_CONTENT_TYPE_OPTIONS,
};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tracing::debug;

use super::metrics::ControlMetrics;
use super::{WebInputs, sample, topology};
use crate::clock;

/// The topology page: HTML with its script and style inline, compiled in.
const UI: &str = include_str!("ui.html");

/// The page's Content-Security-Policy: its own inline script and style
/// only (by hash, CSP Level 3 §8.3), fetches only to this port, nothing
/// else loaded, no framing. A name a peer sends can never run as script.
fn ui_policy() -> &'static str {
    static POLICY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    POLICY.get_or_init(|| {
        format!(
            "default-src 'none'; script-src '{}'; style-src '{}'; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
            inline_hash(UI, "script"),
            inline_hash(UI, "style"),
        )
    })
}

/// `sha256-<base64>` of the text inside the first `<tag>…</tag>` of `html`.
fn inline_hash(html: &str, tag: &str) -> String {
    use base64::Engine as _;
    let open = format!("<{tag}>");
    let close = format!("</{tag}>");
    let body = html
        .split_once(&open)
        .and_then(|(_, rest)| rest.split_once(&close))
        .map_or("", |(body, _)| body);
    let digest = ring::digest::digest(&ring::digest::SHA256, body.as_bytes());
    format!(
        "sha256-{}",
        base64::engine::general_purpose::STANDARD.encode(digest.as_ref())
    )
}

/// A request's headers must arrive within this (a slow client cannot hold
/// a connection open without sending anything).
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// Connections served at once; past it a new one is closed at once (a
/// scraper or browser retries), so the port cannot exhaust the control
/// plane's file descriptors.
const MAX_CONNECTIONS: usize = 1024;

/// Connections that have not sent a request yet: at most 256, the oldest
/// closed to admit a newcomer (so idle connections never keep a scrape or
/// the topology page out), each closed after 10 s of silence or 30 s in
/// all. A request counts as authentication: the port is read-only and
/// unauthenticated by design, the guard only bounds what silence costs.
const LIMITS: ListenerLimits = ListenerLimits {
    handshake_timeout: Duration::from_secs(10),
    idle_timeout: Duration::from_secs(10),
    unauthenticated_lifetime: Duration::from_secs(30),
    max_unauthenticated: 256,
};

/// Serves `listener` until `stop` completes.
pub(super) async fn serve(
    listener: TcpListener,
    inputs: Arc<WebInputs>,
    metrics: Arc<ControlMetrics>,
    stop: impl Future<Output = ()> + Send + 'static,
) {
    tokio::pin!(stop);
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    let guard = Unauthenticated::evicting(LIMITS);
    loop {
        let accepted = tokio::select! {
            () = &mut stop => return,
            accepted = listener.accept() => accepted,
        };
        let (stream, remote) = match accepted {
            Ok(accepted) => accepted,
            Err(error) => {
                // Out of file descriptors, most likely: wait a little
                // instead of spinning on accept.
                debug!(%error, "web port accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            debug!("web port at {MAX_CONNECTIONS} connections; one closed");
            continue;
        };
        let Ok(stream) = guard.admit(stream, remote, false) else {
            continue;
        };
        let (inputs, metrics, guard) = (inputs.clone(), metrics.clone(), guard.clone());
        tokio::spawn(async move {
            let _slot = slot;
            let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                guard.mark_authenticated(remote);
                let reply = answer(&req, &inputs, &metrics);
                async move { Ok::<_, Infallible>(reply) }
            });
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT);
            if let Err(error) = builder
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                debug!(%error, "web connection ended");
            }
        });
    }
}

/// The answer to one request.
fn answer(
    req: &Request<Incoming>,
    inputs: &WebInputs,
    metrics: &ControlMetrics,
) -> Response<Full<Bytes>> {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return text(StatusCode::METHOD_NOT_ALLOWED, "only GET is served\n");
    }
    match req.uri().path() {
        "/metrics" => {
            let accept = req.headers().get(ACCEPT).and_then(|v| v.to_str().ok());
            let format = metrics_text::negotiate(accept);
            let body = metrics.encode(&sample::take(inputs), format);
            reply(StatusCode::OK, body, format.content_type())
        }
        "/live" => text(StatusCode::OK, "live\n"),
        "/ready" if inputs.exports.borrow().version > 0 => text(StatusCode::OK, "ready\n"),
        "/ready" => text(
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: the registry has not been read yet\n",
        ),
        "/api/topology" => {
            let body = topology_json(inputs);
            let mut r = reply(StatusCode::OK, body, "application/json");
            r.headers_mut()
                .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
            r
        }
        "/ui/" | "/ui/index.html" => {
            let mut r = reply(StatusCode::OK, UI.to_string(), "text/html; charset=utf-8");
            let policy = HeaderValue::from_static(ui_policy());
            r.headers_mut().insert(CONTENT_SECURITY_POLICY, policy);
            r
        }
        "/" | "/ui" => {
            let mut r = text(StatusCode::FOUND, "see /ui/\n");
            r.headers_mut()
                .insert(LOCATION, HeaderValue::from_static("/ui/"));
            r
        }
        _ => text(
            StatusCode::NOT_FOUND,
            "not found: try /metrics, /ready, /live, /api/topology or /ui/\n",
        ),
    }
}

fn topology_json(inputs: &WebInputs) -> String {
    let now_ms = clock::now_unix_ms();
    let peers = inputs.peers.views();
    let gateways = inputs.gateways.views(&inputs.gateway_name, now_ms);
    let table = inputs.table.borrow().clone();
    let topology = topology::build(
        (&inputs.cluster, &inputs.locality),
        &peers,
        &gateways,
        &table,
        now_ms,
    );
    // Plain structs of strings and numbers always serialize.
    serde_json::to_string(&topology).unwrap_or_else(|_| "{}".to_string())
}

fn text(code: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
    reply(code, body.to_string(), "text/plain; charset=utf-8")
}

fn reply(code: StatusCode, body: String, content_type: &'static str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = code;
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    response
}
