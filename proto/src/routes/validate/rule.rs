//! The checks of one `spec.rules[]` entry: matches, filters, backends,
//! timeouts and retry. Each function adds its problems and returns what it
//! could validate, so one pass reports everything.

use http::{HeaderName, HeaderValue, Method};

use super::{Problems, Reason, duration, pattern, port};
use crate::routes::model::{
    Backend, BackendTarget, HeaderMatch, HeaderModifier, PathMatch, QueryMatch, Retry, RouteMatch,
    Rule, Timeouts, ValueMatch,
};
use crate::routes::spec::{
    BackendRefDoc, FilterDoc, HeaderModifierDoc, MatchDoc, RetryDoc, RuleDoc, TimeoutsDoc,
    ValueMatchDoc,
};

/// Largest backend weight (Gateway API: 0 to 1 000 000).
const MAX_WEIGHT: i64 = 1_000_000;

/// One rule at `at`.
pub(super) fn rule(r: &RuleDoc, at: &str, namespace: &str, p: &mut Problems) -> Rule {
    p.unsupported(at, &r.extra);
    let mut matches: Vec<RouteMatch> = r
        .matches
        .iter()
        .enumerate()
        .filter_map(|(i, m)| route_match(m, &format!("{at}.matches[{i}]"), p))
        .collect();
    if r.matches.is_empty() {
        // Gateway API: a rule without matches matches every request
        // (one default match, `PathPrefix /`).
        matches.push(RouteMatch {
            path: PathMatch::Prefix(String::new()),
            headers: Vec::new(),
            query: Vec::new(),
            method: None,
        });
    }
    let mut out = Rule {
        name: r.name.clone(),
        matches,
        backends: Vec::new(),
        request_headers: None,
        response_headers: None,
        fault: None,
        timeouts: r
            .timeouts
            .as_ref()
            .map(|t| timeouts(t, &format!("{at}.timeouts"), p))
            .unwrap_or_default(),
        retry: r
            .retry
            .as_ref()
            .and_then(|t| retry(t, &format!("{at}.retry"), p)),
    };
    for (i, f) in r.filters.iter().enumerate() {
        filter(f, &format!("{at}.filters[{i}]"), &mut out, p);
    }
    out.backends = r
        .backend_refs
        .iter()
        .enumerate()
        .filter_map(|(i, b)| backend(b, &format!("{at}.backendRefs[{i}]"), namespace, p))
        .collect();
    out
}

fn route_match(m: &MatchDoc, at: &str, p: &mut Problems) -> Option<RouteMatch> {
    p.unsupported(at, &m.extra);
    let path = match &m.path {
        None => Some(PathMatch::Prefix(String::new())),
        Some(path) => {
            p.unsupported(&format!("{at}.path"), &path.extra);
            let value = path.value.as_deref().unwrap_or("/");
            let vat = format!("{at}.path.value");
            let needs_slash = |p: &mut Problems| {
                let ok = value.starts_with('/');
                if !ok {
                    p.invalid(&vat, format!("{value:?} does not start with \"/\""));
                }
                ok
            };
            match path.kind.as_deref().unwrap_or("PathPrefix") {
                "Exact" => needs_slash(p).then(|| PathMatch::Exact(value.to_string())),
                "PathPrefix" => needs_slash(p)
                    .then(|| PathMatch::Prefix(value.trim_end_matches('/').to_string())),
                "RegularExpression" => pattern(value, &vat, p).map(PathMatch::Regex),
                other => {
                    p.invalid(
                        format!("{at}.path.type"),
                        format!("{other:?} is not a path match type; use Exact, PathPrefix or RegularExpression"),
                    );
                    None
                }
            }
        }
    };
    let headers = header_matches(&m.headers, &format!("{at}.headers"), p);
    let query = query_matches(&m.query_params, &format!("{at}.queryParams"), p);
    let method = m.method.as_deref().and_then(|text| {
        let known = [
            "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH",
        ];
        if known.contains(&text) {
            Method::from_bytes(text.as_bytes()).ok()
        } else {
            p.invalid(
                format!("{at}.method"),
                format!("{text:?} is not one of {}", known.join(", ")),
            );
            None
        }
    });
    Some(RouteMatch {
        path: path?,
        headers: headers?,
        query: query?,
        method,
    })
}

/// Header matches; the first entry of a name counts (Gateway API).
fn header_matches(docs: &[ValueMatchDoc], at: &str, p: &mut Problems) -> Option<Vec<HeaderMatch>> {
    let mut out: Vec<HeaderMatch> = Vec::new();
    let mut ok = true;
    for (i, h) in docs.iter().enumerate() {
        let at = format!("{at}[{i}]");
        let name = header_name(h.name.as_deref(), &format!("{at}.name"), p);
        let value = value_match(h, &at, true, p);
        match (name, value) {
            (Some(name), Some(value)) if !out.iter().any(|m| m.name == name) => {
                out.push(HeaderMatch { name, value });
            }
            (Some(_), Some(_)) => {}
            _ => ok = false,
        }
    }
    ok.then_some(out)
}

