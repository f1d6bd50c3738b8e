//! HTTPRoutes in the static folder, through the real `fedctl` and `fedgw`:
//! beside a service, a valid route is listed by `fedctl services -o json`
//! and reaches the gateway's snapshot (its "HTTP routes compiled" log line
//! names the service), while an invalid one is a `WARN` line of `fedctl
//! check` naming its file and field, and the check still passes. Every
//! route shown in the docs is valid.

use std::time::Duration;

use fedmesh_control::registry::static_files::StaticFiles;
use fedmesh_tests::docs::{fenced_blocks, markdown_files, shown};
use fedmesh_tests::{EXPORT, Federation, service_yaml, wait_until};

const SYNC: Duration = Duration::from_secs(20);

const VALID: &str = r#"apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: canary, namespace: demo }
spec:
  parentRefs: [ { group: "", kind: Service, name: hello, port: 8080 } ]
  rules:
    - matches: [ { headers: [ { name: x-canary, value: "true" } ] } ]
      backendRefs: [ { group: fedmesh.io, kind: ServiceImport, name: east.hello, port: 8080 } ]
    - backendRefs: [ { kind: Service, name: hello, port: 8080 } ]
      timeouts: { request: 300ms }
"#;

const INVALID: &str = r#"apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: broken, namespace: demo }
spec:
  parentRefs: [ { group: "", kind: Service, name: hello } ]
  rules:
    - matches: [ { path: { type: RegularExpression, value: "/(unclosed" } } ]
"#;

#[test]
fn a_valid_route_is_listed_and_sent_and_an_invalid_one_is_a_warning() {
    let mut fed = Federation::standard(1, "");
    fed.get_mut("east").start_gateway();
    let east = fed.get("east");
    east.write_manifest(
        "hello.yaml",
        &service_yaml(
            "demo",
            "hello",
            "http",
            8080,
            18080,
            &[EXPORT],
            &["127.0.0.1"],
        ),
    );
    east.write_manifest("canary-route.yaml", VALID);
    east.write_manifest("bad-route.yaml", INVALID);

    wait_until(
        "services -o json lists the valid route of demo/hello",
        SYNC,
        || {
            east.service("demo/hello")
                .is_some_and(|s| s["routes"] == serde_json::json!(["canary"]))
        },
    );

    let mut last = String::new();
    wait_until(
        "check passes and warns about the invalid route",
        SYNC,
        || {
            let c = east.fedctl(&["check"]);
            last = format!("{}{}", c.stdout, c.stderr);
            c.ok && c.stdout.lines().any(|l| {
                l.starts_with("WARN")
                    && l.contains("bad-route.yaml")
                    && l.contains("HTTPRoute demo/broken: spec.rules[0].matches[0].path.value:")
            })
        },
    );
    assert!(
        !last.contains("canary-route.yaml"),
        "the valid route is no warning:\n{last}"
    );

    wait_until(
        "the gateway compiles the route from its snapshot",
        SYNC,
        || {
            let log = east.gateway_log();
            log.lines()
                .any(|l| l.contains("HTTP routes compiled") && l.contains("demo/hello"))
        },
    );
}

#[test]
fn every_route_and_fault_in_the_docs_is_valid() {
    let scratch = tempfile::tempdir().expect("temp dir");
    let mut checked = 0;
    for doc in markdown_files() {
        let text = std::fs::read_to_string(&doc).expect("read a markdown file");
        for (line, block) in fenced_blocks(&text, "yaml") {
            if !block.contains("kind: HTTPRoute") && !block.contains("kind: FaultInjection") {
                continue;
            }
            checked += 1;
            let dir = scratch.path().join(checked.to_string());
            std::fs::create_dir_all(&dir).expect("mkdir");
            std::fs::write(dir.join("block.yaml"), &block).expect("write");
            let snap = StaticFiles::load(&dir);
            let at = format!("{}, block at line {line}", shown(&doc));
            assert!(
                snap.routes.problems.is_empty(),
                "{at}: {:?}\n{block}",
                snap.routes.problems
            );
            assert!(
                !snap.routes.routes.is_empty() || !snap.routes.faults.is_empty(),
                "{at}: nothing read\n{block}"
            );
        }
    }
    assert!(checked >= 1, "no route in the docs was checked");
}
