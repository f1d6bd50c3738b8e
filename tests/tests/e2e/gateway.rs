//! The east-west data path with real processes: three clusters (east
//! us-east-1a, west us-west-2a, eu eu-central-1a), each with `fedgw`, real
//! TCP backends that name themselves, and clients on east's VIP.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use fedmesh_tests::{Backend, EXPORT, Federation, ask_backend, service_yaml, wait_until};

const SYNC: Duration = Duration::from_secs(20);

/// The mesh with a gateway in every cluster.
fn mesh() -> Federation {
    let mut fed = Federation::full_mesh("", SYNC);
    for c in &mut fed.clusters {
        c.start_gateway();
    }
    fed
}

/// Exports demo/hello in `cluster` with one endpoint at its backend.
fn export_hello(fed: &Federation, cluster: &str) -> SocketAddr {
    let c = fed.get(cluster);
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
    backend
}

/// east's VIP for demo/hello, once its gateway listens on it.
fn east_vip(fed: &Federation, exporters: &[&str]) -> SocketAddr {
    let east = fed.get("east");
    wait_until("east imports hello from every exporter", SYNC, || {
        east.service_clusters("demo/hello") == exporters
    });
    let vip: std::net::IpAddr = east.service("demo/hello").unwrap()["vip"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let addr = SocketAddr::new(vip, 8080);
    wait_until("east's gateway listens on the VIP", SYNC, || {
        std::net::TcpStream::connect(addr).is_ok()
    });
    addr
}

/// East and west with gateways, demo/hello served by west only, and the
/// VIP on which east's clients reach it (checked once).
fn east_served_by_west() -> (Federation, Backend, SocketAddr) {
    let mut fed = Federation::standard(2, "");
    fed.join("west", "east");
    fed.wait_connected("east", "west", SYNC);
    for c in &mut fed.clusters {
        c.start_gateway();
    }
    let west = Backend::start(export_hello(&fed, "west"), "west");
    let vip = east_vip(&fed, &["west"]);
    assert_eq!(ask_backend(vip).as_deref(), Ok("west"));
    (fed, west, vip)
}

#[test]
fn traffic_stays_local_fails_over_to_west_resets_when_nothing_serves_and_recovers() {
    let mut fed = mesh();
    let east_backend = Backend::start(export_hello(&fed, "east"), "east");
    let _west_backend = Backend::start(export_hello(&fed, "west"), "west");
    let vip = east_vip(&fed, &["east", "west"]);

    for _ in 0..20 {
        assert_eq!(
            ask_backend(vip).as_deref(),
            Ok("east"),
            "local endpoints come first"
        );
    }

    drop(east_backend);
    for _ in 0..20 {
        assert_eq!(
            ask_backend(vip).as_deref(),
            Ok("west"),
            "east's endpoint is gone: west serves"
        );
    }

    fed.get_mut("west").kill_gateway();
    for _ in 0..5 {
        let started = Instant::now();
        let result = ask_backend(vip);
        assert!(result.is_err(), "nothing can serve, yet {result:?}");
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "the client must be reset, not left hanging"
        );
    }

    fed.get_mut("west").start_gateway();
    wait_until("west serves again once its gateway is back", SYNC, || {
        ask_backend(vip).as_deref() == Ok("west")
    });

    // /metrics counted it: connections to both clusters, and the resets.
    let (code, metrics) = fed.get("east").gateway_admin("/metrics");
    assert_eq!(code, 200);
    let value = |needle: &str| -> f64 {
        metrics
            .lines()
            .filter(|l| l.starts_with(needle))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    };
    assert!(
        value(
            "fedmesh_gateway_egress_connections_opened_total{namespace=\"demo\",service=\"hello\",cluster=\"east\"}"
        ) >= 20.0,
        "{metrics}"
    );
    assert!(
        value(
            "fedmesh_gateway_egress_connections_opened_total{namespace=\"demo\",service=\"hello\",cluster=\"west\"}"
        ) >= 21.0,
        "{metrics}"
    );
    assert!(
        value(
            "fedmesh_gateway_egress_connections_failed_total{namespace=\"demo\",service=\"hello\"}"
        ) >= 5.0,
        "{metrics}"
    );
    assert!(
        value("fedmesh_gateway_egress_attempts_failed_total") >= 1.0,
        "{metrics}"
    );
    assert_eq!(fed.get("east").gateway_admin("/ready").0, 200);
    assert_eq!(fed.get("east").gateway_admin("/live").0, 200);
}

