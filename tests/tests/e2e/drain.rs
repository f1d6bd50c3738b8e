//! `fedctl drain`, `undrain` and `drill` with real processes: east, west
//! and eu in a full mesh, each with `fedgw`; demo/hello served by east and
//! west (backends that name themselves), clients on eu's and east's VIPs.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use fedmesh_tests::{Backend, EXPORT, Federation, ask_backend, service_yaml, wait_until};

const SYNC: Duration = Duration::from_secs(20);
/// The acceptance bound: new connections leave a drained cluster within this.
const SWITCH: Duration = Duration::from_secs(5);

/// The mesh with gateways, demo/hello exported by east and west, and the
/// VIPs of eu and east once their gateways listen.
fn mesh() -> (Federation, Vec<Backend>, SocketAddr, SocketAddr) {
    let mut fed = Federation::full_mesh("", SYNC);
    for c in &mut fed.clusters {
        c.start_gateway();
    }
    let mut backends = Vec::new();
    for name in ["east", "west"] {
        let c = fed.get(name);
        let addr: SocketAddr = (c.ip, 18080).into();
        let manifest = service_yaml(
            "demo",
            "hello",
            "http",
            8080,
            18080,
            &[EXPORT],
            &[&c.ip.to_string()],
        );
        c.write_manifest("hello.yaml", &manifest);
        backends.push(Backend::start(addr, name));
    }
    let eu = vip(&fed, "eu");
    let east = vip(&fed, "east");
    (fed, backends, eu, east)
}

/// `cluster`'s VIP for demo/hello, once both exporters are imported and
/// its gateway listens.
fn vip(fed: &Federation, cluster: &str) -> SocketAddr {
    let c = fed.get(cluster);
    wait_until(&format!("{cluster} sees east and west"), SYNC, || {
        c.service_clusters("demo/hello") == ["east", "west"]
    });
    let ip: std::net::IpAddr = c.service("demo/hello").unwrap()["vip"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let addr = SocketAddr::new(ip, 8080);
    wait_until(&format!("{cluster}'s gateway listens"), SYNC, || {
        ask_backend(addr).is_ok()
    });
    addr
}

/// Who answered each of `n` new connections; any failure fails the test.
fn answers(vip: SocketAddr, n: usize) -> Vec<String> {
    (0..n)
        .map(|i| ask_backend(vip).unwrap_or_else(|e| panic!("connection {i} to {vip} failed: {e}")))
        .collect()
}

/// Waits (at most `within`) until `n` new connections in a row all reach
/// `cluster`; every connection on the way must succeed.
fn all_reach(vip: SocketAddr, cluster: &str, n: usize, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        let got = answers(vip, n);
        if got.iter().all(|c| c == cluster) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{vip}: after {within:?}, not all of {n} connections reach {cluster}: {got:?}"
        );
    }
}

/// A connection held open through `vip` that landed on `cluster`.
fn held_on(vip: SocketAddr, cluster: &str) -> (TcpStream, BufReader<TcpStream>) {
    for _ in 0..200 {
        let conn = TcpStream::connect(vip).expect("connect");
        conn.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut reader = BufReader::new(conn.try_clone().unwrap());
        let mut name = String::new();
        reader.read_line(&mut name).expect("greeting");
        if name.trim() == cluster {
            return (conn, reader);
        }
    }
    panic!("no connection through {vip} landed on {cluster} in 200 tries");
}

fn echoes(held: &mut (TcpStream, BufReader<TcpStream>)) -> bool {
    let mut line = String::new();
    held.0.write_all(b"still here\n").is_ok()
        && held.1.read_line(&mut line).is_ok()
        && line == "still here\n"
}

fn east_draining_as_seen_by(fed: &Federation, cluster: &str) -> bool {
    fed.get(cluster).service("demo/hello").is_some_and(|s| {
        s["clusters"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|c| c["name"] == "east" && c["draining"] == true)
    })
}

