//! What a peer gateway sends an ingress before any byte is spliced
//! (`gateway/src/wire.rs`): the TLS SNI of a first-wave tunnel, the
//! HTTP/2 CONNECT of a pooled stream (its `:authority` and connect-budget
//! header), a refusal's reason header, and the two-byte status preface.
//!
//! The first input byte picks the part; the rest is what arrives:
//! 0 a TLS ClientHello (rustls finds the SNI, [`Route::parse`] reads it),
//! 1 an `:authority`, 2 a budget header value, 3 a reason header value,
//! 4 a status preface, 5 a whole HTTP/2 connection from the client side,
//! served by [`serve_connection`] as the ingress serves it.
//!
//! Rules checked: no panic; a route parsed from a name parses back from
//! the name it formats (nothing lost, nothing added); a budget is above
//! zero.

use std::sync::OnceLock;

use fedmesh_gateway::transport::{Incoming, ServerConfig, serve_connection};
use fedmesh_gateway::wire::{self, Refusal, Route, preface};
use http::StatusCode;
use http::uri::Authority;
use rustls::server::Acceptor;
use tokio::runtime::{Builder, Runtime};

fn runtime() -> &'static Runtime {
    static RUNTIME: OnceLock<Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap_or_else(|e| panic!("a tokio runtime for the fuzz target: {e}"))
    })
}

/// How long one input's connection may take: the client's bytes end at
/// once, so only a stall waits this long (and is not a crash).
const CONNECTION_BOUND: std::time::Duration = std::time::Duration::from_millis(200);

/// Feeds `data` to the part its first byte names.
pub fn run(data: &[u8]) {
    let Some((part, rest)) = crate::selector(data) else {
        return;
    };
    match part % 6 {
        0 => client_hello(rest),
        1 => {
            if let Ok(authority) = Authority::try_from(rest) {
                route(authority.as_str());
            }
        }
        2 => budget(rest),
        3 => {
            if let Some(refusal) = std::str::from_utf8(rest)
                .ok()
                .and_then(Refusal::from_reason)
            {
                assert_eq!(refusal.as_str().as_bytes(), rest, "reason round trip");
            }
        }
        4 => {
            let _ = runtime().block_on(preface::read(&mut &rest[..]));
        }
        _ => connection(rest),
    }
}

/// The SNI of a ClientHello, as the tunnel ingress reads it.
fn client_hello(bytes: &[u8]) {
    let mut acceptor = Acceptor::default();
    let mut reader = bytes;
    // A ClientHello may span records; stop when rustls takes no more.
    for _ in 0..64 {
        match acceptor.read_tls(&mut reader) {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
    }
    if let Ok(Some(accepted)) = acceptor.accept()
        && let Some(name) = accepted.client_hello().server_name()
    {
        route(name);
    }
}

fn route(name: &str) {
    if let Some(route) = Route::parse(name) {
        assert_eq!(Route::parse(&route.name()), Some(route), "route round trip");
    }
}

fn budget(bytes: &[u8]) {
    let Ok(value) = http::HeaderValue::from_bytes(bytes) else {
        return;
    };
    if let Some(budget) = value.to_str().ok().and_then(wire::parse_budget) {
        assert!(!budget.is_zero(), "a zero budget");
    }
}

/// A whole client connection: every CONNECT it opens is parsed as the
/// ingress does and refused (no endpoint is dialled).
fn connection(bytes: &[u8]) {
    let io = tokio::io::join(bytes, tokio::io::sink());
    let handler = |incoming: Incoming| {
        if let Some(route) = Route::parse(&incoming.authority) {
            assert_eq!(Route::parse(&route.name()), Some(route), "route round trip");
        }
        if let Some(value) = incoming.headers.get(wire::BUDGET_HEADER) {
            budget(value.as_bytes());
        }
        let _ = incoming.refuse(StatusCode::NOT_FOUND, Refusal::UnknownService.as_str());
        async {}
    };
    let served = serve_connection(io, ServerConfig::default(), handler, std::future::pending());
    let _ = runtime().block_on(async { tokio::time::timeout(CONNECTION_BOUND, served).await });
}
