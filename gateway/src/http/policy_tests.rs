//! Plan and backend resolution of [`super::plan`], on compiled routes.

use std::collections::BTreeMap;

use fedmesh_proto::routes::{FAULT_KIND, ROUTE_KIND, document};
use fedmesh_proto::v1;
use serde_json::{Value, json};

use super::*;
use crate::routes::Routes;
use crate::state::{Affinity, Locality, Target};

fn import(name: &str, port: u16) -> Import {
    let target = |cluster: &str| Target {
        cluster: cluster.into(),
        locality: Locality::default(),
        healthy: 1,
        total: 1,
        gateway: format!("{cluster}:15443"),
        local: false,
        draining: false,
    };
    Import {
        key: ("demo".into(), name.into()),
        vip: "127.77.0.1".parse().unwrap(),
        ports: vec![("http".into(), port)],
        affinity: Affinity::Local,
        weights: BTreeMap::new(),
        targets: vec![target("east"), target("west")],
        pinned: BTreeMap::new(),
        listen_ports: BTreeMap::new(),
    }
}

fn route(name: &str, port: Option<u16>, rules: Value) -> v1::RouteDocument {
    let parent = match port {
        Some(p) => json!({"group": "", "kind": "Service", "name": "hello", "port": p}),
        None => json!({"group": "", "kind": "Service", "name": "hello"}),
    };
    let doc = json!({
        "metadata": {"name": name, "namespace": "demo"},
        "spec": {"parentRefs": [parent], "rules": rules},
    });
    document(ROUTE_KIND, "demo", name, &doc)
}

fn state(docs: &[v1::RouteDocument]) -> GatewayState {
    let imports = [import("hello", 8080), import("bye", 9090)]
        .into_iter()
        .map(|i| (i.key.clone(), i))
        .collect();
    GatewayState {
        imports,
        routes: Routes::from_proto(docs),
        ..Default::default()
    }
}

fn listener(port: u16, pinned: Option<&str>) -> Listener {
    Listener {
        key: ("demo".into(), "hello".into()),
        port,
        pinned: pinned.map(str::to_string),
        endpoint: None,
    }
}

fn get(path: &str, header: Option<(&str, &str)>) -> Request<()> {
    let mut b = Request::get(format!("http://hello.demo:8080{path}"));
    if let Some((name, value)) = header {
        b = b.header(name, value);
    }
    b.body(()).unwrap()
}

/// Where the plan sends a request: (service, port, pinned cluster), or the
/// status this gateway answers with.
fn sent(plan: Plan<'_>) -> Result<(String, u16, Option<String>), u16> {
    match plan {
        Plan::Plain => Ok(("<plain>".into(), 0, None)),
        Plan::Refuse(code, _) => Err(code.as_u16()),
        Plan::Rule(a) => Ok((a.listener.key.1, a.listener.port, a.listener.pinned)),
    }
}

#[test]
fn a_cluster_backend_pins_and_a_service_backend_is_global_or_another_import() {
    let rules = json!([
        {"matches": [{"headers": [{"name": "x-canary", "value": "true"}]}],
         "backendRefs": [{"group": "fedmesh.io", "kind": "ServiceImport", "name": "west.hello", "port": 8080}]},
        {"matches": [{"path": {"type": "PathPrefix", "value": "/bye"}}],
         "backendRefs": [{"kind": "Service", "name": "bye", "port": 9090}]},
        {"backendRefs": [{"group": "multicluster.x-k8s.io", "kind": "ServiceImport", "name": "hello"}]},
    ]);
    let s = state(&[route("r", Some(8080), rules)]);
    let l = listener(8080, None);
    let canary = plan(&s, &l, &get("/", Some(("x-canary", "true"))), 0);
    assert_eq!(
        sent(canary),
        Ok(("hello".into(), 8080, Some("west".into())))
    );
    let bye = plan(&s, &l, &get("/bye/x", None), 0);
    assert_eq!(sent(bye), Ok(("bye".into(), 9090, None)));
    let global = plan(&s, &l, &get("/other", None), 0);
    assert_eq!(
        sent(global),
        Ok(("hello".into(), 8080, None)),
        "no port: the request's"
    );
}