#[test]
fn a_thousand_new_connections_all_succeed_while_clusters_fail() {
    let mut fed = mesh();
    let east_backend = Backend::start(export_hello(&fed, "east"), "east");
    let _west = Backend::start(export_hello(&fed, "west"), "west");
    let _eu = Backend::start(export_hello(&fed, "eu"), "eu");
    let vip = east_vip(&fed, &["east", "eu", "west"]);
    drop(east_backend);
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut served = std::collections::BTreeMap::<String, usize>::new();
    for i in 0..1000 {
        if i == 300 {
            fed.get_mut("west").kill_gateway();
        }
        assert!(Instant::now() < deadline, "the loop is bounded in time");
        match ask_backend(vip) {
            Ok(name) => *served.entry(name).or_default() += 1,
            Err(e) => panic!(
                "connection {i} failed while eu could serve: {e} (served so far: {served:?})"
            ),
        }
    }
    assert!(!served.contains_key("east"), "{served:?}");
    assert!(
        served.get("eu").copied().unwrap_or(0) >= 700,
        "after west's gateway died eu serves everything: {served:?}"
    );
}

#[test]
fn connections_over_the_service_rate_limit_are_reset_and_counted() {
    let mut fed = Federation::new();
    fed.add("east", "us-east", "us-east-1a", "");
    let c = &mut fed.clusters[0];
    let config = std::fs::read_to_string(&c.config).unwrap();
    c.write_config(&config.replace(
        "  vipRange:",
        "  rateLimit: { connectionsPerSecond: 1, burst: 3 }\n  vipRange:",
    ));
    c.start();
    c.start_gateway();
    let _backend = Backend::start(export_hello(&fed, "east"), "east");
    let vip = east_vip(&fed, &["east"]);
    // The VIP probe above took one token; 20 quick connections find at
    // most the two left plus what refills meanwhile.
    let results: Vec<_> = (0..20).map(|_| ask_backend(vip)).collect();
    let served = results.iter().filter(|r| r.is_ok()).count();
    assert!(
        (1..=5).contains(&served),
        "{served} of 20 served: {results:?}"
    );
    let (_, metrics) = fed.get("east").gateway_admin("/metrics");
    let limited = metrics
        .lines()
        .find_map(|l| {
            l.strip_prefix(
                "fedmesh_gateway_egress_rate_limited_total{namespace=\"demo\",service=\"hello\"} ",
            )
        })
        .and_then(|v| v.parse::<f64>().ok());
    assert!(limited >= Some(1.0), "{metrics}");
}

#[test]
fn sigterm_drains_the_gateway_open_connections_finish_new_ones_are_refused() {
    use std::io::{BufRead, Write};
    let mut fed = Federation::standard(1, "");
    fed.get_mut("east").start_gateway();
    let _backend = Backend::start(export_hello(&fed, "east"), "east");
    let vip = east_vip(&fed, &["east"]);
    let conn = std::net::TcpStream::connect(vip).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut reader = std::io::BufReader::new(conn.try_clone().unwrap());
    let mut line = String::new();
    reader.read_line(&mut line).unwrap();
    assert_eq!(line, "east\n");

    fed.get("east").signal_gateway_term();
    wait_until("the VIP stops accepting", Duration::from_secs(5), || {
        std::net::TcpStream::connect(vip).is_err()
    });
    // The open connection still carries bytes while the gateway drains.
    let mut writer = conn;
    writer.write_all(b"still here\n").unwrap();
    line.clear();
    reader.read_line(&mut line).unwrap();
    assert_eq!(line, "still here\n");
    drop(writer);
    drop(reader);
    assert!(
        fed.get_mut("east")
            .wait_gateway_exit(Duration::from_secs(10)),
        "the gateway exits cleanly once drained"
    );
    assert!(fed.get("east").gateway_log().contains("gateway stopped"));
}

