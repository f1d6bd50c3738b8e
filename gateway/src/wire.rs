//! What gateways say to each other on the wire, in one place: the ALPN
//! names, the `<port>.<svc>.<ns>.fedmesh` name of a service port (the TLS
//! SNI of the first-wave tunnel, the `:authority` of an HTTP/2 CONNECT)
//! and `<hostname>.<port>.<svc>.<ns>.fedmesh`, the name of one named
//! endpoint of a headless service (which an ingress of an earlier release
//! refuses as a bad request, so it never reaches another endpoint),
//! the refusals an ingress can answer, and how each travels: a two-byte
//! [`preface`] on the first-wave tunnel, an HTTP status with a reason
//! header on a CONNECT stream (DESIGN.md, "Wave 2 contract →
//! Inter-gateway transport"). For HTTP ports a request travels as an
//! ordinary HTTP/2 request stream that keeps the client's `:authority` and
//! names the service port in [`SERVICE_HEADER`] instead; its refusals are
//! the same status and reason header as a CONNECT's.
//!
//! Everything here is pure: parsing and formatting, no I/O but the
//! preface's two bytes.

pub mod preface;

use std::time::Duration;

/// ALPN of the first-wave tunnel: one TLS connection per client
/// connection, SNI naming the service, a [`preface`] before bytes flow.
pub const ALPN_TUNNEL: &[u8] = b"fedmesh-gw/1";

/// ALPN of the pooled transport: HTTP/2 over mTLS, one CONNECT stream per
/// client connection (RFC 9113 §8.5).
pub const ALPN_H2: &[u8] = b"h2";

/// The header of a refused CONNECT naming why ([`Refusal::as_str`]).
pub const REASON_HEADER: &str = "fedmesh-reason";

/// The header of an HTTP request stream naming the service port it is
/// for (`<port>.<svc>.<ns>.fedmesh`, as a CONNECT's `:authority` does).
/// The client's own `:authority` (its `Host`) travels unchanged to the
/// endpoint, which may route on it.
pub const SERVICE_HEADER: &str = "fedmesh-service";

/// Headers of this prefix belong to gateways: an egress drops them from
/// client requests and an ingress from endpoint responses, so that no
/// client or endpoint can pose as a gateway (a forged [`REASON_HEADER`]
/// would make an egress retry a request that did reach an endpoint).
pub const GATEWAY_HEADER_PREFIX: &str = "fedmesh-";

/// The header of a CONNECT carrying how long the egress will wait for the
/// answer, in milliseconds, so that the ingress can budget its endpoint
/// dials to try at least two endpoints inside it.
pub const BUDGET_HEADER: &str = "fedmesh-connect-budget-ms";

/// The suffix of every service-port name; independent of the DNS zone.
const SUFFIX: &str = ".fedmesh";

/// One port of one service, as a peer ingress is asked for it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Route {
    /// Service port (the port clients dial, not an endpoint's port).
    pub port: u16,
    /// Service name.
    pub service: String,
    /// Namespace.
    pub namespace: String,
    /// The one named endpoint (a headless service's hostname) to reach;
    /// `None` for any endpoint of the service.
    pub endpoint: Option<String>,
}

impl Route {
    /// A route to `port` of `namespace/service`.
    pub fn new(namespace: &str, service: &str, port: u16) -> Self {
        Self {
            port,
            service: service.to_string(),
            namespace: namespace.to_string(),
            endpoint: None,
        }
    }

    /// The same service port, but only its endpoint named `hostname`.
    #[must_use]
    pub fn to_endpoint(mut self, hostname: &str) -> Self {
        self.endpoint = Some(hostname.to_string());
        self
    }

    /// Parses `<port>.<svc>.<ns>.fedmesh` and
    /// `<hostname>.<port>.<svc>.<ns>.fedmesh`, case-insensitively (DNS
    /// names and `:authority` hosts compare without case, RFC 4343).
    pub fn parse(name: &str) -> Option<Self> {
        let lower = name.to_ascii_lowercase();
        let rest = lower.strip_suffix(SUFFIX)?;
        let labels: Vec<&str> = rest.split('.').collect();
        let (endpoint, [port, service, namespace]) = (match labels.as_slice() {
            [port, service, namespace] => Some((None, [*port, *service, *namespace])),
            // A hostname is a DNS label: it never is a number, so the two
            // forms never read the same name.
            [host, port, service, namespace] if is_label(host) && !is_number(host) => {
                Some((Some(host.to_string()), [*port, *service, *namespace]))
            }
            _ => None,
        })?;
        let port = port.parse().ok().filter(|p: &u16| *p > 0)?;
        if service.is_empty() || namespace.is_empty() {
            return None;
        }
        Some(Self {
            port,
            service: service.to_string(),
            namespace: namespace.to_string(),
            endpoint,
        })
    }

    /// The name an egress sends: `<port>.<svc>.<ns>.fedmesh`, prefixed
    /// with the endpoint's hostname for a named endpoint.
    pub fn name(&self) -> String {
        let base = format!("{}.{}.{}{SUFFIX}", self.port, self.service, self.namespace);
        match &self.endpoint {
            Some(host) => format!("{host}.{base}"),
            None => base,
        }
    }
}

/// Whether `s` is a DNS label (RFC 1123 §2.1, lowercase).
fn is_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

fn is_number(s: &str) -> bool {
    s.bytes().all(|b| b.is_ascii_digit())
}

/// Why an ingress did not connect a request to an endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// No such service or port is exported here.
    UnknownService,
    /// The service is not exported to the caller's cluster (`export-to`).
    NotExportedToYou,
    /// No endpoint is ready (or every ready one is ejected).
    NoHealthyEndpoint,
    /// Every endpoint tried refused or timed out.
    EndpointFailed,
    /// The request was malformed (a name that is not a service port).
    BadRequest,
}

