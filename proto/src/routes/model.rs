//! Validated routes and faults: what [`super::validate`] produces and the
//! compiled [`super::RouteTable`] is built from. Every value here was
//! checked (header names parse, regexes compile, numbers in range), so the
//! gateway never meets a bad one on the data path.

use std::time::Duration;

use http::{HeaderName, HeaderValue, Method, StatusCode};
use regex::Regex;

/// One percent in [`Fraction`] units: percentages keep four decimals.
pub const PERCENT: u32 = 10_000;
/// All requests, in [`Fraction`] units (100 %).
pub const ALL: u32 = 100 * PERCENT;

/// A share of requests in millionths (`ALL` = 100 %), exact and comparable,
/// unlike the `f64` it was written as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Fraction(pub u32);

/// A compiled `RegularExpression` value, anchored at both ends (the whole
/// path or value must match, as Envoy's `safe_regex` does); compared by
/// the text the route wrote.
#[derive(Debug, Clone)]
pub struct Pattern {
    /// As written in the route.
    pub source: String,
    pub(super) regex: Regex,
}

impl Pattern {
    /// True when the whole of `text` matches.
    pub fn is_match(&self, text: &str) -> bool {
        self.regex.is_match(text)
    }
}

impl PartialEq for Pattern {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source
    }
}

impl Eq for Pattern {}

/// A validated `HTTPRoute` (`gateway.networking.k8s.io/v1`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpRoute {
    /// `metadata.namespace` (`default` when absent).
    pub namespace: String,
    /// `metadata.name`.
    pub name: String,
    /// `metadata.creationTimestamp` as written (RFC 3339, UTC): the oldest
    /// route wins ties (Gateway API matching precedence).
    pub created: Option<String>,
    /// The Services (same namespace) the route is bound to (GAMMA).
    pub parents: Vec<ParentRef>,
    /// The rules, in order.
    pub rules: Vec<Rule>,
}

/// A `parentRefs` entry naming a Service.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ParentRef {
    /// The Service's name (in the route's namespace).
    pub service: String,
    /// The service port the route applies to; `None`: every port.
    pub port: Option<u16>,
}

/// One rule: matches, what happens to a matching request, and where it goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// `name`, when the rule has one.
    pub name: Option<String>,
    /// Any one of these matches the rule; never empty (a rule without
    /// matches gets the default `PathPrefix /`).
    pub matches: Vec<RouteMatch>,
    /// Where matching requests go, with weights; empty: answer 500
    /// (Gateway API: a rule with no backends).
    pub backends: Vec<Backend>,
    /// `RequestHeaderModifier`.
    pub request_headers: Option<HeaderModifier>,
    /// `ResponseHeaderModifier`.
    pub response_headers: Option<HeaderModifier>,
    /// The `FaultInjection` (same namespace) named by an `ExtensionRef`.
    pub fault: Option<String>,
    /// `timeouts`.
    pub timeouts: Timeouts,
    /// `retry`.
    pub retry: Option<Retry>,
}

/// One `matches` entry: every part must match.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteMatch {
    /// `path` (default `PathPrefix /`).
    pub path: PathMatch,
    /// `headers`, names unique (the first of a name counts).
    pub headers: Vec<HeaderMatch>,
    /// `queryParams`, names unique (the first of a name counts).
    pub query: Vec<QueryMatch>,
    /// `method`.
    pub method: Option<Method>,
}

/// A path match.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathMatch {
    /// `Exact`.
    Exact(String),
    /// `PathPrefix`, on `/`-separated elements, without a trailing `/`
    /// (`/` itself is kept as `""`, which every path has).
    Prefix(String),
    /// `RegularExpression`, matched against the whole path.
    Regex(Pattern),
}

/// How a header or query value must look.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ValueMatch {
    /// `Exact`.
    Exact(String),
    /// `RegularExpression`, matched against the whole value.
    Regex(Pattern),
}

/// A header match (names are case-insensitive).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeaderMatch {
    /// The header.
    pub name: HeaderName,
    /// Its value.
    pub value: ValueMatch,
}

/// A query parameter match (names are case-sensitive; `Exact` only).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryMatch {
    /// The parameter.
    pub name: String,
    /// Its value.
    pub value: String,
}

/// A weighted backend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backend {
    /// The service and which clusters may serve it.
    pub target: BackendTarget,
    /// The service port; `None`: the port the request came to.
    pub port: Option<u16>,
    /// Its share against the rule's other backends (default 1; 0: none).
    pub weight: u32,
}

/// Which copy of a service a backend means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BackendTarget {
    /// The global service (every cluster, with locality and failover):
    /// `Service` or `multicluster.x-k8s.io` `ServiceImport`.
    Global {
        /// The service's name (in the route's namespace).
        service: String,
    },
    /// One cluster's copy only (`fedmesh.io` `ServiceImport`
    /// `<cluster>.<svc>`): no failover.
    Cluster {
        /// The cluster.
        cluster: String,
        /// The service's name (in the route's namespace).
        service: String,
    },
}

/// Header changes of a `RequestHeaderModifier` / `ResponseHeaderModifier`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HeaderModifier {
    /// Replace these headers' values.
    pub set: Vec<(HeaderName, HeaderValue)>,
    /// Append these values.
    pub add: Vec<(HeaderName, HeaderValue)>,
    /// Remove these headers.
    pub remove: Vec<HeaderName>,
}

/// `timeouts`; `None` (or `0s`, which disables): no timeout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Timeouts {
    /// From the request's arrival to its complete response.
    pub request: Option<Duration>,
    /// Per attempt at a backend.
    pub backend_request: Option<Duration>,
}

/// `retry`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Retry {
    /// Retries after the first attempt.
    pub attempts: u32,
    /// Wait before each retry.
    pub backoff: Option<Duration>,
    /// Response codes that are retried (400–599).
    pub codes: Vec<u16>,
}

/// A validated `FaultInjection` (`fedmesh.io/v1alpha1`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FaultInjection {
    /// `metadata.namespace` (`default` when absent).
    pub namespace: String,
    /// `metadata.name`.
    pub name: String,
    /// Delay some requests.
    pub delay: Option<Delay>,
    /// Answer some requests at the client's gateway.
    pub abort: Option<Abort>,
}

/// `spec.delay`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delay {
    /// How long.
    pub fixed: Duration,
    /// Share of requests delayed.
    pub share: Fraction,
}

/// `spec.abort`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Abort {
    /// The answer.
    pub status: StatusCode,
    /// Share of requests aborted.
    pub share: Fraction,
}
