use std::time::Duration;

use http::{HeaderMap, HeaderValue, Method, StatusCode};
use serde_json::{Value, json};

use super::*;

/// A route on `hello` in `demo` with these rules.
fn route_doc(name: &str, rules: Value) -> Value {
    json!({
        "apiVersion": ROUTE_API_VERSION,
        "kind": "HTTPRoute",
        "metadata": {"name": name, "namespace": "demo"},
        "spec": {
            "parentRefs": [{"group": "", "kind": "Service", "name": "hello", "port": 8080}],
            "rules": rules,
        },
    })
}

fn route(name: &str, rules: Value) -> HttpRoute {
    match parse_route(&route_doc(name, rules)) {
        Ok(r) => r,
        Err(e) => panic!("route {name} should be valid: {e}"),
    }
}

fn problems(doc: &Value) -> Vec<String> {
    match parse_route(doc) {
        Ok(_) => Vec::new(),
        Err(e) => e.problems().iter().map(ToString::to_string).collect(),
    }
}

/// The name of the rule a request matches in a table of `routes`.
fn matched(
    table: &RouteTable,
    method: Method,
    target: &str,
    headers: &[(&str, &str)],
) -> Option<String> {
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (target, None),
    };
    let mut map = HeaderMap::new();
    for (k, v) in headers {
        map.append(
            http::HeaderName::from_bytes(k.as_bytes()).expect("test header name"),
            HeaderValue::from_str(v).expect("test header value"),
        );
    }
    table.find(8080, &method, path, query, &map).map(|m| {
        format!(
            "{}/{}",
            m.route.name,
            m.rule.name.clone().unwrap_or_default()
        )
    })
}

fn table(routes: Vec<HttpRoute>) -> RouteTable {
    RouteTable::build("demo", "hello", routes, Vec::new())
}

#[test]
fn a_full_route_validates_into_the_model() {
    let r = route(
        "canary",
        json!([{
            "name": "split",
            "matches": [{"path": {"type": "PathPrefix", "value": "/api/"}, "method": "GET",
                         "headers": [{"name": "X-Canary", "value": "true"}],
                         "queryParams": [{"name": "v", "value": "2"}]}],
            "filters": [
                {"type": "RequestHeaderModifier", "requestHeaderModifier": {"set": [{"name": "x-a", "value": "1"}], "remove": ["x-b"]}},
                {"type": "ExtensionRef", "extensionRef": {"group": "fedmesh.io", "kind": "FaultInjection", "name": "flaky"}}
            ],
            "backendRefs": [
                {"group": "fedmesh.io", "kind": "ServiceImport", "name": "east.hello", "port": 8080, "weight": 80},
                {"group": "multicluster.x-k8s.io", "kind": "ServiceImport", "name": "hello", "port": 8080, "weight": 20}
            ],
            "timeouts": {"request": "300ms", "backendRequest": "100ms"},
            "retry": {"attempts": 2, "backoff": "50ms", "codes": [502, 503]}
        }]),
    );
    let rule = &r.rules[0];
    assert_eq!(
        r.parents,
        vec![ParentRef {
            service: "hello".into(),
            port: Some(8080)
        }]
    );
    assert_eq!(rule.matches[0].path, PathMatch::Prefix("/api".into()));
    assert_eq!(rule.matches[0].headers[0].name.as_str(), "x-canary");
    assert_eq!(rule.fault.as_deref(), Some("flaky"));
    assert_eq!(
        rule.backends[0].target,
        BackendTarget::Cluster {
            cluster: "east".into(),
            service: "hello".into()
        }
    );
    assert_eq!(
        rule.backends[1].target,
        BackendTarget::Global {
            service: "hello".into()
        }
    );
    assert_eq!(rule.timeouts.request, Some(Duration::from_millis(300)));
    let retry = rule.retry.clone().expect("retry is set");
    assert_eq!(
        (retry.attempts, retry.backoff, retry.codes),
        (2, Some(Duration::from_millis(50)), vec![502, 503])
    );
}

#[test]
fn every_problem_is_reported_with_its_field_path() {
    let doc = route_doc(
        "bad",
        json!([
            {"backendRefs": [{"name": "hello", "weight": -1}]},
            {"matches": [{"path": {"type": "Exact", "value": "no-slash"}},
                         {"path": {"type": "RegularExpression", "value": "/(unclosed"}}],
             "filters": [{"type": "URLRewrite", "urlRewrite": {}}],
             "sessionPersistence": {}}
        ]),
    );
    let got = problems(&doc);
    for want in [
        "spec.rules[0].backendRefs[0].weight: -1 is not in 0-1000000",
        "spec.rules[1].matches[0].path.value: \"no-slash\" does not start with \"/\"",
        "spec.rules[1].matches[1].path.value: \"/(unclosed\" is not a valid regular expression: unclosed group",
        "spec.rules[1].filters[0].type: is not supported",
        "spec.rules[1].filters[0].urlRewrite: is not supported",
        "spec.rules[1].sessionPersistence: is not supported",
    ] {
        assert!(
            got.iter().any(|p| p.starts_with(want)),
            "missing {want:?} in {got:#?}"
        );
    }
    assert_eq!(got.len(), 6, "{got:#?}");
}

