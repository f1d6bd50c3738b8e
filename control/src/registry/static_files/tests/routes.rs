//! HTTPRoutes and FaultInjections beside Services in the folder.

use super::*;

const ROUTES: &str = r#"apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: canary, namespace: demo }
spec:
  parentRefs: [ { group: "", kind: Service, name: hello, port: 8080 } ]
  rules:
    - matches: [ { headers: [ { name: x-canary, value: "true" } ] } ]
      backendRefs: [ { group: fedmesh.io, kind: ServiceImport, name: west.hello, port: 8080 } ]
      filters: [ { type: ExtensionRef, extensionRef: { group: fedmesh.io, kind: FaultInjection, name: flaky } } ]
---
apiVersion: fedmesh.io/v1alpha1
kind: FaultInjection
metadata: { name: flaky, namespace: demo }
spec: { abort: { httpStatus: 503, percentage: 0.5 } }
"#;

const BAD: &str = r#"apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: broken, namespace: demo }
spec:
  parentRefs: [ { group: "", kind: Service, name: hello } ]
  rules:
    - matches: [ { path: { type: RegularExpression, value: "/(" } } ]
"#;

#[test]
fn routes_load_beside_services_and_a_bad_one_is_a_warning_not_a_registry_problem() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("hello.yaml"), HELLO).unwrap();
    std::fs::write(dir.path().join("routes.yaml"), ROUTES).unwrap();
    std::fs::write(dir.path().join("bad-route.yaml"), BAD).unwrap();
    let snap = snapshot_after_rescan(&mut Folder::new(dir.path()));
    assert!(snap.problems.is_empty(), "{:?}", snap.problems);
    assert!(snap.services.contains_key(&key("hello")));
    assert_eq!(snap.routes.names_for(&key("hello")), ["canary"]);
    assert_eq!(snap.routes.faults.len(), 1);
    let warnings = &snap.routes.problems;
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(
        warnings[0].source.ends_with("bad-route.yaml"),
        "{warnings:?}"
    );
    assert!(
        warnings[0]
            .message
            .starts_with("HTTPRoute demo/broken: spec.rules[0].matches[0].path.value:"),
        "{warnings:?}"
    );
}