/// Query matches (`Exact` only); the first entry of a name counts.
fn query_matches(docs: &[ValueMatchDoc], at: &str, p: &mut Problems) -> Option<Vec<QueryMatch>> {
    let mut out: Vec<QueryMatch> = Vec::new();
    let mut ok = true;
    for (i, q) in docs.iter().enumerate() {
        let at = format!("{at}[{i}]");
        let name = q.name.as_deref().filter(|n| !n.is_empty());
        if name.is_none() {
            p.add(format!("{at}.name"), Reason::Missing);
        }
        match (name, value_match(q, &at, false, p)) {
            (Some(name), Some(ValueMatch::Exact(value))) => {
                if !out.iter().any(|m| m.name == name) {
                    out.push(QueryMatch {
                        name: name.to_string(),
                        value,
                    });
                }
            }
            _ => ok = false,
        }
    }
    ok.then_some(out)
}

/// The `type` and `value` of a header or query match.
fn value_match(
    doc: &ValueMatchDoc,
    at: &str,
    regex_ok: bool,
    p: &mut Problems,
) -> Option<ValueMatch> {
    p.unsupported(at, &doc.extra);
    let Some(value) = doc.value.as_deref() else {
        p.add(format!("{at}.value"), Reason::Missing);
        return None;
    };
    match doc.kind.as_deref().unwrap_or("Exact") {
        "Exact" => Some(ValueMatch::Exact(value.to_string())),
        "RegularExpression" if regex_ok => {
            pattern(value, &format!("{at}.value"), p).map(ValueMatch::Regex)
        }
        "RegularExpression" => {
            p.add(format!("{at}.type"), Reason::Unsupported);
            None
        }
        other => {
            p.invalid(
                format!("{at}.type"),
                format!("{other:?} is not a match type; use Exact or RegularExpression"),
            );
            None
        }
    }
}

fn header_name(name: Option<&str>, at: &str, p: &mut Problems) -> Option<HeaderName> {
    let Some(name) = name.filter(|n| !n.is_empty()) else {
        p.add(at, Reason::Missing);
        return None;
    };
    // RFC 9110 §5.1: a field name is a token; `http` lowercases it.
    match HeaderName::from_bytes(name.as_bytes()) {
        Ok(h) => Some(h),
        Err(_) => {
            p.invalid(at, format!("{name:?} is not a valid header name"));
            None
        }
    }
}

/// One filter, applied to `out`.
fn filter(f: &FilterDoc, at: &str, out: &mut Rule, p: &mut Problems) {
    p.unsupported(at, &f.extra);
    match f.kind.as_deref() {
        Some("RequestHeaderModifier") => {
            let m = f.request_header_modifier.as_ref();
            out.request_headers = modifier(m, &format!("{at}.requestHeaderModifier"), p);
        }
        Some("ResponseHeaderModifier") => {
            let m = f.response_header_modifier.as_ref();
            out.response_headers = modifier(m, &format!("{at}.responseHeaderModifier"), p);
        }
        Some("ExtensionRef") => {
            let eat = format!("{at}.extensionRef");
            let Some(ext) = &f.extension_ref else {
                p.add(eat, Reason::Missing);
                return;
            };
            p.unsupported(&eat, &ext.extra);
            if ext.group.as_deref() != Some("fedmesh.io")
                || ext.kind.as_deref() != Some("FaultInjection")
            {
                p.invalid(
                    eat,
                    "only {group: fedmesh.io, kind: FaultInjection} extensions are supported"
                        .into(),
                );
            } else if out.fault.is_some() {
                p.invalid(eat, "a rule may name one FaultInjection only".into());
            } else {
                match ext.name.as_deref().filter(|n| !n.is_empty()) {
                    Some(name) => out.fault = Some(name.to_string()),
                    None => p.add(format!("{eat}.name"), Reason::Missing),
                }
            }
        }
        Some(_) => p.add(format!("{at}.type"), Reason::Unsupported),
        None => p.add(format!("{at}.type"), Reason::Missing),
    }
}

fn modifier(doc: Option<&HeaderModifierDoc>, at: &str, p: &mut Problems) -> Option<HeaderModifier> {
    let Some(doc) = doc else {
        p.add(at, Reason::Missing);
        return None;
    };
    p.unsupported(at, &doc.extra);
    let mut pairs = |list: &[crate::routes::spec::HeaderValueDoc], field: &str| {
        let mut out = Vec::new();
        for (i, h) in list.iter().enumerate() {
            let hat = format!("{at}.{field}[{i}]");
            p.unsupported(&hat, &h.extra);
            let name = header_name(h.name.as_deref(), &format!("{hat}.name"), p);
            let text = h.value.as_deref().unwrap_or("");
            let value = HeaderValue::from_str(text).ok();
            if value.is_none() {
                p.invalid(
                    format!("{hat}.value"),
                    format!("{text:?} is not a valid header value"),
                );
            }
            out.extend(name.zip(value));
        }
        out
    };
    let set = pairs(&doc.set, "set");
    let add = pairs(&doc.add, "add");
    let remove = doc
        .remove
        .iter()
        .enumerate()
        .filter_map(|(i, n)| header_name(Some(n), &format!("{at}.remove[{i}]"), p))
        .collect();
    Some(HeaderModifier { set, add, remove })
}