#[test]
fn drain_sends_new_connections_to_west_keeps_open_ones_and_undrain_brings_them_back() {
    let (mut fed, _backends, eu_vip, east_vip) = mesh();
    assert_eq!(
        answers(east_vip, 20),
        vec!["east"; 20],
        "east's clients stay local"
    );
    let mut held = held_on(eu_vip, "east");

    let out = fed.get("east").fedctl(&["drain", "west"]);
    assert!(!out.ok, "draining the wrong cluster is refused");
    assert!(out.stderr.contains("not west"), "{}", out.stderr);

    let drained = Instant::now();
    let out = fed.get("east").fedctl(&["drain", "east"]);
    assert!(out.ok, "{}", out.stderr);
    all_reach(
        eu_vip,
        "west",
        100,
        SWITCH.saturating_sub(drained.elapsed()),
    );
    all_reach(
        east_vip,
        "west",
        100,
        SWITCH.saturating_sub(drained.elapsed()),
    );
    eprintln!(
        "drain east: 100 + 100 new connections in a row on west {} ms after the drain",
        drained.elapsed().as_millis()
    );
    assert!(echoes(&mut held), "an open connection to east is not cut");

    assert!(east_draining_as_seen_by(&fed, "eu"));
    assert!(east_draining_as_seen_by(&fed, "east"));
    let peers = fed.get("eu").peers();
    let east = peers.iter().find(|p| p["name"] == "east").unwrap();
    assert_eq!(east["draining"], true, "{east}");
    let table = fed.get("eu").fedctl(&["services"]);
    assert!(
        table.stdout.contains("east(1, draining)"),
        "{}",
        table.stdout
    );

    // A restart keeps the drain.
    let east = fed.get_mut("east");
    assert!(east.terminate());
    east.start();
    fed.wait_connected("eu", "east", SYNC);
    assert!(east_draining_as_seen_by(&fed, "east"));
    assert!(east_draining_as_seen_by(&fed, "eu"));
    all_reach(eu_vip, "west", 20, SYNC);

    let out = fed.get("east").fedctl(&["undrain", "east", "-o", "json"]);
    assert!(out.ok, "{}", out.stderr);
    assert_eq!(out.json()["draining"], false);
    all_reach(east_vip, "east", 20, SYNC);
    wait_until("eu sends east connections again", SYNC, || {
        answers(eu_vip, 20).iter().any(|c| c == "east")
    });
    assert!(!east_draining_as_seen_by(&fed, "eu"));
}

#[test]
fn a_drill_of_east_from_eu_fails_no_connection_and_reports_the_switch_over() {
    let (fed, _backends, _eu_vip, _east_vip) = mesh();
    let eu = fed.get("eu");
    let out = eu.fedctl(&["drill", "--cluster", "east", "--service", "demo/hello"]);
    assert!(!out.ok, "east's admin address is needed");
    assert!(out.stderr.contains("--cluster-admin"), "{}", out.stderr);

    let gateway_admin = format!("{}:15090", eu.ip);
    let east_admin = fed.get("east").admin();
    let out = eu.fedctl(&[
        "drill",
        "--cluster",
        "east",
        "--service",
        "demo/hello",
        "--duration",
        "6s",
        "--rate",
        "50",
        "--cluster-admin",
        &east_admin,
        "--gateway-admin",
        &gateway_admin,
        "-o",
        "json",
    ]);
    assert!(out.ok, "the drill failed:\n{}\n{}", out.stdout, out.stderr);
    let report = out.json();
    eprintln!("drill report: {report}\nprogress:\n{}", out.stderr);
    assert_eq!(report["cluster"], "east");
    assert_eq!(report["service"], "demo/hello");
    assert_eq!(report["failed"], 0, "{report}");
    assert!(report["sent"].as_u64().unwrap() >= 200, "{report}");
    assert!(report["switchoverMs"].is_u64(), "{report}");
    assert!(report["returnMs"].is_u64(), "{report}");
    assert!(
        out.stderr.contains("drained at"),
        "progress: {}",
        out.stderr
    );
    assert!(
        !east_draining_as_seen_by(&fed, "eu"),
        "the drill undrains east"
    );
}
