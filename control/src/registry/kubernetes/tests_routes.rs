//! HTTPRoutes and FaultInjections in the Kubernetes registry's view,
//! driven with watch events directly.

use super::tests::listed_view;
use super::*;

const ROUTE: &str = r#"
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: canary, namespace: demo }
spec:
  parentRefs: [ { group: "", kind: Service, name: hello, port: 8080 } ]
  rules:
    - backendRefs: [ { kind: Service, name: hello, port: 8080 } ]
"#;

const BROKEN: &str = r#"
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: broken, namespace: demo }
spec:
  parentRefs: [ { group: "", kind: Service, name: hello } ]
  rules: []
"#;

fn route(e: fn(DynamicObject) -> Event<DynamicObject>, yaml: &str) -> Watched {
    let value: serde_json::Value = serde_saphyr::from_str(yaml).expect("test YAML");
    let object = serde_json::from_value(value).expect("a route object");
    Watched::Route(Source::Routes(0), RouteItem::Event(e(object)))
}

fn names(view: &View) -> Vec<String> {
    view.snapshot()
        .routes
        .routes
        .iter()
        .map(|r| r.route.name.clone())
        .collect()
}

#[test]
fn route_events_change_the_routes_and_an_invalid_one_is_a_warning() {
    let mut view = listed_view();
    assert!(view.apply(route(Event::Apply, ROUTE)));
    assert_eq!(names(&view), ["canary"]);
    assert!(
        !view.apply(route(Event::Apply, ROUTE)),
        "no change, no rebuild"
    );
    assert!(view.apply(route(Event::Apply, BROKEN)));
    let snap = view.snapshot();
    assert_eq!(names(&view), ["canary"], "the invalid route breaks nothing");
    let warning = &snap.routes.problems[0];
    assert_eq!(warning.source, "kubernetes API");
    assert!(
        warning.message.contains("HTTPRoute demo/broken"),
        "{warning:?}"
    );
    assert!(snap.problems.is_empty(), "a route is no registry problem");
    assert!(view.apply(route(Event::Delete, ROUTE)));
    assert!(names(&view).is_empty());
}

#[test]
fn routes_never_hold_the_view_pending_and_a_missing_crd_is_no_problem() {
    let mut view = listed_view();
    let snap = view.snapshot();
    assert!(!snap.pending, "routes not listed yet: services still serve");
    view.apply(Watched::Route(Source::Routes(0), RouteItem::Absent));
    view.apply(Watched::Route(Source::Faults(0), RouteItem::Absent));
    let snap = view.snapshot();
    assert!(snap.problems.is_empty(), "{:?}", snap.problems);
    let failed = RouteItem::Failed("403 Forbidden".into());
    assert!(view.apply(Watched::Route(Source::Faults(0), failed)));
    let snap = view.snapshot();
    assert!(
        snap.problems
            .iter()
            .any(|p| p.message.contains("cannot watch FaultInjections: 403")),
        "{:?}",
        snap.problems
    );
}