fn backend(b: &BackendRefDoc, at: &str, namespace: &str, p: &mut Problems) -> Option<Backend> {
    p.unsupported(at, &b.extra);
    if !b.filters.is_empty() {
        p.add(format!("{at}.filters"), Reason::Unsupported);
    }
    if let Some(ns) = b.namespace.as_deref().filter(|ns| *ns != namespace) {
        p.invalid(
            format!("{at}.namespace"),
            format!("{ns:?} is not the route's namespace {namespace:?}; backends must be in the route's namespace"),
        );
    }
    let weight = match b.weight {
        None => Some(1),
        Some(w) if (0..=MAX_WEIGHT).contains(&w) => u32::try_from(w).ok(),
        Some(w) => {
            p.invalid(
                format!("{at}.weight"),
                format!("{w} is not in 0-{MAX_WEIGHT}"),
            );
            None
        }
    };
    let port = match b.port {
        None => Some(None),
        Some(n) => port(n, &format!("{at}.port"), p).map(Some),
    };
    let Some(name) = b.name.as_deref().filter(|n| !n.is_empty()) else {
        p.add(format!("{at}.name"), Reason::Missing);
        return None;
    };
    let target = match (
        b.group.as_deref().unwrap_or(""),
        b.kind.as_deref().unwrap_or("Service"),
    ) {
        ("", "Service") | ("multicluster.x-k8s.io", "ServiceImport") => BackendTarget::Global {
            service: name.to_string(),
        },
        ("fedmesh.io", "ServiceImport") => match name.split_once('.') {
            Some((cluster, service))
                if crate::routes::is_label(cluster) && crate::routes::is_label(service) =>
            {
                BackendTarget::Cluster {
                    cluster: cluster.to_string(),
                    service: service.to_string(),
                }
            }
            _ => {
                p.invalid(
                    format!("{at}.name"),
                    format!("{name:?} is not <cluster>.<service> (a fedmesh.io ServiceImport names one cluster's copy, as west.hello)"),
                );
                return None;
            }
        },
        (group, kind) => {
            p.invalid(
                format!("{at}.kind"),
                format!("{group:?}/{kind} is not a supported backend; use a Service, a multicluster.x-k8s.io ServiceImport or a fedmesh.io ServiceImport"),
            );
            return None;
        }
    };
    Some(Backend {
        target,
        port: port?,
        weight: weight?,
    })
}

fn timeouts(t: &TimeoutsDoc, at: &str, p: &mut Problems) -> Timeouts {
    p.unsupported(at, &t.extra);
    // Gateway API: a zero duration disables the timeout.
    let read = |text: Option<&str>, field: &str, p: &mut Problems| {
        text.and_then(|t| duration(t, &format!("{at}.{field}"), p))
            .filter(|d| !d.is_zero())
    };
    let request = read(t.request.as_deref(), "request", p);
    let backend_request = read(t.backend_request.as_deref(), "backendRequest", p);
    if let (Some(r), Some(b)) = (request, backend_request)
        && b > r
    {
        p.invalid(
            format!("{at}.backendRequest"),
            format!("{b:?} is longer than timeouts.request ({r:?}); it must not be"),
        );
    }
    Timeouts {
        request,
        backend_request,
    }
}

fn retry(r: &RetryDoc, at: &str, p: &mut Problems) -> Option<Retry> {
    p.unsupported(at, &r.extra);
    let attempts = match r.attempts {
        None => Some(1),
        Some(n) if (0..=10).contains(&n) => u32::try_from(n).ok(),
        Some(n) => {
            p.invalid(format!("{at}.attempts"), format!("{n} is not in 0-10"));
            None
        }
    };
    let backoff = r
        .backoff
        .as_deref()
        .map(|b| duration(b, &format!("{at}.backoff"), p));
    let mut codes = Vec::new();
    for (i, &c) in r.codes.iter().enumerate() {
        match u16::try_from(c).ok().filter(|c| (400..=599).contains(c)) {
            Some(code) => codes.push(code),
            None => p.invalid(
                format!("{at}.codes[{i}]"),
                format!("{c} is not an HTTP status from 400 to 599"),
            ),
        }
    }
    Some(Retry {
        attempts: attempts?,
        backoff: match backoff {
            None => None,
            Some(parsed) => Some(parsed?),
        },
        codes,
    })
}
