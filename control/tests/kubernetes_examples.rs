//! The manifests in examples/kubernetes/ agree with the code and with each
//! other: the cluster config parses, the sample Service is exported, the
//! gateway pods carry the labels the import Services select, the bootstrap
//! Secret is mounted where the config expects the token, the ports line
//! up, and RBAC grants what the control plane calls.
//!
//! No API server runs here, so this is what keeps the examples from
//! rotting.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use fedmesh_control::import_services::BOOTSTRAP_SECRET;
use fedmesh_control::registry::build::{Sourced, build};
use fedmesh_proto::config::{Config, RegistryKind};
use serde_json::Value;

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/kubernetes")
}

/// Every document of every manifest, by file.
fn documents() -> BTreeMap<String, Vec<Value>> {
    let mut out = BTreeMap::new();
    for entry in std::fs::read_dir(dir()).expect("examples/kubernetes") {
        let path = entry.expect("entry").path();
        if path.extension().is_none_or(|e| e != "yaml") {
            continue;
        }
        let text = std::fs::read_to_string(&path).expect("read manifest");
        let docs: Vec<Value> = text
            .split("\n---")
            .filter(|d| {
                d.lines()
                    .any(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
            })
            .map(|d| {
                serde_saphyr::from_str(d)
                    .unwrap_or_else(|e| panic!("{}: not YAML: {e}", path.display()))
            })
            .collect();
        for d in &docs {
            assert!(
                d["apiVersion"].is_string() && d["kind"].is_string(),
                "{}: a document without apiVersion/kind: {d}",
                path.display()
            );
        }
        out.insert(
            path.file_name().unwrap().to_string_lossy().into_owned(),
            docs,
        );
    }
    out
}

fn find<'a>(docs: &'a BTreeMap<String, Vec<Value>>, kind: &str, name: &str) -> &'a Value {
    docs.values()
        .flatten()
        .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name} in examples/kubernetes"))
}

fn config(docs: &BTreeMap<String, Vec<Value>>) -> Config {
    let map = find(docs, "ConfigMap", "fedmesh-config");
    let text = map["data"]["cluster.yaml"].as_str().expect("cluster.yaml");
    Config::from_yaml(text, Path::new("/etc/fedmesh/cluster.yaml"))
        .unwrap_or_else(|e| panic!("config.yaml does not parse: {e}"))
}

#[test]
fn the_cluster_config_parses_for_the_kubernetes_registry() {
    let docs = documents();
    let c = config(&docs);
    assert_eq!(c.registry.kind, RegistryKind::Kubernetes);
    assert_eq!(
        c.registry.import_namespace.as_deref(),
        Some("fedmesh-system")
    );
    assert!(
        c.gateway.control.is_some(),
        "gateway pods must know where to dial"
    );
    assert!(!c.gateway.embedded);
}

#[test]
fn the_sample_service_is_exported() {
    let docs = documents();
    let svc = find(&docs, "Service", "payments");
    let object = serde_json::from_value(svc.clone()).expect("a Service");
    let snap = build(
        [&Sourced {
            source: "sample-service.yaml".into(),
            object,
        }],
        [],
    );
    assert!(snap.problems.is_empty(), "{:?}", snap.problems);
    let exported: Vec<_> = snap
        .services
        .values()
        .filter(|s| s.export.is_some())
        .collect();
    assert_eq!(exported.len(), 1);
}

#[test]
fn gateway_pods_match_the_import_selector_ports_and_bootstrap_path() {
    let docs = documents();
    let c = config(&docs);
    let gw = find(&docs, "Deployment", "fedgw");
    let pod = &gw["spec"]["template"];
    for (k, v) in &c.registry.gateway_selector {
        assert_eq!(pod["metadata"]["labels"][k], v.as_str(), "label {k}");
    }
    let container = &pod["spec"]["containers"][0];
    let ports: Vec<u64> = container["ports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["containerPort"].as_u64().unwrap())
        .collect();
    assert!(ports.contains(&u64::from(c.gateway.ingress_listen.port())));
    assert!(ports.contains(&u64::from(c.gateway.admin_listen.port())));

    // The Secret's token lands at the config's bootstrapTokenFile.
    let volume = pod["spec"]["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["secret"]["secretName"] == BOOTSTRAP_SECRET)
        .expect("the bootstrap Secret is mounted");
    let mount = container["volumeMounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == volume["name"])
        .expect("mounted in the container");
    let item = &volume["secret"]["items"][0];
    assert_eq!(item["key"], "token");
    let path = Path::new(mount["mountPath"].as_str().unwrap()).join(item["path"].as_str().unwrap());
    assert_eq!(path, c.gateway.bootstrap_token_file);

    // The gateway API Service is what gateway.control names.
    let control = c.gateway.control.as_ref().unwrap().to_string();
    let api = find(&docs, "Service", "fedmesh-control");
    assert!(control.starts_with("fedmesh-control.fedmesh-system.svc:"));
    assert_eq!(
        api["spec"]["ports"][0]["port"].as_u64(),
        Some(u64::from(c.control.gateway_listen.port()))
    );
}

#[test]
fn rbac_grants_what_the_control_plane_calls() {
    let docs = documents();
    let verbs = |kind: &str, name: &str, resource: &str| -> Vec<String> {
        find(&docs, kind, name)["rules"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| {
                r["resources"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|x| x == resource)
            })
            .flat_map(|r| r["verbs"].as_array().unwrap().clone())
            .map(|v| v.as_str().unwrap().to_string())
            .collect()
    };
    for resource in ["services", "endpointslices"] {
        let got = verbs("ClusterRole", "fedmesh-registry", resource);
        for v in ["list", "watch"] {
            assert!(got.iter().any(|g| g == v), "{resource}: {v} missing");
        }
    }
    let got = verbs("Role", "fedmesh-imports", "services");
    for v in ["list", "watch", "create", "patch", "delete"] {
        assert!(got.iter().any(|g| g == v), "import services: {v} missing");
    }
    let got = verbs("Role", "fedmesh-imports", "secrets");
    for v in ["create", "patch"] {
        assert!(got.iter().any(|g| g == v), "bootstrap secret: {v} missing");
    }
    let control = find(&docs, "Deployment", "fedmesh-control");
    assert_eq!(
        control["spec"]["template"]["spec"]["serviceAccountName"],
        "fedmesh-control"
    );
}