#[test]
fn the_gateway_keeps_serving_its_last_snapshot_while_its_control_plane_is_down_over_its_pool() {
    let (mut fed, _west, vip) = east_served_by_west();

    fed.get_mut("east").kill9();
    for i in 0..20 {
        assert_eq!(
            ask_backend(vip).as_deref(),
            Ok("west"),
            "connection {i} with east's control plane down"
        );
    }
    // The 20 connections rode one pooled connection: no handshake each.
    let west_sum = |metrics: &str, name: &str| -> f64 {
        metrics
            .lines()
            .filter(|l| l.starts_with(&format!("{name}{{")) && l.contains("cluster=\"west\""))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    };
    let mut metrics = String::new();
    wait_until("the pool's counters reach the metrics", SYNC, || {
        metrics = fed.get("east").gateway_admin("/metrics").1;
        west_sum(
            &metrics,
            "fedmesh_gateway_egress_peer_connections_opened_total",
        ) >= 1.0
    });
    let handshakes = west_sum(&metrics, "fedmesh_gateway_egress_tls_handshakes_total");
    let connects = west_sum(
        &metrics,
        "fedmesh_gateway_egress_peer_connections_opened_total",
    );
    assert!(
        handshakes <= 2.0 && connects <= 2.0,
        "20 connections should ride the pool ({connects} TCP, {handshakes} TLS):\n{metrics}"
    );
    fed.get_mut("east").start();
    assert_eq!(ask_backend(vip).as_deref(), Ok("west"));
}

#[test]
fn a_pinned_vip_reaches_only_its_cluster() {
    let fed = mesh();
    let east_backend = Backend::start(export_hello(&fed, "east"), "east");
    let _west_backend = Backend::start(export_hello(&fed, "west"), "west");
    let vip = east_vip(&fed, &["east", "west"]);
    let east = fed.get("east");
    let pinned = |cluster: &str| -> SocketAddr {
        let answer = fedmesh_tests::dns_query(
            east.dns(),
            &format!("{cluster}.hello.demo.svc.clusterset.local"),
            "A",
        );
        assert_eq!(answer.a.len(), 1, "{answer:?}");
        SocketAddr::new(answer.a[0].into(), 8080)
    };
    let (to_east, to_west) = (pinned("east"), pinned("west"));
    assert_ne!(to_east, vip);
    wait_until("east's gateway listens on the pinned VIPs", SYNC, || {
        ask_backend(to_west).is_ok() && ask_backend(to_east).is_ok()
    });
    for _ in 0..10 {
        assert_eq!(
            ask_backend(to_west).as_deref(),
            Ok("west"),
            "pinned to west"
        );
        assert_eq!(
            ask_backend(to_east).as_deref(),
            Ok("east"),
            "pinned to east"
        );
        assert_eq!(
            ask_backend(vip).as_deref(),
            Ok("east"),
            "the VIP stays local"
        );
    }
    // A pinned VIP never fails over: with east's endpoint gone it resets,
    // while the service VIP moves to west.
    drop(east_backend);
    wait_until("the east-pinned VIP resets", SYNC, || {
        ask_backend(to_east).is_err()
    });
    assert_eq!(ask_backend(vip).as_deref(), Ok("west"));
    assert_eq!(ask_backend(to_west).as_deref(), Ok("west"));
}

#[test]
fn probes_of_an_ingress_are_not_refusals_but_a_bad_handshake_is() {
    let (fed, _west, _vip) = east_served_by_west();
    let ok_probes = || {
        let (_, metrics) = fed.get("east").gateway_admin("/metrics");
        metrics
            .lines()
            .filter(|l| l.starts_with("fedmesh_gateway_probes_total") && l.contains("ok"))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>()
    };
    wait_until("east probes west's gateway a few times", SYNC, || {
        ok_probes() >= 5.0
    });
    let refused = |reason: &str| {
        let (_, metrics) = fed.get("west").gateway_admin("/metrics");
        // The series exists at 0 from the start: look at its value.
        metrics
            .lines()
            .filter(|l| {
                l.starts_with("fedmesh_gateway_ingress_refused_total")
                    && l.contains(&format!("reason=\"{reason}\""))
            })
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>()
            > 0.0
    };
    assert!(!refused("handshake"), "probes were counted as refusals");

    // Bytes that are not TLS are a refused handshake.
    let mut tcp = std::net::TcpStream::connect(fed.get("west").ingress()).unwrap();
    std::io::Write::write_all(&mut tcp, b"GET / HTTP/1.1\r\n\r\n").unwrap();
    let _ = std::io::Read::read(&mut tcp, &mut [0u8; 64]);
    wait_until("west counts the bad handshake", SYNC, || {
        refused("handshake")
    });
}
