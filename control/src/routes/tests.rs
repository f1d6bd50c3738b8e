use serde_json::{Value, json};

use super::*;

fn sourced(source: &str, object: Value) -> Sourced<Value> {
    Sourced {
        source: source.into(),
        object,
    }
}

fn route(name: &str, service: &str, rule: Value) -> Value {
    json!({
        "apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
        "metadata": {"name": name, "namespace": "demo"},
        "spec": {"parentRefs": [{"group": "", "kind": "Service", "name": service}], "rules": [rule]},
    })
}

#[test]
fn valid_routes_are_kept_and_invalid_ones_are_warnings_naming_file_and_field() {
    let view = RouteView::build(
        &[
            sourced("a.yaml", route("good", "hello", json!({}))),
            sourced(
                "b.yaml",
                route(
                    "bad",
                    "hello",
                    json!({"matches": [{"path": {"type": "Exact", "value": "x"}}]}),
                ),
            ),
            sourced("c.yaml", route("good", "hello", json!({}))),
        ],
        &[],
    );
    assert_eq!(view.names_for(&ServiceKey::new("demo", "hello")), ["good"]);
    let msgs: Vec<String> = view.problems.iter().map(ToString::to_string).collect();
    assert_eq!(msgs.len(), 2, "{msgs:#?}");
    assert!(
        msgs[0].starts_with("b.yaml: HTTPRoute demo/bad: spec.rules[0].matches[0].path.value:"),
        "{msgs:#?}"
    );
    assert!(
        msgs[1].starts_with("c.yaml: HTTPRoute demo/good is defined more than once"),
        "{msgs:#?}"
    );
    assert_eq!(view.to_proto().len(), 1);
}

#[test]
fn unknown_parents_and_missing_faults_are_warnings() {
    let fault_rule = json!({"filters": [{"type": "ExtensionRef", "extensionRef": {"group": "fedmesh.io", "kind": "FaultInjection", "name": "flaky"}}]});
    let view = RouteView::build(&[sourced("a.yaml", route("r", "ghost", fault_rule))], &[]);
    assert_eq!(view.routes.len(), 1);
    assert!(
        view.problems[0]
            .message
            .contains("names FaultInjection flaky"),
        "{:?}",
        view.problems
    );
    let unknown = view.unknown_parents(|k| k.name == "hello");
    assert!(
        unknown[0]
            .message
            .contains("parent Service demo/ghost is not known here"),
        "{unknown:?}"
    );
    let fault = json!({"apiVersion": "fedmesh.io/v1alpha1", "kind": "FaultInjection",
                       "metadata": {"name": "flaky", "namespace": "demo"}, "spec": {"abort": {"httpStatus": 503}}});
    let fault_rule = json!({"filters": [{"type": "ExtensionRef", "extensionRef": {"group": "fedmesh.io", "kind": "FaultInjection", "name": "flaky"}}]});
    let view = RouteView::build(
        &[sourced("a.yaml", route("r", "hello", fault_rule))],
        &[sourced("f.yaml", fault)],
    );
    assert!(view.problems.is_empty(), "{:?}", view.problems);
    assert_eq!(view.to_proto().len(), 2);
}
