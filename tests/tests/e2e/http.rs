//! HTTP-aware services through the real binaries: three clusters (east,
//! west, eu) with gateways, demo/hello exported by east and west on a port
//! named `http` with hyper backends that answer their cluster's name, and
//! a client in eu that holds one connection for all its requests.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use fedmesh_tests::{
    EXPORT, Federation, Flavor, HttpBackend, KeepAliveClient, service_yaml, wait_until,
};

const SYNC: Duration = Duration::from_secs(20);

/// The mesh with a gateway in every cluster.
fn mesh() -> Federation {
    let mut fed = Federation::full_mesh("", SYNC);
    for c in &mut fed.clusters {
        c.start_gateway();
    }
    fed
}

/// Exports demo/hello in `cluster` on the HTTP port `http:8080`, with
/// `annotations`; returns where its backend must listen.
fn export_hello(fed: &Federation, cluster: &str, annotations: &[(&str, &str)]) -> SocketAddr {
    export_hello_on(fed, cluster, "http", annotations)
}

/// As [`export_hello`], on a port named `port_name`.
fn export_hello_on(
    fed: &Federation,
    cluster: &str,
    port_name: &str,
    annotations: &[(&str, &str)],
) -> SocketAddr {
    let c = fed.get(cluster);
    let backend: SocketAddr = (c.ip, 18080).into();
    c.write_manifest(
        "hello.yaml",
        &service_yaml(
            "demo",
            "hello",
            port_name,
            8080,
            18080,
            annotations,
            &[&backend.ip().to_string()],
        ),
    );
    backend
}

/// eu's VIP for demo/hello once both exporters are imported and its
/// gateway takes requests there.
fn eu_vip(fed: &Federation) -> SocketAddr {
    eu_vip_as(fed, "HTTP", Flavor::Http1)
}

/// As [`eu_vip`], for a port shown as `protocol`, asked with `flavor`.
fn eu_vip_as(fed: &Federation, protocol: &str, flavor: Flavor) -> SocketAddr {
    let eu = fed.get("eu");
    wait_until("eu imports hello from east and west", SYNC, || {
        eu.service_clusters("demo/hello") == ["east", "west"]
    });
    let service = eu.service("demo/hello").expect("imported");
    assert_eq!(service["ports"][0]["protocol"], protocol, "{service}");
    let vip: std::net::IpAddr = service["vip"].as_str().unwrap().parse().unwrap();
    let addr = SocketAddr::new(vip, 8080);
    wait_until("eu's gateway answers on the VIP", SYNC, || {
        KeepAliveClient::connect(addr, flavor)
            .and_then(|mut c| c.get("/"))
            .is_ok_and(|(status, _)| status == 200)
    });
    addr
}

/// `n` GETs on one connection of `flavor`; the answers by body.
fn split(addr: SocketAddr, flavor: Flavor, n: usize) -> BTreeMap<String, usize> {
    let mut client = KeepAliveClient::connect(addr, flavor).expect("connect");
    let mut served = BTreeMap::new();
    for i in 0..n {
        match client.get(&format!("/hello/{i}")) {
            Ok((200, name)) => *served.entry(name).or_default() += 1,
            other => panic!("request {i} on one connection: {other:?} (so far {served:?})"),
        }
    }
    served
}

fn share(served: &BTreeMap<String, usize>, cluster: &str) -> f64 {
    let total: usize = served.values().sum();
    served.get(cluster).copied().unwrap_or(0) as f64 / total as f64
}

