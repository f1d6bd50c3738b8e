//! The Multi-Cluster Services API end to end (KEP-1645): east's `fedctl
//! run` reads a fake Kubernetes API server (no real one can run here; the
//! fake speaks the API's JSON over HTTP, `fedmesh_tests::fake_kube`) and
//! west is a static-registry cluster. A `ServiceExport` without the
//! annotation exports; its status says `Valid` and `Conflict`; every
//! import appears as a `ServiceImport` with type, VIP, ports and clusters,
//! follows changes, disappears when the export goes, and is set right by
//! the relist after a 410 Gone.

use std::time::Duration;

use fedmesh_tests::fake_kube::{FakeKube, Kind};
use fedmesh_tests::{EXPORT, Federation, service_yaml, wait_until};
use serde_json::Value;

const SYNC: Duration = Duration::from_secs(20);

/// demo/hello without the export annotation, one endpoint.
fn plain_hello() -> String {
    service_yaml("demo", "hello", "http", 8080, 18080, &[], &["10.1.0.1"])
}

fn service_export(ns: &str, name: &str) -> String {
    format!(
        "apiVersion: multicluster.x-k8s.io/v1alpha1\nkind: ServiceExport\nmetadata: {{ name: {name}, namespace: {ns} }}\n"
    )
}

/// east (Kubernetes registry, on `api`) and west (static), joined.
fn federation(api: &FakeKube) -> Federation {
    let mut fed = Federation::new();
    fed.add("east", "us-east", "us-east-1a", "");
    fed.add("west", "us-west", "us-west-2a", "");
    let east = fed.get_mut("east");
    let config = std::fs::read_to_string(&east.config).expect("read config");
    east.write_config(&format!("{config}registry:\n  kind: kubernetes\n"));
    let kubeconfig = east.dir.join("kubeconfig");
    std::fs::write(&kubeconfig, api.kubeconfig()).expect("write kubeconfig");
    east.env
        .push(("KUBECONFIG".into(), kubeconfig.display().to_string()));
    for c in &mut fed.clusters {
        c.start();
    }
    fed.join("west", "east");
    fed.wait_connected("east", "west", SYNC);
    fed
}

fn apply_all(api: &FakeKube, yaml: &str) {
    for doc in yaml.split("---").filter(|d| !d.trim().is_empty()) {
        api.apply(doc);
    }
}

/// The stored object of `kind` named `ns/name`.
fn object(api: &FakeKube, kind: Kind, ns: &str, name: &str) -> Option<Value> {
    api.objects(kind, "")
        .into_iter()
        .find(|o| o["metadata"]["namespace"] == ns && o["metadata"]["name"] == name)
}

