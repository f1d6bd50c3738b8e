//! examples/kubernetes is an installation a platform team would accept:
//! its kustomize layout lists what an install needs, every pod passes the
//! Pod Security "restricted" profile (read field by field, as the
//! admission controller does), has requests, limits and probes, the
//! gateways have a disruption budget and a topology spread, and RBAC grows
//! by exactly what the MCS API needs. CI also renders the tree with
//! `kubectl kustomize` and validates it against the Kubernetes schemas
//! (`.ci/run`); this test reads the files with a small renderer of its own
//! that handles exactly what the layout uses (a `resources` list of files
//! and a `namespace`), so it runs without kubectl.

use std::path::{Path, PathBuf};

use serde_json::Value;

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the tests crate sits in the workspace root")
        .join("examples/kubernetes")
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The objects `kustomization.yaml` renders: its resources in order, the
/// namespace set on every namespaced object (kustomize's namespace
/// transformer, also on ServiceAccount subjects of bindings).
fn render() -> Vec<Value> {
    let kustomization: Value =
        serde_saphyr::from_str(&read(&dir().join("kustomization.yaml"))).expect("kustomization");
    let namespace = kustomization["namespace"].as_str().map(String::from);
    let mut out = Vec::new();
    for file in kustomization["resources"].as_array().expect("resources") {
        let file = file.as_str().expect("a resource is a file name");
        let docs: Vec<Value> =
            serde_saphyr::from_multiple(&read(&dir().join(file))).expect("resource YAML");
        for mut doc in docs.into_iter().filter(|d| d.is_object()) {
            if let Some(ns) = &namespace {
                set_namespace(&mut doc, ns);
            }
            out.push(doc);
        }
    }
    out
}

const CLUSTER_SCOPED: [&str; 4] = [
    "Namespace",
    "CustomResourceDefinition",
    "ClusterRole",
    "ClusterRoleBinding",
];

fn set_namespace(doc: &mut Value, ns: &str) {
    let kind = doc["kind"].as_str().unwrap_or_default().to_string();
    if !CLUSTER_SCOPED.contains(&kind.as_str()) {
        doc["metadata"]["namespace"] = ns.into();
    }
    if let Some(subjects) = doc["subjects"].as_array_mut() {
        for s in subjects
            .iter_mut()
            .filter(|s| s["kind"] == "ServiceAccount")
        {
            s["namespace"] = ns.into();
        }
    }
}

fn find<'a>(objects: &'a [Value], kind: &str, name: &str) -> &'a Value {
    objects
        .iter()
        .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name} in the rendered tree"))
}

/// Why a pod spec fails Pod Security "restricted" (Kubernetes Pod Security
/// Standards, every control of the baseline and restricted levels that a
/// pod template can break), plus the house rules: a read-only root file
/// system, requests and limits, and the three probes.
fn violations(pod: &Value) -> Vec<String> {
    let mut out = Vec::new();
    for field in ["hostNetwork", "hostPID", "hostIPC"] {
        if pod[field] == true {
            out.push(format!("{field} is set"));
        }
    }
    const VOLUMES: [&str; 8] = [
        "configMap",
        "csi",
        "downwardAPI",
        "emptyDir",
        "ephemeral",
        "persistentVolumeClaim",
        "projected",
        "secret",
    ];
    for v in pod["volumes"].as_array().into_iter().flatten() {
        let object = v.as_object().into_iter().flatten();
        for (k, _) in object.filter(|(k, _)| *k != "name") {
            if !VOLUMES.contains(&k.as_str()) {
                out.push(format!("volume type {k} is not allowed"));
            }
        }
    }
    let pod_sc = &pod["securityContext"];
    let containers = pod["containers"].as_array().into_iter().flatten();
    let init = pod["initContainers"].as_array().into_iter().flatten();
    for c in containers.chain(init) {
        let name = c["name"].as_str().unwrap_or("?");
        for v in container_violations(c, pod_sc) {
            out.push(format!("container {name}: {v}"));
        }
    }
    out
}