#[test]
fn one_connections_requests_follow_the_weights_over_http1_and_h2c() {
    let fed = mesh();
    let weighted = [EXPORT, ("fedmesh.io/weights", "east=80,west=20")];
    let _east = HttpBackend::start(export_hello(&fed, "east", &weighted), "east");
    let _west = HttpBackend::start(export_hello(&fed, "west", &weighted), "west");
    let vip = eu_vip(&fed);
    wait_until("eu sees the weights", SYNC, || {
        let s = fed.get("eu").service("demo/hello");
        s.is_some_and(|s| s["weights"]["east"] == 80 && s["weights"]["west"] == 20)
    });
    let http1 = split(vip, Flavor::Http1, 400);
    let east = share(&http1, "east");
    assert!((east - 0.8).abs() <= 0.08, "HTTP/1.1 keep-alive: {http1:?}");
    let h2c = split(vip, Flavor::H2c, 400);
    let east = share(&h2c, "east");
    assert!((east - 0.8).abs() <= 0.08, "h2c: {h2c:?}");
    // Counted by code, per target cluster.
    let (status, metrics) = fed.get("eu").gateway_admin("/metrics");
    assert_eq!(status, 200);
    let line = |cluster: &str| {
        format!(
            "fedmesh_gateway_http_requests_total{{namespace=\"demo\",service=\"hello\",cluster=\"{cluster}\",code=\"200\"}}"
        )
    };
    for (cluster, want) in [("east", 1), ("west", 1)] {
        let count: f64 = metrics
            .lines()
            .find_map(|l| l.strip_prefix(&line(cluster)))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {} in:\n{metrics}", line(cluster)));
        assert!(count >= f64::from(want), "{cluster}: {count}");
    }
}

#[test]
fn requests_on_one_connection_all_succeed_while_easts_backend_is_killed() {
    let fed = mesh();
    let east = HttpBackend::start(export_hello(&fed, "east", &[EXPORT]), "east");
    let _west = HttpBackend::start(export_hello(&fed, "west", &[EXPORT]), "west");
    let vip = eu_vip(&fed);
    let mut client = KeepAliveClient::connect(vip, Flavor::Http1).expect("connect");
    let mut east = Some(east);
    let mut served = BTreeMap::<String, usize>::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    for i in 0..60 {
        assert!(Instant::now() < deadline, "the loop is bounded in time");
        if i == 20 {
            assert!(
                served.contains_key("east"),
                "east served before: {served:?}"
            );
            drop(east.take());
        }
        // Every third request a POST whose body has no length (chunked):
        // kept while it streams, so a refusal still sends it elsewhere.
        let answer = if i % 3 == 2 {
            let chunks = ["part-1;", "part-2"];
            client
                .post_streamed(&format!("/hello/{i}"), &chunks)
                .map(|(status, text)| match text.strip_suffix(" part-1;part-2") {
                    Some(name) => (status, name.to_string()),
                    None => (status, format!("body lost: {text}")),
                })
        } else {
            client.get(&format!("/hello/{i}"))
        };
        match answer {
            Ok((200, name)) => {
                if i >= 20 {
                    assert_eq!(name, "west", "request {i} after east's backend died");
                }
                *served.entry(name).or_default() += 1;
            }
            other => panic!("request {i} failed while west could serve: {other:?} ({served:?})"),
        }
    }
    assert_eq!(served.values().sum::<usize>(), 60, "{served:?}");
}

#[test]
fn an_h2c_port_is_http2_from_the_client_to_the_endpoints_and_balanced_per_request() {
    let fed = mesh();
    let east = HttpBackend::start(export_hello_on(&fed, "east", "h2c-api", &[EXPORT]), "east");
    let west = HttpBackend::start(export_hello_on(&fed, "west", "h2c-api", &[EXPORT]), "west");
    let vip = eu_vip_as(&fed, "H2C", Flavor::H2c);
    let served = split(vip, Flavor::H2c, 100);
    assert!(
        served.get("east").is_some_and(|n| *n > 0) && served.get("west").is_some_and(|n| *n > 0),
        "one h2c connection's requests reach both clusters: {served:?}"
    );
    assert_eq!(
        east.seen(),
        east.seen_h2(),
        "east's endpoint got HTTP/2 only"
    );
    assert_eq!(
        west.seen(),
        west.seen_h2(),
        "west's endpoint got HTTP/2 only"
    );
    assert!(east.seen() + west.seen() >= 100);
    // Trailers (where gRPC puts its status) come back through both gateways.
    let mut client = KeepAliveClient::connect(vip, Flavor::H2c).expect("connect");
    let (status, name, trailers) = client.get_with_trailers("/status").expect("answered");
    let trailers = trailers.expect("the endpoint's trailers arrive");
    assert_eq!(status, 200);
    assert_eq!(trailers["grpc-status"], "0");
    assert_eq!(trailers["x-served-by"], name.as_str());
}