/// `(status, reason, message)` of a ServiceExport's condition.
fn condition(api: &FakeKube, name: &str, type_: &str) -> Option<(String, String, String)> {
    let se = object(api, Kind::ServiceExport, "demo", name)?;
    let c = se["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == type_)?
        .clone();
    let text = |f: &str| c[f].as_str().unwrap_or_default().to_string();
    Some((text("status"), text("reason"), text("message")))
}

/// A ServiceImport as read back: (type, ips, ports, clusters).
type Import = (String, Vec<String>, Vec<u64>, Vec<String>);

/// demo/hello's ServiceImport.
fn hello_import(api: &FakeKube) -> Option<Import> {
    let si = object(api, Kind::ServiceImport, "demo", "hello")?;
    let strings = |v: &Value| -> Vec<String> {
        v.as_array()
            .into_iter()
            .flatten()
            .filter_map(|s| s.as_str().map(String::from))
            .collect()
    };
    let ports = si["spec"]["ports"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| p["port"].as_u64())
        .collect();
    let clusters = si["status"]["clusters"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c["cluster"].as_str().map(String::from))
        .collect();
    let type_ = si["spec"]["type"].as_str().unwrap_or_default().to_string();
    Some((type_, strings(&si["spec"]["ips"]), ports, clusters))
}

#[test]
fn a_service_export_exports_and_gets_valid_and_conflict_conditions() {
    let api = FakeKube::start(std::net::Ipv4Addr::LOCALHOST);
    apply_all(&api, &plain_hello());
    api.apply(&service_export("demo", "hello"));
    api.apply(&service_export("demo", "ghost"));
    let fed = federation(&api);
    wait_until("west imports demo/hello by the ServiceExport", SYNC, || {
        fed.get("west").service_clusters("demo/hello") == ["east"]
    });
    wait_until("the ServiceExport is Valid, without conflict", SYNC, || {
        condition(&api, "hello", "Valid").is_some_and(|c| c.0 == "True")
            && condition(&api, "hello", "Conflict")
                .is_some_and(|c| (c.0.as_str(), c.1.as_str()) == ("False", "NoConflicts"))
    });
    let ghost = condition(&api, "ghost", "Valid").expect("ghost's Valid condition");
    assert_eq!((ghost.0.as_str(), ghost.1.as_str()), ("False", "NoService"));
    let check = fed.get("east").fedctl(&["check"]);
    assert!(
        check.stdout.contains("ServiceExport demo/ghost"),
        "a ServiceExport naming no Service is a problem: {}",
        check.stdout
    );

    // The import: ClusterSetIP with east's VIP, its port, east exporting.
    let vip = |fed: &Federation| {
        fed.get("east")
            .service("demo/hello")
            .and_then(|s| s["vip"].as_str().map(String::from))
    };
    wait_until("east has a VIP for demo/hello", SYNC, || {
        vip(&fed).is_some()
    });
    wait_until("demo/hello's ServiceImport is complete", SYNC, || {
        hello_import(&api).is_some_and(|i| i.1.len() == 1)
    });
    let (type_, ips, ports, clusters) = hello_import(&api).expect("ServiceImport");
    assert_eq!(type_, "ClusterSetIP");
    assert_eq!(Some(ips[0].clone()), vip(&fed), "spec.ips is the VIP");
    assert_eq!(ports, [8080]);
    assert_eq!(clusters, ["east"]);
    let si = object(&api, Kind::ServiceImport, "demo", "hello").expect("ServiceImport");
    assert_eq!(si["metadata"]["labels"]["fedmesh.io/managed-by"], "fedmesh");

    // West exports demo/hello on another port: a conflict naming both.
    let west_hello = service_yaml("demo", "hello", "http", 9090, 18080, &[EXPORT], &[]);
    fed.get("west").write_manifest("hello.yaml", &west_hello);
    wait_until("the ServiceExport has a PortConflict", SYNC, || {
        condition(&api, "hello", "Conflict").is_some_and(|c| c.0 == "True")
    });
    let (_, reason, message) = condition(&api, "hello", "Conflict").expect("Conflict");
    assert_eq!(reason, "PortConflict");
    assert!(
        message.contains("east") && message.contains("west"),
        "{message}"
    );
    wait_until("the ServiceImport lists both clusters", SYNC, || {
        hello_import(&api).is_some_and(|i| i.3 == ["east", "west"])
    });

    // West withdraws: no conflict, east alone again.
    fed.get("west").write_manifest("hello.yaml", "");
    wait_until("the conflict clears", SYNC, || {
        condition(&api, "hello", "Conflict").is_some_and(|c| c.0 == "False")
    });
    wait_until("the ServiceImport lists east alone", SYNC, || {
        hello_import(&api).is_some_and(|i| i.3 == ["east"])
    });

    // The ServiceExport goes: the export and the ServiceImport go with it.
    assert!(api.delete(Kind::ServiceExport, "demo", "hello"));
    wait_until("west withdraws demo/hello", SYNC, || {
        fed.get("west").service("demo/hello").is_none()
    });
    wait_until("the ServiceImport is deleted", SYNC, || {
        hello_import(&api).is_none()
    });
}

#[test]
fn service_imports_made_by_others_are_left_alone() {
    let api = FakeKube::start(std::net::Ipv4Addr::LOCALHOST);
    // Another implementation's import of the same name (no fedmesh label).
    api.apply(
        "apiVersion: multicluster.x-k8s.io/v1alpha1\nkind: ServiceImport\nmetadata: { name: hello, namespace: demo }\nspec: { type: ClusterSetIP, ips: [\"10.9.9.9\"], ports: [ { port: 1 } ] }\n",
    );
    let fed = federation(&api);
    let west_hello = service_yaml("demo", "hello", "http", 8080, 18080, &[EXPORT], &[]);
    fed.get("west").write_manifest("hello.yaml", &west_hello);
    let payments = service_yaml("prod", "payments", "grpc", 9000, 19000, &[EXPORT], &[]);
    fed.get("west").write_manifest("payments.yaml", &payments);
    wait_until("east imports both", SYNC, || {
        fed.get("east").service("demo/hello").is_some()
            && object(&api, Kind::ServiceImport, "prod", "payments").is_some()
    });
    let theirs = hello_import(&api).expect("their ServiceImport");
    assert_eq!(theirs.1, ["10.9.9.9"], "not overwritten");
    assert_eq!(theirs.2, [1]);
    fed.get("west").write_manifest("hello.yaml", "");
    wait_until("east withdraws demo/hello", SYNC, || {
        fed.get("east").service("demo/hello").is_none()
    });
    fed.get("west").write_manifest("payments.yaml", "");
    wait_until("ours is deleted", SYNC, || {
        object(&api, Kind::ServiceImport, "prod", "payments").is_none()
    });
    assert!(hello_import(&api).is_some(), "theirs is never deleted");
}

#[test]
fn a_relist_after_410_gone_sets_service_imports_and_exports_right() {
    let api = FakeKube::start(std::net::Ipv4Addr::LOCALHOST);
    apply_all(&api, &plain_hello());
    let fed = federation(&api);
    let payments = service_yaml("prod", "payments", "grpc", 9000, 19000, &[EXPORT], &[]);
    fed.get("west").write_manifest("payments.yaml", &payments);
    let payments_import = || object(&api, Kind::ServiceImport, "prod", "payments");
    wait_until("prod/payments' ServiceImport exists", SYNC, || {
        payments_import().is_some_and(|si| si["spec"]["ports"][0]["port"] == 9000)
    });
    // While the watches are down: someone edits fedmesh's import, and a
    // ServiceExport appears. Neither is seen until the relist.
    wait_until("east's watches are open", SYNC, || api.open_watches() >= 6);
    let mut edited = payments_import().expect("ServiceImport");
    edited["spec"]["ports"][0]["port"] = 1.into();
    api.apply_unseen(&edited.to_string());
    api.apply_unseen(&service_export("demo", "hello"));
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        fed.get("west").service("demo/hello").is_none(),
        "an unseen ServiceExport must not arrive without a relist"
    );
    assert!(api.expire_watches() >= 6);
    wait_until("the relist exports demo/hello", SYNC, || {
        fed.get("west").service_clusters("demo/hello") == ["east"]
    });
    wait_until("the relist restores the ServiceImport's port", SYNC, || {
        payments_import().is_some_and(|si| si["spec"]["ports"][0]["port"] == 9000)
    });
    wait_until("the new ServiceExport gets its status", SYNC, || {
        condition(&api, "hello", "Valid").is_some_and(|c| c.0 == "True")
    });
}