#[test]
fn a_huge_regex_is_refused_by_the_size_limit() {
    let doc = route_doc(
        "huge",
        json!([{"matches": [{"headers": [{"type": "RegularExpression", "name": "x", "value": "\\w{500}\\w{500}"}]}]}]),
    );
    let got = problems(&doc);
    assert_eq!(got.len(), 1, "{got:#?}");
    assert!(
        got[0].starts_with("spec.rules[0].matches[0].headers[0].value:"),
        "{got:#?}"
    );
    assert!(got[0].contains("size limit"), "{got:#?}");
}

#[test]
fn a_route_without_a_service_parent_applies_to_nothing() {
    let mut doc = route_doc("gw", json!([{}]));
    doc["spec"]["parentRefs"] = json!([{"name": "edge"}]);
    let got = problems(&doc);
    assert!(
        got[0].starts_with("spec.parentRefs: no parentRef names a Service"),
        "{got:#?}"
    );
}

#[test]
fn shape_errors_and_bad_backends_are_reported() {
    let mut doc = route_doc("x", json!([]));
    doc["spec"]["rules"] = json!("not a list");
    assert!(matches!(
        parse_route(&doc),
        Err(RouteError::Document { .. })
    ));
    let doc = route_doc(
        "x",
        json!([{"backendRefs": [{"group": "fedmesh.io", "kind": "ServiceImport", "name": "hello"},
                                {"kind": "Deployment", "name": "hello"}]}]),
    );
    let got = problems(&doc);
    assert!(got[0].contains("is not <cluster>.<service>"), "{got:#?}");
    assert!(got[1].contains("is not a supported backend"), "{got:#?}");
}

#[test]
fn gateway_api_durations_follow_gep_2257() {
    assert_eq!(
        parse_gateway_duration("1h30m"),
        Some(Duration::from_secs(5400))
    );
    assert_eq!(
        parse_gateway_duration("250ms"),
        Some(Duration::from_millis(250))
    );
    assert_eq!(parse_gateway_duration("0s"), Some(Duration::ZERO));
    for bad in ["", "1.5s", "-1s", "10", "123456s", "1h1m1s1ms1h", "1d"] {
        assert_eq!(parse_gateway_duration(bad), None, "{bad:?}");
    }
}

#[test]
fn exact_path_beats_prefix_and_longest_prefix_wins() {
    let t = table(vec![route(
        "r",
        json!([
            {"name": "root", "matches": [{"path": {"value": "/"}}]},
            {"name": "api", "matches": [{"path": {"value": "/api"}}]},
            {"name": "apiv2", "matches": [{"path": {"value": "/api/v2/"}}]},
            {"name": "exact", "matches": [{"path": {"type": "Exact", "value": "/api/v2/x"}}]}
        ]),
    )]);
    assert_eq!(
        matched(&t, Method::GET, "/api/v2/x", &[]).as_deref(),
        Some("r/exact")
    );
    assert_eq!(
        matched(&t, Method::GET, "/api/v2/y", &[]).as_deref(),
        Some("r/apiv2")
    );
    assert_eq!(
        matched(&t, Method::GET, "/api/v2", &[]).as_deref(),
        Some("r/apiv2")
    );
    assert_eq!(
        matched(&t, Method::GET, "/api/v3", &[]).as_deref(),
        Some("r/api")
    );
    // Prefixes match whole path elements.
    assert_eq!(
        matched(&t, Method::GET, "/apiary", &[]).as_deref(),
        Some("r/root")
    );
}

#[test]
fn method_then_headers_then_query_break_ties() {
    let t = table(vec![route(
        "r",
        json!([
            {"name": "plain", "matches": [{"path": {"value": "/"}}]},
            {"name": "query", "matches": [{"queryParams": [{"name": "a", "value": "1"}, {"name": "b", "value": "2"}]}]},
            {"name": "header", "matches": [{"headers": [{"name": "x-canary", "value": "true"}]}]},
            {"name": "method", "matches": [{"method": "POST"}]}
        ]),
    )]);
    let canary = [("x-canary", "true")];
    assert_eq!(
        matched(&t, Method::POST, "/?a=1&b=2", &canary).as_deref(),
        Some("r/method")
    );
    assert_eq!(
        matched(&t, Method::GET, "/?a=1&b=2", &canary).as_deref(),
        Some("r/header")
    );
    assert_eq!(
        matched(&t, Method::GET, "/?b=2&a=1", &[]).as_deref(),
        Some("r/query")
    );
    assert_eq!(
        matched(&t, Method::GET, "/?a=1", &[]).as_deref(),
        Some("r/plain")
    );
    // Header names are case-insensitive, values exact.
    assert_eq!(
        matched(&t, Method::GET, "/", &[("X-Canary", "true")]).as_deref(),
        Some("r/header")
    );
    assert_eq!(
        matched(&t, Method::GET, "/", &[("x-canary", "TRUE")]).as_deref(),
        Some("r/plain")
    );
}

