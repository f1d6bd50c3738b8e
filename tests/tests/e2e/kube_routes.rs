//! HTTP routes in Kubernetes mode, real processes: east's `fedctl run`
//! watches `HTTPRoute`s and `FaultInjection`s on a fake Kubernetes API
//! server (no real one can run here; `fedmesh_tests::fake_kube` speaks the
//! API's JSON over HTTP). A route created, updated and deleted there
//! reaches `fedctl services -o json` and the gateway snapshot (read here
//! on the gateway API, as a gateway reads it); an invalid one is a `WARN`
//! of `fedctl check`; without the CRDs nothing is watched and services
//! still export.

use std::sync::Arc;
use std::time::Duration;

use fedmesh_proto::identity::{self, PinnedServerVerifier};
use fedmesh_proto::token::BootstrapToken;
use fedmesh_proto::transport::connect;
use fedmesh_proto::v1::{self, gateway_config_client::GatewayConfigClient};
use fedmesh_tests::fake_kube::{FakeKube, Kind};
use fedmesh_tests::{EXPORT, Federation, service_yaml, wait_until};
use serde_json::{Value, json};

const SYNC: Duration = Duration::from_secs(20);

/// demo/canary on demo/hello, with `timeout` as its request timeout.
fn route(timeout: &str) -> String {
    format!(
        r#"apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{ name: canary, namespace: demo }}
spec:
  parentRefs: [ {{ group: "", kind: Service, name: hello, port: 8080 }} ]
  rules:
    - backendRefs: [ {{ kind: Service, name: hello, port: 8080 }} ]
      timeouts: {{ request: {timeout} }}
      filters:
        - {{ type: ExtensionRef, extensionRef: {{ group: fedmesh.io, kind: FaultInjection, name: flaky }} }}
"#
    )
}

const FAULT: &str = r#"apiVersion: fedmesh.io/v1alpha1
kind: FaultInjection
metadata: { name: flaky, namespace: demo }
spec:
  abort: { httpStatus: 503, percentage: 5 }
"#;

const BROKEN: &str = r#"apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: broken, namespace: demo }
spec:
  parentRefs: [ { group: "", kind: Service, name: hello } ]
  rules:
    - matches: [ { path: { type: RegularExpression, value: "/(unclosed" } } ]
"#;

/// east alone, in Kubernetes mode on `api`, with a gateway; demo/hello
/// exported there.
fn east(api: &FakeKube) -> Federation {
    for doc in service_yaml(
        "demo",
        "hello",
        "http",
        8080,
        18080,
        &[EXPORT],
        &["127.0.0.1"],
    )
    .split("---")
    {
        api.apply(doc);
    }
    let mut fed = Federation::new();
    fed.add("east", "us-east", "us-east-1a", "");
    let east = fed.get_mut("east");
    api.serve(east, "");
    east.start();
    east.start_gateway();
    fed
}

/// The route names `fedctl services -o json` lists for demo/hello.
fn listed(fed: &Federation) -> Option<Value> {
    fed.get("east")
        .service("demo/hello")
        .map(|s| s["routes"].clone())
}

/// A gateway's view: the snapshots of east's gateway API.
struct SnapshotReader {
    rt: tokio::runtime::Runtime,
    stream: tonic::Streaming<v1::GatewaySnapshot>,
}

impl SnapshotReader {
    fn open(fed: &Federation) -> Self {
        let east = fed.get("east");
        let token_text = std::fs::read_to_string(east.dir.join("data/gateway-bootstrap.token"))
            .expect("east's bootstrap token");
        let token = BootstrapToken::decode(token_text.trim()).expect("a bootstrap token");
        let rt = tokio::runtime::Runtime::new().expect("runtime");
        let stream = rt.block_on(async {
            let tls = identity::client_config(None, PinnedServerVerifier::new(token.pin), &[b"h2"])
                .expect("client TLS");
            let channel = connect(&east.gateway_api(), Arc::new(tls), Duration::from_secs(5))
                .await
                .expect("connect to the gateway API");
            GatewayConfigClient::new(channel)
                .watch(v1::WatchRequest {
                    bootstrap_token: token_text.trim().to_string(),
                    gateway_name: "route-reader".into(),
                })
                .await
                .expect("watch")
                .into_inner()
        });
        Self { rt, stream }
    }

