//! The compiled routes of one service: every match of every route bound
//! to it, sorted once by the Gateway API's matching precedence, so that
//! finding a request's rule is a walk to the first match that fits.
//!
//! Gateway API, HTTPRouteRule "Matching precedence": across all rules of
//! the applicable routes, prefer (1) an `Exact` path match, (2) the
//! `PathPrefix` match with the most characters, (3) a method match, (4)
//! the most header matches, (5) the most query param matches; on ties the
//! oldest route (creation timestamp), then the route first in
//! `{namespace}/{name}` order, then the first rule and match in list order.
//! The spec leaves `RegularExpression` paths to the implementation: here
//! they rank below `Exact` and above every `PathPrefix` (as Envoy Gateway
//! does), so a regex rule is not shadowed by a catch-all `/`.

use std::cmp::Reverse;

use http::{HeaderMap, Method};

use super::model::{FaultInjection, HttpRoute, PathMatch, RouteMatch, Rule, ValueMatch};

/// How a request's fault filter resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultRef<'a> {
    /// The rule names no fault.
    None,
    /// The named `FaultInjection`.
    Found(&'a FaultInjection),
    /// The rule names a `FaultInjection` that does not exist: Gateway API
    /// says a request of a rule with an unresolved filter must not be
    /// forwarded (answer 500).
    Missing,
}

/// The rule a request matched.
#[derive(Debug, Clone, Copy)]
pub struct Matched<'a> {
    /// The route.
    pub route: &'a HttpRoute,
    /// Its rule.
    pub rule: &'a Rule,
    /// The rule's fault.
    pub fault: FaultRef<'a>,
}

/// One candidate: a match of a rule of a route, with its sort key.
#[derive(Debug, Clone)]
struct Entry {
    route: usize,
    rule: usize,
    matcher: usize,
    /// The port the route is bound to; `None`: every port.
    port: Option<u16>,
}

/// The routes bound to one service, compiled.
#[derive(Debug, Clone, Default)]
pub struct RouteTable {
    routes: Vec<HttpRoute>,
    faults: Vec<FaultInjection>,
    /// Every match, in precedence order.
    order: Vec<Entry>,
}

impl RouteTable {
    /// The table of service `namespace/service`: the routes of `routes`
    /// with a parent naming it (others are skipped), with the faults of
    /// `faults` in its namespace.
    pub fn build(
        namespace: &str,
        service: &str,
        routes: impl IntoIterator<Item = HttpRoute>,
        faults: impl IntoIterator<Item = FaultInjection>,
    ) -> Self {
        let mut routes: Vec<HttpRoute> = routes
            .into_iter()
            .filter(|r| r.namespace == namespace && r.parents.iter().any(|p| p.service == service))
            .collect();
        // Ties across routes: the oldest first (a route without a timestamp,
        // as in a static folder, after those with one), then by
        // namespace/name.
        routes.sort_by(|a, b| {
            (a.created.is_none(), &a.created, &a.namespace, &a.name).cmp(&(
                b.created.is_none(),
                &b.created,
                &b.namespace,
                &b.name,
            ))
        });
        let mut order = Vec::new();
        for (ri, route) in routes.iter().enumerate() {
            for parent in route.parents.iter().filter(|p| p.service == service) {
                for (ui, rule) in route.rules.iter().enumerate() {
                    for mi in 0..rule.matches.len() {
                        order.push(Entry {
                            route: ri,
                            rule: ui,
                            matcher: mi,
                            port: parent.port,
                        });
                    }
                }
            }
        }
        // A stable sort keeps route, rule and match order within a rank.
        order.sort_by_key(|e| rank(&routes[e.route].rules[e.rule].matches[e.matcher]));
        let faults = faults
            .into_iter()
            .filter(|f| f.namespace == namespace)
            .collect();
        Self {
            routes,
            faults,
            order,
        }
    }

    /// True when no route is bound to the service.
    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }

    /// The routes of the table, oldest first.
    pub fn routes(&self) -> &[HttpRoute] {
        &self.routes
    }

    /// The rule for a request to service port `port` (`path` without the
    /// query, `query` the raw query string without `?`). `None` when no
    /// rule fits: Gateway API then answers 404; a service with no route at
    /// all ([`RouteTable::is_empty`]) is served as without routes.
    pub fn find(
        &self,
        port: u16,
        method: &Method,
        path: &str,
        query: Option<&str>,
        headers: &HeaderMap,
    ) -> Option<Matched<'_>> {
        let entry = self.order.iter().find(|e| {
            e.port.is_none_or(|p| p == port)
                && matches(
                    &self.routes[e.route].rules[e.rule].matches[e.matcher],
                    method,
                    path,
                    query,
                    headers,
                )
        })?;
        let route = &self.routes[entry.route];
        let rule = &route.rules[entry.rule];
        let fault = match &rule.fault {
            None => FaultRef::None,
            Some(name) => self
                .faults
                .iter()
                .find(|f| &f.name == name)
                .map_or(FaultRef::Missing, FaultRef::Found),
        };
        Some(Matched { route, rule, fault })
    }
}

/// The precedence of a match; smaller sorts first.
fn rank(m: &RouteMatch) -> (u8, Reverse<usize>, bool, Reverse<usize>, Reverse<usize>) {
    let (kind, len) = match &m.path {
        PathMatch::Exact(p) => (0, p.len()),
        PathMatch::Regex(_) => (1, 0),
        // The stored prefix has no trailing `/`; count it as written.
        PathMatch::Prefix(p) => (2, p.len() + 1),
    };
    (
        kind,
        Reverse(len),
        m.method.is_none(),
        Reverse(m.headers.len()),
        Reverse(m.query.len()),
    )
}

/// Whether a request fits one match.
fn matches(
    m: &RouteMatch,
    method: &Method,
    path: &str,
    query: Option<&str>,
    headers: &HeaderMap,
) -> bool {
    path_matches(&m.path, path)
        && m.method.as_ref().is_none_or(|want| want == method)
        && m.headers.iter().all(|h| {
            // The first value of the header counts.
            headers
                .get(&h.name)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| value_matches(&h.value, v))
        })
        && m.query
            .iter()
            .all(|q| query_value(query, &q.name).is_some_and(|v| v == q.value))
}

/// `PathPrefix` matches whole `/`-separated elements: `/foo` matches
/// `/foo`, `/foo/` and `/foo/bar`, not `/foobar`.
pub(super) fn path_matches(m: &PathMatch, path: &str) -> bool {
    match m {
        PathMatch::Exact(p) => path == p,
        PathMatch::Prefix(p) => path
            .strip_prefix(p.as_str())
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/')),
        PathMatch::Regex(re) => re.is_match(path),
    }
}

fn value_matches(m: &ValueMatch, value: &str) -> bool {
    match m {
        ValueMatch::Exact(want) => value == want,
        ValueMatch::Regex(re) => re.is_match(value),
    }
}

/// The first value of parameter `name` in a raw query string (names are
/// compared as written; `+` and `%xx` are not decoded, as the route's
/// values are matched byte for byte).
fn query_value<'q>(query: Option<&'q str>, name: &str) -> Option<&'q str> {
    query?.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (k == name).then_some(v)
    })
}