#[test]
fn oldest_route_then_name_then_rule_order_break_the_last_ties() {
    let mut young = route("a-young", json!([{"name": "one"}]));
    young.created = Some("2026-11-02T00:00:00Z".into());
    let mut old = route("z-old", json!([{"name": "one"}]));
    old.created = Some("2026-11-01T00:00:00Z".into());
    let t = table(vec![young.clone(), old]);
    assert_eq!(
        matched(&t, Method::GET, "/", &[]).as_deref(),
        Some("z-old/one")
    );
    let t = table(vec![
        route("b", json!([{"name": "one"}])),
        route("a", json!([{"name": "one"}, {"name": "two"}])),
    ]);
    assert_eq!(matched(&t, Method::GET, "/", &[]).as_deref(), Some("a/one"));
    // A route with a timestamp is older than one without.
    let t = table(vec![route("a", json!([{"name": "one"}])), young]);
    assert_eq!(
        matched(&t, Method::GET, "/", &[]).as_deref(),
        Some("a-young/one")
    );
}

#[test]
fn regex_paths_rank_between_exact_and_prefix_and_match_whole_paths() {
    let t = table(vec![route(
        "r",
        json!([
            {"name": "prefix", "matches": [{"path": {"value": "/v1/users"}}]},
            {"name": "regex", "matches": [{"path": {"type": "RegularExpression", "value": "/v[0-9]+/users"}}]},
            {"name": "header-re", "matches": [{"path": {"value": "/h"}, "headers": [{"type": "RegularExpression", "name": "x-id", "value": "[a-f]+"}]}]}
        ]),
    )]);
    assert_eq!(
        matched(&t, Method::GET, "/v1/users", &[]).as_deref(),
        Some("r/regex")
    );
    assert_eq!(
        matched(&t, Method::GET, "/v1/users/7", &[]).as_deref(),
        Some("r/prefix")
    );
    assert_eq!(
        matched(&t, Method::GET, "/h", &[("x-id", "abc")]).as_deref(),
        Some("r/header-re")
    );
    assert_eq!(matched(&t, Method::GET, "/h", &[("x-id", "abcz")]), None);
}

#[test]
fn routes_of_other_services_and_ports_do_not_apply() {
    let mut other = route("other", json!([{"name": "one"}]));
    other.parents[0].service = "bye".into();
    let t = table(vec![other]);
    assert!(t.is_empty());
    let t = table(vec![route("r", json!([{"name": "one"}]))]);
    let none = HeaderMap::new();
    assert!(t.find(9090, &Method::GET, "/", None, &none).is_none());
    assert!(t.find(8080, &Method::GET, "/", None, &none).is_some());
}

#[test]
fn weighted_choice_follows_the_roll() {
    let r = route(
        "w",
        json!([{"backendRefs": [
            {"name": "hello", "weight": 80},
            {"group": "fedmesh.io", "kind": "ServiceImport", "name": "west.hello", "weight": 20},
            {"name": "never", "weight": 0}
        ]}]),
    );
    let backends = &r.rules[0].backends;
    let pick = |roll: u64| choose_backend(backends, roll).map(|b| b.weight);
    assert_eq!(pick(0), Some(80));
    assert_eq!(pick(u64::MAX / 10 * 8 - 1), Some(80));
    assert_eq!(pick(u64::MAX / 10 * 8 + 10), Some(20));
    assert_eq!(pick(u64::MAX), Some(20));
    // Over an even spread of rolls the split is the weights'.
    let step = u64::MAX / 1000;
    let east = (0..1000u64)
        .filter(|i| pick(i * step + step / 2) == Some(80))
        .count();
    assert_eq!(east, 800);
    let zero = route(
        "z",
        json!([{"backendRefs": [{"name": "hello", "weight": 0}]}]),
    );
    assert!(choose_backend(&zero.rules[0].backends, 7).is_none());
}