    /// Reads snapshots until one's route documents satisfy `want`.
    fn until(&mut self, what: &str, want: impl Fn(&[(String, Value)]) -> bool) {
        let stream = &mut self.stream;
        self.rt.block_on(async {
            let deadline = tokio::time::Instant::now() + SYNC;
            loop {
                let snap = tokio::time::timeout_at(deadline, stream.message())
                    .await
                    .unwrap_or_else(|_| panic!("no snapshot where {what}"))
                    .expect("snapshot stream")
                    .expect("snapshot stream open");
                let docs: Vec<(String, Value)> = snap
                    .routes
                    .iter()
                    .map(|d| {
                        let doc = serde_json::from_slice(&d.json).unwrap_or(Value::Null);
                        (format!("{} {}/{}", d.kind, d.namespace, d.name), doc)
                    })
                    .collect();
                if want(&docs) {
                    return;
                }
            }
        });
    }
}

/// The request timeout of demo/canary's first rule in `docs`.
fn canary_timeout(docs: &[(String, Value)]) -> Option<Value> {
    let (_, doc) = docs.iter().find(|(k, _)| k == "HTTPRoute demo/canary")?;
    Some(doc["spec"]["rules"][0]["timeouts"]["request"].clone())
}

#[test]
fn a_route_created_updated_and_deleted_in_the_api_reaches_services_and_the_gateway() {
    let api = FakeKube::start(std::net::Ipv4Addr::LOCALHOST);
    let fed = east(&api);
    wait_until("east exports demo/hello", SYNC, || {
        listed(&fed) == Some(json!([]))
    });

    // Created: the route and its fault.
    api.apply(FAULT);
    api.apply(&route("300ms"));
    wait_until("services lists demo/canary", SYNC, || {
        listed(&fed) == Some(json!(["canary"]))
    });
    // An invalid route beside them is a warning, and breaks nothing (the
    // check comes first: the snapshot reader below is a gateway that
    // reports no status, which the check would count as failing).
    api.apply(BROKEN);
    wait_until("check warns about demo/broken and passes", SYNC, || {
        let c = fed.get("east").fedctl(&["check"]);
        c.ok && c.stdout.lines().any(|l| {
            l.starts_with("WARN")
                && l.contains("kubernetes API")
                && l.contains("HTTPRoute demo/broken: spec.rules[0].matches[0].path.value:")
        })
    });
    assert_eq!(listed(&fed), Some(json!(["canary"])));

    let mut gateway = SnapshotReader::open(&fed);
    gateway.until("the route and its fault arrived", |docs| {
        canary_timeout(docs) == Some(json!("300ms"))
            && docs.iter().any(|(k, _)| k == "FaultInjection demo/flaky")
    });
    wait_until("the gateway compiles the route", SYNC, || {
        fed.get("east").gateway_log().lines().any(|l| {
            l.contains("HTTP routes compiled") && l.contains("routes=1") && l.contains("demo/hello")
        })
    });

    // Updated: the new spec replaces the old.
    api.apply(&route("700ms"));
    gateway.until("the updated route arrived", |docs| {
        canary_timeout(docs) == Some(json!("700ms"))
    });

    // Deleted: gone from services and from the snapshot; the fault stays.
    assert!(api.delete(Kind::HttpRoute, "demo", "canary"));
    wait_until("services lists no route", SYNC, || {
        listed(&fed) == Some(json!([]))
    });
    gateway.until("the route is withdrawn", |docs| {
        canary_timeout(docs).is_none() && docs.iter().any(|(k, _)| k == "FaultInjection demo/flaky")
    });

    // A relist after a 410 Gone brings a change no watch was told of.
    wait_until("east's watches are open", SYNC, || api.open_watches() >= 5);
    api.apply_unseen(&route("900ms"));
    assert!(api.expire_watches() >= 5);
    gateway.until("the relisted route arrived", |docs| {
        canary_timeout(docs) == Some(json!("900ms"))
    });
}

#[test]
fn without_the_route_crds_nothing_is_watched_and_services_still_export() {
    let api = FakeKube::start(std::net::Ipv4Addr::LOCALHOST);
    api.set_route_crds(false);
    let fed = east(&api);
    wait_until("east exports demo/hello without routes", SYNC, || {
        listed(&fed) == Some(json!([]))
    });
    wait_until("one info line per missing CRD", SYNC, || {
        let log = fed.get("east").log();
        ["HTTPRoute", "FaultInjection"].iter().all(|kind| {
            log.lines()
                .filter(|l| l.contains("CRD not installed; not watching it") && l.contains(kind))
                .count()
                == 1
        })
    });
    wait_until("east's check passes", SYNC, || {
        fed.get("east").fedctl(&["check"]).ok
    });
}