#[test]
fn without_the_mcs_crds_the_annotation_exports_and_installing_them_later_works() {
    let api = FakeKube::start(std::net::Ipv4Addr::LOCALHOST);
    api.set_mcs_crds(false);
    apply_all(
        &api,
        &service_yaml("demo", "hello", "http", 8080, 18080, &[EXPORT], &[]),
    );
    let fed = federation(&api);
    wait_until("west imports demo/hello by the annotation", SYNC, || {
        fed.get("west").service_clusters("demo/hello") == ["east"]
    });
    let check = fed.get("east").fedctl(&["check"]);
    assert!(
        !check.stdout.contains("ServiceExport") && !check.stdout.contains("not finished"),
        "a missing optional CRD is not a problem, nor a list that never ends: {}",
        check.stdout
    );

    // The CRDs installed later are picked up by the watchers' retries
    // (exponential backoff, at most 30 s apart) without a restart.
    api.set_mcs_crds(true);
    apply_all(
        &api,
        &service_yaml("demo", "later", "http", 8080, 18080, &[], &[]),
    );
    api.apply(&service_export("demo", "later"));
    wait_until(
        "west imports demo/later by its ServiceExport",
        Duration::from_secs(45),
        || fed.get("west").service_clusters("demo/later") == ["east"],
    );
    wait_until("demo/later's ServiceImport appears", SYNC, || {
        object(&api, Kind::ServiceImport, "demo", "later").is_some()
    });
}

#[test]
fn an_import_of_a_namespace_this_cluster_lacks_waits_quietly() {
    let api = FakeKube::start(std::net::Ipv4Addr::LOCALHOST);
    api.without_namespace("absent");
    let fed = federation(&api);
    let west = fed.get("west");
    let elsewhere = service_yaml("absent", "db", "tcp", 5432, 15432, &[EXPORT], &[]);
    west.write_manifest("db.yaml", &elsewhere);
    let hello = service_yaml("demo", "hello", "http", 8080, 18080, &[EXPORT], &[]);
    west.write_manifest("hello.yaml", &hello);
    wait_until("demo/hello's ServiceImport exists", SYNC, || {
        hello_import(&api).is_some()
    });
    assert!(
        fed.get("east").service("absent/db").is_some(),
        "still imported"
    );
    assert!(object(&api, Kind::ServiceImport, "absent", "db").is_none());
    let log = fed.get("east").log();
    assert!(
        !log.contains("cannot apply a ServiceImport"),
        "a missing namespace is not a failure to warn about: {log}"
    );
}