#[test]
fn weights_choose_by_the_roll() {
    let rules = json!([{"backendRefs": [
        {"group": "fedmesh.io", "kind": "ServiceImport", "name": "east.hello", "weight": 80},
        {"group": "fedmesh.io", "kind": "ServiceImport", "name": "west.hello", "weight": 20},
    ]}]);
    let s = state(&[route("split", None, rules)]);
    let l = listener(8080, None);
    let mut rng = Rng::seeded(11);
    let east = (0..10_000)
        .filter(|_| {
            let p = plan(&s, &l, &get("/", None), roll(&mut rng));
            sent(p).is_ok_and(|(_, _, c)| c.as_deref() == Some("east"))
        })
        .count();
    assert!((7_800..8_200).contains(&east), "{east} of 10000 on east");
}

#[test]
fn the_gateway_answers_for_no_rule_no_weight_a_missing_fault_or_backend() {
    let rules = json!([
        {"matches": [{"path": {"type": "Exact", "value": "/zero"}}],
         "backendRefs": [{"kind": "Service", "name": "hello", "weight": 0}]},
        {"matches": [{"path": {"type": "Exact", "value": "/none"}}]},
        {"matches": [{"path": {"type": "Exact", "value": "/fault"}}],
         "backendRefs": [{"kind": "Service", "name": "hello"}],
         "filters": [{"type": "ExtensionRef", "extensionRef":
            {"group": "fedmesh.io", "kind": "FaultInjection", "name": "absent"}}]},
        {"matches": [{"path": {"type": "Exact", "value": "/gone"}}],
         "backendRefs": [{"kind": "Service", "name": "nowhere"}]},
        {"matches": [{"path": {"type": "Exact", "value": "/port"}}],
         "backendRefs": [{"kind": "Service", "name": "bye", "port": 1}]},
    ]);
    let s = state(&[route("r", None, rules)]);
    let l = listener(8080, None);
    for (path, code) in [
        ("/zero", 500),
        ("/none", 500),
        ("/fault", 500),
        ("/gone", 500),
        ("/port", 500),
        ("/unmatched", 404),
    ] {
        assert_eq!(sent(plan(&s, &l, &get(path, None), 0)), Err(code), "{path}");
    }
}

#[test]
fn routes_leave_other_ports_and_pinned_vips_alone() {
    let rules = json!([{"matches": [{"path": {"type": "Exact", "value": "/only"}}],
                        "backendRefs": [{"kind": "Service", "name": "hello"}]}]);
    let s = state(&[route("r", Some(8080), rules)]);
    let plain = |l: &Listener| matches!(plan(&s, l, &get("/x", None), 0), Plan::Plain);
    assert!(plain(&listener(8081, None)), "bound to 8080 only");
    assert!(plain(&listener(8080, Some("east"))), "a pinned VIP");
    assert!(!plain(&listener(8080, None)), "8080 is governed: 404");
    assert!(matches!(
        plan(&state(&[]), &listener(8080, None), &get("/x", None), 0),
        Plan::Plain
    ));
}

#[test]
fn a_found_fault_is_carried_with_the_rule() {
    let rules = json!([{"backendRefs": [{"kind": "Service", "name": "hello"}],
        "filters": [{"type": "ExtensionRef", "extensionRef":
            {"group": "fedmesh.io", "kind": "FaultInjection", "name": "flaky"}}]}]);
    let fault = json!({"metadata": {"name": "flaky", "namespace": "demo"},
                       "spec": {"abort": {"httpStatus": 503, "percentage": 100}}});
    let s = state(&[
        route("r", None, rules),
        document(FAULT_KIND, "demo", "flaky", &fault),
    ]);
    let Plan::Rule(applied) = plan(&s, &listener(8080, None), &get("/", None), 0) else {
        panic!("a rule");
    };
    assert_eq!(applied.fault.map(|f| f.name.as_str()), Some("flaky"));
}
