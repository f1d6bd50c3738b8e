//! Health per endpoint: one silent endpoint (its SYNs dropped) among a
//! service's endpoints never fails a client connection and never makes its
//! cluster look dead; the ingress dials each endpoint within a share of the
//! egress's wait and ejects the silent one on its own.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use fedmesh_tests::silent::SilentEndpoint;
use fedmesh_tests::{Backend, EXPORT, Federation, ask_backend, service_yaml, wait_until};

const SYNC: Duration = Duration::from_secs(20);

#[test]
fn a_silent_endpoint_fails_no_connection_and_is_ejected_alone() {
    let mut fed = Federation::standard(2, "");
    fed.join("west", "east");
    fed.wait_connected("east", "west", SYNC);
    for c in &mut fed.clusters {
        c.start_gateway();
    }
    let west = fed.get("west");
    let octets = west.ip.octets();
    let silent_ip = Ipv4Addr::new(octets[0], octets[1], octets[2], 200);
    let _silent = SilentEndpoint::start((silent_ip, 18080).into());
    let _backend = Backend::start((west.ip, 18080).into(), "west");
    west.write_manifest(
        "hello.yaml",
        &service_yaml(
            "demo",
            "hello",
            "http",
            8080,
            18080,
            &[EXPORT],
            &[&silent_ip.to_string(), &west.ip.to_string()],
        ),
    );
    let east = fed.get("east");
    wait_until("east imports hello from west", SYNC, || {
        east.service_clusters("demo/hello") == ["west"]
    });
    let answer = fedmesh_tests::dns_query(east.dns(), "west.hello.demo.svc.clusterset.local", "A");
    assert_eq!(answer.a.len(), 1, "{answer:?}");
    let pinned = SocketAddr::new(answer.a[0].into(), 8080);
    wait_until("east's gateway listens on west's pinned VIP", SYNC, || {
        std::net::TcpStream::connect(pinned).is_ok()
    });

    let mut failed = Vec::new();
    let mut slow = 0;
    for _ in 0..40 {
        let started = Instant::now();
        match ask_backend(pinned) {
            Ok(name) => assert_eq!(name, "west"),
            Err(e) => failed.push(e),
        }
        if started.elapsed() > Duration::from_millis(300) {
            slow += 1;
        }
    }
    eprintln!("40 connections past a silent endpoint: {slow} slower than 300 ms");
    assert!(failed.is_empty(), "failed connections: {failed:?}");
    let log = fed.get("west").gateway_log();
    assert!(
        log.contains("ejecting an endpoint") && log.contains(&silent_ip.to_string()),
        "west's ingress ejects the silent endpoint:\n{log}"
    );
    assert!(
        !fed.get("east").gateway_log().contains("ejecting a cluster"),
        "west stays in: one endpoint is not its cluster"
    );
}
