//! HTTPRoutes applied per request, through the real binaries: east and
//! west export demo/hello (port `http`) with scripted backends, eu's
//! registry holds a route bound to hello, and a client in eu sends every
//! request on one keep-alive connection. The route splits 80/20 between
//! east's and west's copies, steers `x-canary: true` to west with header
//! filters, retries a first 503 and a gRPC UNAVAILABLE, times out a slow
//! backend (and a slow body) and aborts with a fault; an invalid route beside it changes nothing, and eu's
//! `/metrics` counts it all.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use fedmesh_tests::{
    Cluster, EXPORT, Federation, HeaderClient, ScriptedBackend, service_yaml, wait_until,
};

const SYNC: Duration = Duration::from_secs(20);

const ROUTE: &str = r#"apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: policy, namespace: demo }
spec:
  parentRefs: [ { group: "", kind: Service, name: hello, port: 8080 } ]
  rules:
    - matches: [ { headers: [ { name: x-canary, value: "true" } ] } ]
      backendRefs: [ { group: fedmesh.io, kind: ServiceImport, name: west.hello, port: 8080 } ]
      filters:
        - type: RequestHeaderModifier
          requestHeaderModifier: { set: [ { name: x-policy, value: canary } ] }
        - type: ResponseHeaderModifier
          responseHeaderModifier: { add: [ { name: x-route, value: canary } ] }
    - matches: [ { path: { type: PathPrefix, value: /fail-once } } ]
      backendRefs: [ { group: fedmesh.io, kind: ServiceImport, name: east.hello, port: 8080 } ]
      retry: { attempts: 2, backoff: 10ms, codes: [ 503 ] }
    - matches: [ { path: { type: PathPrefix, value: /grpc-unavailable-once } } ]
      backendRefs: [ { group: fedmesh.io, kind: ServiceImport, name: east.hello, port: 8080 } ]
      retry: { attempts: 1, codes: [ 503 ] }
    - matches: [ { path: { type: PathPrefix, value: /sleep } } ]
      backendRefs: [ { group: fedmesh.io, kind: ServiceImport, name: east.hello, port: 8080 } ]
      timeouts: { request: 300ms }
    - matches: [ { path: { type: PathPrefix, value: /sleep }, headers: [ { name: x-try, value: each } ] } ]
      backendRefs: [ { group: fedmesh.io, kind: ServiceImport, name: east.hello, port: 8080 } ]
      timeouts: { backendRequest: 200ms }
      retry: { attempts: 1, codes: [ 504 ] }
    - matches: [ { path: { type: PathPrefix, value: /stream } } ]
      backendRefs: [ { group: fedmesh.io, kind: ServiceImport, name: east.hello, port: 8080 } ]
      timeouts: { request: 500ms }
    - matches: [ { path: { type: PathPrefix, value: /abort } } ]
      backendRefs: [ { kind: Service, name: hello, port: 8080 } ]
      filters:
        - type: ExtensionRef
          extensionRef: { group: fedmesh.io, kind: FaultInjection, name: abort-all }
    - backendRefs:
        - { group: fedmesh.io, kind: ServiceImport, name: east.hello, port: 8080, weight: 80 }
        - { group: fedmesh.io, kind: ServiceImport, name: west.hello, port: 8080, weight: 20 }
"#;

const FAULT: &str = r#"apiVersion: fedmesh.io/v1alpha1
kind: FaultInjection
metadata: { name: abort-all, namespace: demo }
spec:
  abort: { httpStatus: 503, percentage: 100 }
"#;

/// Bound to hello too, but its regex does not compile: reported, ignored.
const INVALID: &str = r#"apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: broken, namespace: demo }
spec:
  parentRefs: [ { group: "", kind: Service, name: hello } ]
  rules:
    - matches: [ { path: { type: RegularExpression, value: "/(unclosed" } } ]
      backendRefs: [ { group: fedmesh.io, kind: ServiceImport, name: west.hello } ]