impl Refusal {
    /// Every refusal, for tests and for metrics that exist from start.
    pub const ALL: [Refusal; 5] = [
        Refusal::UnknownService,
        Refusal::NotExportedToYou,
        Refusal::NoHealthyEndpoint,
        Refusal::EndpointFailed,
        Refusal::BadRequest,
    ];

    /// A metric label and the reason header's value.
    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::UnknownService => "unknown_service",
            Refusal::NotExportedToYou => "not_exported_to_peer",
            Refusal::NoHealthyEndpoint => "no_healthy_endpoint",
            Refusal::EndpointFailed => "endpoint_failed",
            Refusal::BadRequest => "bad_request",
        }
    }

    /// Parses a reason header's value.
    pub fn from_reason(reason: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == reason)
    }

    /// The HTTP status of a refused CONNECT: 503 when another cluster may
    /// serve (the egress tries the next target), 403 when the caller may
    /// not have it, 404 and 400 for requests that are wrong anywhere.
    pub fn http_status(self) -> u16 {
        match self {
            Refusal::NoHealthyEndpoint | Refusal::EndpointFailed => 503,
            Refusal::NotExportedToYou => 403,
            Refusal::UnknownService => 404,
            Refusal::BadRequest => 400,
        }
    }

    /// Whether the cluster that answered this has nothing to serve the
    /// service with: only this ejects a cluster (its ingress said so), a
    /// policy or request error does not.
    pub fn cluster_cannot_serve(self) -> bool {
        matches!(self, Refusal::NoHealthyEndpoint | Refusal::EndpointFailed)
    }
}

/// The connect budget a CONNECT carries, as its header value.
pub fn budget_header(budget: Duration) -> String {
    budget.as_millis().to_string()
}

/// Parses a [`BUDGET_HEADER`] value; `None` when absent or malformed (the
/// ingress then uses its own `connectTimeout`).
pub fn parse_budget(value: &str) -> Option<Duration> {
    value
        .trim()
        .parse::<u64>()
        .ok()
        .filter(|ms| *ms > 0)
        .map(Duration::from_millis)
}

/// Whether `name` is a gateway's own header ([`GATEWAY_HEADER_PREFIX`]).
pub fn is_gateway_header(name: &str) -> bool {
    name.len() >= GATEWAY_HEADER_PREFIX.len()
        && name[..GATEWAY_HEADER_PREFIX.len()].eq_ignore_ascii_case(GATEWAY_HEADER_PREFIX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gateway_headers_are_the_fedmesh_prefix_in_any_case() {
        assert!(is_gateway_header(REASON_HEADER));
        assert!(is_gateway_header(SERVICE_HEADER));
        assert!(is_gateway_header("Fedmesh-Reason"));
        assert!(!is_gateway_header("fedmesh"));
        assert!(!is_gateway_header("x-fedmesh-reason"));
    }

    #[test]
    fn a_route_name_is_port_service_and_namespace() {
        let r = Route::parse("8080.hello.demo.fedmesh").unwrap();
        assert_eq!(r, Route::new("demo", "hello", 8080));
        assert_eq!(Route::parse(&r.name()), Some(r.clone()));
        assert_eq!(Route::parse("8080.HELLO.Demo.FEDMESH"), Some(r));
        for bad in [
            "hello.demo.fedmesh",
            "0.hello.demo.fedmesh",
            "x.hello.demo.fedmesh",
            "8080.hello.demo.example",
            "8080.hello.a.b.fedmesh",
            "8080..demo.fedmesh",
            "",
        ] {
            assert_eq!(Route::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn an_endpoint_route_names_its_hostname_first_and_parses_back() {
        let r = Route::new("demo", "db", 5432).to_endpoint("db-0");
        assert_eq!(r.name(), "db-0.5432.db.demo.fedmesh");
        assert_eq!(Route::parse(&r.name()), Some(r.clone()));
        assert_eq!(Route::parse("DB-0.5432.db.demo.fedmesh"), Some(r));
        for bad in [
            "db_0.5432.db.demo.fedmesh",
            "-db.5432.db.demo.fedmesh",
            "123.5432.db.demo.fedmesh",
            "a.b.5432.db.demo.fedmesh",
            "db-0.x.db.demo.fedmesh",
        ] {
            assert_eq!(Route::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn an_ingress_of_the_first_wave_refuses_an_endpoint_route() {
        // The first wave read `<port>.<svc>.<ns>` with splitn(3): the
        // hostname lands where the port is and does not parse.
        let name = Route::new("demo", "db", 5432).to_endpoint("db-0").name();
        let rest = name.strip_suffix(SUFFIX).unwrap();
        let port = rest.split('.').next().unwrap();
        assert!(port.parse::<u16>().is_err());
    }

    #[test]
    fn every_refusal_reason_parses_back_and_only_capacity_ejects() {
        for r in Refusal::ALL {
            assert_eq!(Refusal::from_reason(r.as_str()), Some(r));
        }
        assert_eq!(Refusal::from_reason("nonsense"), None);
        let ejecting: Vec<_> = Refusal::ALL
            .into_iter()
            .filter(|r| r.cluster_cannot_serve())
            .collect();
        assert_eq!(
            ejecting,
            [Refusal::NoHealthyEndpoint, Refusal::EndpointFailed]
        );
        assert!(ejecting.iter().all(|r| r.http_status() == 503));
    }

    #[test]
    fn a_budget_travels_in_milliseconds() {
        let b = Duration::from_millis(750);
        assert_eq!(parse_budget(&budget_header(b)), Some(b));
        assert_eq!(parse_budget("0"), None);
        assert_eq!(parse_budget("soon"), None);
    }
}