fn container_violations(c: &Value, pod_sc: &Value) -> Vec<String> {
    let sc = &c["securityContext"];
    // A container's own setting wins over the pod's.
    let either = |field: &str| {
        if sc[field].is_null() {
            pod_sc[field].clone()
        } else {
            sc[field].clone()
        }
    };
    let mut out = Vec::new();
    if sc["privileged"] == true {
        out.push("privileged".to_string());
    }
    if sc["allowPrivilegeEscalation"] != false {
        out.push("allowPrivilegeEscalation is not false".into());
    }
    if either("runAsNonRoot") != true {
        out.push("runAsNonRoot is not true".into());
    }
    if either("runAsUser") == 0 {
        out.push("runAsUser is 0".into());
    }
    let seccomp = either("seccompProfile");
    if !matches!(
        seccomp["type"].as_str(),
        Some("RuntimeDefault" | "Localhost")
    ) {
        out.push("seccompProfile is not RuntimeDefault or Localhost".into());
    }
    let drop = sc["capabilities"]["drop"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    if !drop.iter().any(|d| d == "ALL") {
        out.push("capabilities do not drop ALL".into());
    }
    let add = sc["capabilities"]["add"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    if add.iter().any(|a| a != "NET_BIND_SERVICE") {
        out.push("capabilities add more than NET_BIND_SERVICE".into());
    }
    for p in c["ports"].as_array().into_iter().flatten() {
        if !p["hostPort"].is_null() {
            out.push("a hostPort is set".into());
        }
    }
    if sc["readOnlyRootFilesystem"] != true {
        out.push("readOnlyRootFilesystem is not true".into());
    }
    for (what, field) in [
        ("requests", "cpu"),
        ("requests", "memory"),
        ("limits", "cpu"),
        ("limits", "memory"),
    ] {
        if c["resources"][what][field].is_null() {
            out.push(format!("no {what}.{field}"));
        }
    }
    for probe in ["livenessProbe", "readinessProbe", "startupProbe"] {
        if !c[probe].is_object() {
            out.push(format!("no {probe}"));
        }
    }
    out
}

#[test]
fn the_kustomize_layout_lists_everything_an_install_needs() {
    let objects = render();
    for (kind, name) in [
        ("Namespace", "fedmesh-system"),
        (
            "CustomResourceDefinition",
            "serviceexports.multicluster.x-k8s.io",
        ),
        (
            "CustomResourceDefinition",
            "serviceimports.multicluster.x-k8s.io",
        ),
        ("CustomResourceDefinition", "faultinjections.fedmesh.io"),
        ("ClusterRole", "fedmesh-registry"),
        ("ConfigMap", "fedmesh-config"),
        ("Deployment", "fedmesh-control"),
        ("Deployment", "fedgw"),
        ("PodDisruptionBudget", "fedgw"),
    ] {
        find(&objects, kind, name);
    }
    let ns = find(&objects, "Namespace", "fedmesh-system");
    assert_eq!(
        ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"], "restricted",
        "admission enforces what the test checks"
    );
    for o in &objects {
        let kind = o["kind"].as_str().unwrap_or_default();
        if !CLUSTER_SCOPED.contains(&kind) {
            assert_eq!(o["metadata"]["namespace"], "fedmesh-system", "{kind}");
        }
    }
}

#[test]
fn every_pod_passes_pod_security_restricted_with_limits_and_probes() {
    let objects = render();
    let pods: Vec<&Value> = objects
        .iter()
        .filter(|o| o["kind"] == "Deployment")
        .collect();
    assert_eq!(pods.len(), 2);
    for d in pods {
        let v = violations(&d["spec"]["template"]["spec"]);
        assert!(v.is_empty(), "{}: {v:?}", d["metadata"]["name"]);
    }
}

#[test]
fn the_restricted_check_finds_what_a_plain_pod_lacks() {
    let pod = serde_json::json!({
        "hostNetwork": true,
        "volumes": [{"name": "h", "hostPath": {"path": "/"}}],
        "containers": [{"name": "c", "image": "x",
            "securityContext": {"capabilities": {"add": ["NET_ADMIN"]}},
            "ports": [{"containerPort": 80, "hostPort": 80}]}]
    });
    let v = violations(&pod).join("\n");
    for expected in [
        "hostNetwork",
        "hostPath",
        "allowPrivilegeEscalation",
        "runAsNonRoot",
        "seccompProfile",
        "drop ALL",
        "NET_BIND_SERVICE",
        "hostPort",
        "readOnlyRootFilesystem",
        "limits.memory",
        "startupProbe",
    ] {
        assert!(v.contains(expected), "missing {expected:?} in:\n{v}");
    }
}

#[test]
fn gateways_have_a_disruption_budget_and_a_topology_spread() {
    let objects = render();
    let gw = find(&objects, "Deployment", "fedgw");
    let labels = &gw["spec"]["template"]["metadata"]["labels"];
    let pdb = find(&objects, "PodDisruptionBudget", "fedgw");
    assert_eq!(pdb["spec"]["minAvailable"], 1);
    for (k, v) in pdb["spec"]["selector"]["matchLabels"]
        .as_object()
        .expect("matchLabels")
    {
        assert_eq!(&labels[k], v, "the budget selects the gateway pods");
    }
    let spread = gw["spec"]["template"]["spec"]["topologySpreadConstraints"]
        .as_array()
        .expect("topologySpreadConstraints");
    let keys: Vec<&str> = spread
        .iter()
        .filter_map(|s| s["topologyKey"].as_str())
        .collect();
    assert_eq!(
        keys,
        ["topology.kubernetes.io/zone", "kubernetes.io/hostname"]
    );
    assert!(
        gw["spec"]["replicas"].as_u64() >= Some(2),
        "a budget of 1 needs 2"
    );
}

#[test]
fn rbac_grows_by_exactly_what_the_mcs_api_needs() {
    let objects = render();
    let role = find(&objects, "ClusterRole", "fedmesh-registry");
    let mut mcs: Vec<(String, String)> = role["rules"]
        .as_array()
        .expect("rules")
        .iter()
        .filter(|r| r["apiGroups"][0] == "multicluster.x-k8s.io")
        .flat_map(|r| {
            let verbs: Vec<String> = r["verbs"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|v| v.as_str().map(String::from))
                .collect();
            let resources: Vec<String> = r["resources"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|v| v.as_str().map(String::from))
                .collect();
            resources.into_iter().map(move |res| (res, verbs.join(",")))
        })
        .collect();
    mcs.sort();
    let want = [
        ("serviceexports", "list,watch"),
        ("serviceexports/status", "patch"),
        ("serviceimports", "list,watch,create,patch,delete"),
        ("serviceimports/status", "patch"),
    ];
    let want: Vec<(String, String)> = want
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
    assert_eq!(mcs, want);
}

#[test]
fn rbac_grows_by_exactly_the_read_access_routes_need() {
    let objects = render();
    let role = find(&objects, "ClusterRole", "fedmesh-registry");
    let groups = ["gateway.networking.k8s.io", "fedmesh.io"];
    let mut routes: Vec<String> = role["rules"]
        .as_array()
        .expect("rules")
        .iter()
        .filter(|r| groups.iter().any(|g| r["apiGroups"][0] == *g))
        .map(|r| format!("{}:{}:{}", r["apiGroups"], r["resources"], r["verbs"]))
        .collect();
    routes.sort();
    assert_eq!(
        routes,
        [
            r#"["fedmesh.io"]:["faultinjections"]:["list","watch"]"#,
            r#"["gateway.networking.k8s.io"]:["httproutes"]:["list","watch"]"#,
        ]
    );
}

#[test]
fn the_image_builds_locked_from_a_small_context_and_the_crds_keep_their_licence() {
    let dockerfile = read(&dir().join("Dockerfile"));
    assert!(dockerfile.contains("cargo build --locked"), "{dockerfile}");
    let ignore = read(&dir().join("../../.dockerignore"));
    assert!(ignore.lines().any(|l| l.trim() == "target/"), "{ignore}");
    for crd in ["serviceexports", "serviceimports"] {
        let text = read(&dir().join(format!("crds/multicluster.x-k8s.io_{crd}.yaml")));
        assert!(text.starts_with("# Copyright 2020 The Kubernetes Authors."));
        assert!(text.contains("Licensed under the Apache License, Version 2.0"));
    }
}