"#;

/// Exports demo/hello from `cluster`; its scripted backend.
fn export(c: &Cluster, name: &str) -> ScriptedBackend {
    let backend: SocketAddr = (c.ip, 18080).into();
    c.write_manifest(
        "hello.yaml",
        &service_yaml(
            "demo",
            "hello",
            "http",
            8080,
            18080,
            &[EXPORT],
            &[&backend.ip().to_string()],
        ),
    );
    ScriptedBackend::start(backend, name)
}

/// eu's VIP for demo/hello, once both exporters are imported and eu's
/// gateway applies the route (a canary request reaches west).
fn routed_vip(eu: &Cluster) -> SocketAddr {
    wait_until("eu imports hello from east and west", SYNC, || {
        eu.service_clusters("demo/hello") == ["east", "west"]
    });
    let service = eu.service("demo/hello").expect("imported");
    let vip: std::net::IpAddr = service["vip"]
        .as_str()
        .expect("a VIP")
        .parse()
        .expect("an IP");
    let addr = SocketAddr::new(vip, 8080);
    wait_until("eu's gateway applies the route", SYNC, || {
        HeaderClient::connect(addr)
            .and_then(|mut c| c.get("/", &[("x-canary", "true")]))
            .is_ok_and(|a| a.status == 200 && a.header("x-route") == Some("canary"))
    });
    addr
}

/// The value of the series `name{labels}` in a Prometheus text scrape.
fn series(metrics: &str, name: &str, labels: &str) -> f64 {
    let prefix = format!("{name}{{{labels}}} ");
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {prefix} in:\n{metrics}"))
}

