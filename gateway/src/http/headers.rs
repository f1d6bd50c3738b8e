//! Header rules a proxy must follow: hop-by-hop headers end at each hop
//! (RFC 9110 §7.6.1; HTTP/2 forbids them outright, RFC 9113 §8.2.2), and
//! a gateway's own `fedmesh-*` headers are never taken from a client or an
//! endpoint ([`crate::wire::GATEWAY_HEADER_PREFIX`]).

use http::header::{self, HeaderMap, HeaderName};
use http::{Method, Uri};

use crate::wire;

/// Headers that describe one connection, not the message.
const HOP_BY_HOP: [HeaderName; 6] = [
    header::CONNECTION,
    header::TE,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
    header::PROXY_AUTHORIZATION,
    header::PROXY_AUTHENTICATE,
];

/// Legacy connection headers that have no constant in `http`.
const LEGACY_HOP_BY_HOP: [&str; 2] = ["keep-alive", "proxy-connection"];

/// Removes the hop-by-hop headers, and those `Connection` names.
pub(super) fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<String> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|n| n.trim().to_ascii_lowercase())
        .filter(|n| !n.is_empty())
        .collect();
    // RFC 9110 §7.6.1: `TE: trailers` may pass over HTTP/2 (gRPC needs it).
    let trailers_te = headers
        .get(header::TE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("trailers"));
    for name in &named {
        headers.remove(name.as_str());
    }
    for name in HOP_BY_HOP {
        headers.remove(name);
    }
    for name in LEGACY_HOP_BY_HOP {
        headers.remove(name);
    }
    if trailers_te {
        headers.insert(header::TE, http::HeaderValue::from_static("trailers"));
    }
}

/// Removes every gateway header (`fedmesh-*`).
pub(super) fn strip_gateway(headers: &mut HeaderMap) {
    let ours: Vec<HeaderName> = headers
        .keys()
        .filter(|n| wire::is_gateway_header(n.as_str()))
        .cloned()
        .collect();
    for name in ours {
        headers.remove(name);
    }
}

/// Whether a request with `method` may be sent again after it may have
/// reached an endpoint (RFC 9110 §9.2.2), in the set DESIGN.md names.
pub(super) fn is_idempotent(method: &Method) -> bool {
    [
        Method::GET,
        Method::HEAD,
        Method::OPTIONS,
        Method::PUT,
        Method::DELETE,
    ]
    .contains(method)
}

/// The absolute URI a request goes upstream with over HTTP/2 (which needs
/// `:scheme` and `:authority`, RFC 9113 §8.3.1): the client's authority
/// (its URI's or else its `Host`), or `fallback` when it gave none.
pub(super) fn absolute(uri: &Uri, headers: &HeaderMap, fallback: &str) -> Option<Uri> {
    let authority = uri
        .authority()
        .map(|a| a.as_str().to_owned())
        .or_else(|| {
            let host = headers.get(header::HOST)?.to_str().ok()?;
            Some(host.to_owned())
        })
        .unwrap_or_else(|| fallback.to_owned());
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    Uri::builder()
        .scheme("http")
        .authority(authority)
        .path_and_query(path)
        .build()
        .ok()
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::*;

    #[test]
    fn hop_by_hop_headers_and_the_ones_connection_names_go() {
        let mut h = HeaderMap::new();
        h.insert(
            header::CONNECTION,
            HeaderValue::from_static("keep-alive, x-hop"),
        );
        h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        h.insert("x-hop", HeaderValue::from_static("1"));
        h.insert(
            header::TRANSFER_ENCODING,
            HeaderValue::from_static("chunked"),
        );
        h.insert("x-kept", HeaderValue::from_static("1"));
        strip_hop_by_hop(&mut h);
        let left: Vec<&str> = h.keys().map(|k| k.as_str()).collect();
        assert_eq!(left, ["x-kept"]);
    }

    #[test]
    fn te_trailers_survives_for_grpc() {
        let mut h = HeaderMap::new();
        h.insert(header::TE, HeaderValue::from_static("trailers"));
        strip_hop_by_hop(&mut h);
        assert_eq!(h.get(header::TE).unwrap(), "trailers");
        h.insert(header::TE, HeaderValue::from_static("gzip"));
        strip_hop_by_hop(&mut h);
        assert!(h.get(header::TE).is_none());
    }

    #[test]
    fn gateway_headers_from_outside_are_dropped() {
        let mut h = HeaderMap::new();
        h.insert(
            "fedmesh-reason",
            HeaderValue::from_static("no_healthy_endpoint"),
        );
        h.insert("Fedmesh-Service", HeaderValue::from_static("1.a.b.fedmesh"));
        h.insert("x-fedmesh", HeaderValue::from_static("kept"));
        strip_gateway(&mut h);
        assert_eq!(h.len(), 1);
    }

    #[test]
    fn the_upstream_uri_keeps_the_clients_authority() {
        let mut h = HeaderMap::new();
        let origin: Uri = "/a?b=1".parse().unwrap();
        let fallback = "8080.hello.demo.fedmesh";
        assert_eq!(
            absolute(&origin, &h, fallback).unwrap(),
            "http://8080.hello.demo.fedmesh/a?b=1"
        );
        h.insert(header::HOST, HeaderValue::from_static("hello.demo:8080"));
        assert_eq!(
            absolute(&origin, &h, fallback).unwrap(),
            "http://hello.demo:8080/a?b=1"
        );
        let full: Uri = "http://api.example/x".parse().unwrap();
        assert_eq!(
            absolute(&full, &h, fallback).unwrap(),
            "http://api.example/x"
        );
        assert!(
            ["GET", "PUT", "DELETE"]
                .iter()
                .all(|m| is_idempotent(&m.parse().unwrap()))
        );
        assert!(!is_idempotent(&Method::POST));
    }
}
