//! `registry.namespaces` scopes all of Kubernetes mode, the MCS API
//! controller included: east (Kubernetes mode on a fake API server, no
//! real one can run here; see `fedmesh_tests::fake_kube`) watches `demo`
//! only, west is a static-registry cluster. A `ServiceExport` in another
//! namespace is ignored (not exported, no status written), and an import
//! of another namespace gets no `ServiceImport`, while `demo` works.

use std::time::Duration;

use fedmesh_tests::fake_kube::{FakeKube, Kind};
use fedmesh_tests::{EXPORT, Federation, service_yaml, wait_until};
use serde_json::Value;

const SYNC: Duration = Duration::from_secs(20);

fn service_export(ns: &str, name: &str) -> String {
    format!(
        "apiVersion: multicluster.x-k8s.io/v1alpha1\nkind: ServiceExport\nmetadata: {{ name: {name}, namespace: {ns} }}\n"
    )
}

fn object(api: &FakeKube, kind: Kind, ns: &str, name: &str) -> Option<Value> {
    api.objects(kind, "")
        .into_iter()
        .find(|o| o["metadata"]["namespace"] == ns && o["metadata"]["name"] == name)
}

#[test]
fn a_service_export_outside_registry_namespaces_is_ignored() {
    let api = FakeKube::start(std::net::Ipv4Addr::LOCALHOST);
    for ns in ["demo", "other"] {
        for doc in service_yaml(ns, "hello", "http", 8080, 18080, &[], &["10.1.0.1"]).split("---") {
            api.apply(doc);
        }
        api.apply(&service_export(ns, "hello"));
    }
    let mut fed = Federation::new();
    fed.add("east", "us-east", "us-east-1a", "");
    fed.add("west", "us-west", "us-west-2a", "");
    api.serve(fed.get_mut("east"), "  namespaces: [demo]\n");
    for c in &mut fed.clusters {
        c.start();
    }
    fed.join("west", "east");
    fed.wait_connected("east", "west", SYNC);
    // West exports a service of another namespace; once east imports it,
    // one of demo.
    let west = fed.get("west");
    let payments = service_yaml("prod", "payments", "grpc", 9000, 19000, &[EXPORT], &[]);
    west.write_manifest("payments.yaml", &payments);
    wait_until("east imports prod/payments", SYNC, || {
        fed.get("east").service("prod/payments").is_some()
    });
    let web = service_yaml("demo", "web", "http", 8080, 18080, &[EXPORT], &[]);
    west.write_manifest("web.yaml", &web);

    // demo works: exported, its status written, west's import kept.
    wait_until("west imports demo/hello", SYNC, || {
        fed.get("west").service_clusters("demo/hello") == ["east"]
    });
    let valid = |ns: &str| {
        object(&api, Kind::ServiceExport, ns, "hello").is_some_and(|se| {
            se["status"]["conditions"]
                .as_array()
                .is_some_and(|c| c.iter().any(|c| c["type"] == "Valid"))
        })
    };
    wait_until(
        "demo/hello's ServiceExport has its conditions",
        SYNC,
        || valid("demo"),
    );
    wait_until("demo/web gets a ServiceImport", SYNC, || {
        object(&api, Kind::ServiceImport, "demo", "web").is_some()
    });

    // The rest is not touched: the pass that wrote demo/web's import had
    // prod/payments in its table and every ServiceExport it watches.
    assert!(
        fed.get("west").service("other/hello").is_none(),
        "other/hello must not be exported"
    );
    let other = object(&api, Kind::ServiceExport, "other", "hello").expect("other's export");
    assert!(
        other.get("status").is_none_or(Value::is_null),
        "no status is written outside registry.namespaces: {other}"
    );
    assert!(
        object(&api, Kind::ServiceImport, "prod", "payments").is_none(),
        "no ServiceImport outside registry.namespaces"
    );
}