#[test]
fn a_route_splits_steers_retries_times_out_and_aborts_on_one_connection() {
    let mut fed = Federation::full_mesh("", SYNC);
    for c in &mut fed.clusters {
        c.start_gateway();
    }
    let east = export(fed.get("east"), "east");
    let west = export(fed.get("west"), "west");
    let eu = fed.get("eu");
    eu.write_manifest("hello-route.yaml", ROUTE);
    eu.write_manifest("abort-fault.yaml", FAULT);
    eu.write_manifest("broken-route.yaml", INVALID);
    let vip = routed_vip(eu);
    let mut client = HeaderClient::connect(vip).expect("connect");

    // 80/20 between east's and west's copies, per request.
    let mut served = BTreeMap::<String, usize>::new();
    for i in 0..400 {
        match client.get(&format!("/split/{i}"), &[]) {
            Ok(a) if a.status == 200 => *served.entry(a.body).or_default() += 1,
            other => panic!("split request {i}: {other:?} (so far {served:?})"),
        }
    }
    let on_east = served.get("east").copied().unwrap_or(0) as f64 / 400.0;
    assert!((on_east - 0.8).abs() <= 0.08, "80/20 split: {served:?}");

    // The header rule: every canary to west, with both header filters.
    for i in 0..20 {
        let a = client
            .get(&format!("/canary/{i}"), &[("x-canary", "true")])
            .expect("answered");
        assert_eq!(
            (a.status, a.body.as_str()),
            (200, "west"),
            "canary {i}: {a:?}"
        );
        assert_eq!(a.header("x-saw-policy"), Some("canary"), "request filter");
        assert_eq!(a.header("x-route"), Some("canary"), "response filter");
    }
    assert_eq!(east.seen("/canary/"), 0, "no canary reached east");

    // A first 503 is retried into a 200: the backend saw two requests.
    let a = client.get("/fail-once/1", &[]).expect("answered");
    assert_eq!((a.status, a.body.as_str()), (200, "east"), "{a:?}");
    assert_eq!(east.seen("/fail-once/1"), 2, "one 503, then the retry");

    // A gRPC UNAVAILABLE (trailers-only) is retried like a 503.
    let a = client
        .get("/grpc-unavailable-once/1", &[])
        .expect("answered");
    assert_eq!(a.header("grpc-status"), Some("0"), "{a:?}");
    assert_eq!(
        east.seen("/grpc-unavailable-once/1"),
        2,
        "14, then the retry"
    );

    // timeouts.request: 300ms against a backend that takes 2 s.
    let started = Instant::now();
    let a = client.get("/sleep/2000/x", &[]).expect("answered");
    let took = started.elapsed();
    assert_eq!(a.status, 504, "{a:?}");
    assert!(took < Duration::from_millis(1500), "504 after {took:?}");
    eprintln!("measured: split {served:?} of 400; 504 after {took:?}");

    // timeouts.backendRequest: 200ms ends each try; 504 is retried once.
    let started = Instant::now();
    let a = client
        .get("/sleep/2000/per-try", &[("x-try", "each")])
        .expect("answered");
    let took = started.elapsed();
    assert_eq!(a.status, 504, "{a:?}");
    assert!(
        (Duration::from_millis(350)..Duration::from_millis(1500)).contains(&took),
        "two tries of 200 ms: {took:?}"
    );
    assert_eq!(east.seen("/sleep/2000/per-try"), 2, "a try and a retry");
    eprintln!("measured: two 200 ms tries answered 504 after {took:?}");

    // The timeout covers the body too: a response still streaming when it
    // expires is cut (on a connection of its own: HTTP/1.1 closes it).
    let mut streaming = HeaderClient::connect(vip).expect("connect");
    let started = Instant::now();
    let cut = streaming.get("/stream/3000/x", &[]);
    let took = started.elapsed();
    assert!(
        cut.as_ref().is_err_and(|e| e.starts_with("body")),
        "{cut:?}"
    );
    assert!(took < Duration::from_millis(1500), "cut after {took:?}");
    eprintln!("measured: a streaming body cut after {took:?}");

    // An abort fault answers at eu's gateway: no backend sees it.
    for i in 0..5 {
        let a = client.get(&format!("/abort/{i}"), &[]).expect("answered");
        assert_eq!(a.status, 503, "abort {i}: {a:?}");
    }
    assert_eq!(east.seen("/abort/") + west.seen("/abort/"), 0);

    // eu's counters: by code, retries and injected faults.
    let (status, metrics) = eu.gateway_admin("/metrics");
    assert_eq!(status, 200);
    let hello = "namespace=\"demo\",service=\"hello\"";
    let requests = "fedmesh_gateway_http_requests_total";
    assert!(
        series(
            &metrics,
            requests,
            &format!("{hello},cluster=\"east\",code=\"200\"")
        ) >= 300.0
    );
    assert!(
        series(
            &metrics,
            requests,
            &format!("{hello},cluster=\"west\",code=\"200\"")
        ) >= 40.0
    );
    assert!(
        series(
            &metrics,
            requests,
            &format!("{hello},cluster=\"none\",code=\"504\"")
        ) >= 1.0
    );
    assert!(
        series(
            &metrics,
            requests,
            &format!("{hello},cluster=\"none\",code=\"503\"")
        ) >= 5.0
    );
    let retries = series(&metrics, "fedmesh_gateway_http_retries_total", hello);
    assert!(retries >= 3.0, "retries: {retries}");
    let grpc = "fedmesh_gateway_grpc_requests_total";
    let grpc_ok = series(
        &metrics,
        grpc,
        &format!("{hello},cluster=\"east\",grpc_status=\"0\""),
    );
    assert_eq!(grpc_ok, 1.0, "the retried gRPC request, counted once");
    let aborts = series(
        &metrics,
        "fedmesh_gateway_http_faults_injected_total",
        &format!("{hello},kind=\"abort\""),
    );
    assert!(aborts >= 5.0, "aborts: {aborts}");
    assert_eq!(
        series(
            &metrics,
            "fedmesh_gateway_http_retry_budget_exhausted_total",
            hello
        ),
        0.0
    );
}