#[test]
fn header_modifiers_set_add_and_remove() {
    let r = route(
        "h",
        json!([{"filters": [{"type": "ResponseHeaderModifier", "responseHeaderModifier": {
            "set": [{"name": "X-Set", "value": "new"}],
            "add": [{"name": "x-add", "value": "two"}],
            "remove": ["x-gone"]
        }}]}]),
    );
    let m = r.rules[0]
        .response_headers
        .clone()
        .expect("the filter is set");
    let mut h = HeaderMap::new();
    h.insert("x-set", HeaderValue::from_static("old"));
    h.append("x-set", HeaderValue::from_static("older"));
    h.insert("x-add", HeaderValue::from_static("one"));
    h.insert("x-gone", HeaderValue::from_static("bye"));
    m.apply(&mut h);
    assert_eq!(h.get_all("x-set").iter().collect::<Vec<_>>(), ["new"]);
    assert_eq!(
        h.get_all("x-add").iter().collect::<Vec<_>>(),
        ["one", "two"]
    );
    assert!(!h.contains_key("x-gone"));
}

fn fault_doc(spec: Value) -> Value {
    json!({"apiVersion": FAULT_API_VERSION, "kind": "FaultInjection",
           "metadata": {"name": "flaky", "namespace": "demo"}, "spec": spec})
}

#[test]
fn faults_validate_and_decide_by_the_roll() {
    let f = parse_fault(&fault_doc(json!({
        "delay": {"fixedDelay": "200ms", "percentage": 10},
        "abort": {"httpStatus": 503, "percentage": 2.5}
    })))
    .expect("valid fault");
    assert_eq!(f.abort.map(|a| a.share), Some(Fraction(25_000)));
    let hit = f.decide(0, 24_999);
    assert_eq!(hit.delay, Some(Duration::from_millis(200)));
    assert_eq!(hit.abort, Some(StatusCode::SERVICE_UNAVAILABLE));
    assert_eq!(f.decide(10 * PERCENT, 25_000), FaultDecision::default());
    let all = parse_fault(&fault_doc(json!({"abort": {"httpStatus": 500}}))).expect("valid");
    assert!(
        (0..ALL)
            .step_by(997)
            .all(|roll| all.decide(roll, roll).abort.is_some())
    );
}

#[test]
fn bad_faults_name_each_field() {
    let err = parse_fault(&fault_doc(json!({
        "delay": {"fixedDelay": "soon", "percentage": 101},
        "abort": {"httpStatus": 99},
        "reset": {}
    })))
    .expect_err("invalid fault");
    let got: Vec<String> = err.problems().iter().map(ToString::to_string).collect();
    for want in [
        "spec.reset: is not supported",
        "spec.delay.percentage: 101 is not a percentage",
        "spec.delay.fixedDelay: \"soon\" is not a Gateway API duration",
        "spec.abort.httpStatus: 99 is not an HTTP status",
    ] {
        assert!(
            got.iter().any(|p| p.starts_with(want)),
            "missing {want:?} in {got:#?}"
        );
    }
    assert!(parse_fault(&fault_doc(json!({}))).is_err());
}

#[test]
fn a_rule_names_its_fault_or_reports_it_missing() {
    let r = route(
        "f",
        json!([{"filters": [{"type": "ExtensionRef", "extensionRef": {"group": "fedmesh.io", "kind": "FaultInjection", "name": "flaky"}}]}]),
    );
    let none = HeaderMap::new();
    let t = RouteTable::build("demo", "hello", vec![r.clone()], Vec::new());
    let m = t
        .find(8080, &Method::GET, "/", None, &none)
        .expect("matches");
    assert_eq!(m.fault, FaultRef::Missing);
    let f = parse_fault(&fault_doc(json!({"abort": {"httpStatus": 503}}))).expect("valid");
    let t = RouteTable::build("demo", "hello", vec![r], vec![f]);
    let m = t
        .find(8080, &Method::GET, "/", None, &none)
        .expect("matches");
    assert!(matches!(m.fault, FaultRef::Found(f) if f.name == "flaky"));
}

#[test]
fn a_document_survives_the_wire_and_a_bad_one_is_named() {
    let doc = route_doc("r", json!([{"name": "one"}]));
    let wire = document(ROUTE_KIND, "demo", "r", &doc);
    let back = RouteObject::try_from(&wire).expect("valid on the wire");
    assert_eq!(
        back,
        RouteObject::Route(route("r", json!([{"name": "one"}])))
    );
    let mut bad = wire.clone();
    bad.kind = "TCPRoute".into();
    assert!(matches!(
        RouteObject::try_from(&bad),
        Err(WireError::UnknownKind { .. })
    ));
    bad.kind = ROUTE_KIND.into();
    bad.json = b"{".to_vec();
    assert!(
        RouteObject::try_from(&bad)
            .unwrap_err()
            .to_string()
            .contains("demo/r is not JSON")
    );
}
