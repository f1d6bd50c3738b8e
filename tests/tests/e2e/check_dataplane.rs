//! `fedctl check` covers the data plane, with real `fedctl` and `fedgw`
//! processes: a killed gateway fails the check by name, a restarted one
//! passes again within 15 s (and `check --wait` waits for it), a peer
//! whose gateway dies fails as this cluster's gateway probes it, and an
//! export conflict is a `WARN` line that does not fail the check. Beside
//! them, `fedctl services -o json` on eu shows the effective split of a
//! weighted service and how it changes when a cluster loses its endpoints.

use std::time::{Duration, Instant};

use fedmesh_tests::{EXPORT, Federation, service_yaml, wait_until};

const SYNC: Duration = Duration::from_secs(20);

/// The line of `name` in a `fedctl check` table, if any.
fn line<'a>(stdout: &'a str, name: &str) -> Option<&'a str> {
    stdout.lines().find(|l| {
        l.get(5..)
            .is_some_and(|rest| rest.starts_with(&format!("{name}:")))
    })
}

#[test]
fn a_killed_gateway_fails_the_check_by_name_and_passes_again_after_a_restart() {
    let mut fed = Federation::standard(1, "");
    fed.get_mut("east").start_gateway();
    let east = fed.get("east");
    wait_until("east's check passes with its gateway up", SYNC, || {
        east.fedctl(&["check"]).ok
    });
    let ok = east.fedctl(&["check"]);
    let gw = line(&ok.stdout, "gateway gw-1").unwrap_or_default();
    assert!(gw.starts_with("ok"), "{}", ok.stdout);
    assert!(gw.contains("connected and ready"), "{gw}");

    fed.get_mut("east").kill_gateway();
    let killed = Instant::now();
    let east = fed.get("east");
    wait_until("east's check fails naming gw-1", SYNC, || {
        let c = east.fedctl(&["check"]);
        !c.ok && line(&c.stdout, "gateway gw-1").is_some_and(|l| l.starts_with("FAIL"))
    });
    println!("check failed {:?} after the kill", killed.elapsed());
    let bad = east.fedctl(&["check", "-o", "json"]);
    assert!(!bad.ok);
    let failing: Vec<String> = bad
        .json()
        .as_array()
        .into_iter()
        .flatten()
        .filter(|c| c["ok"] == false)
        .filter_map(|c| c["name"].as_str().map(String::from))
        .collect();
    assert_eq!(failing, ["gateways", "gateway gw-1"], "{}", bad.stdout);

    fed.get_mut("east").start_gateway();
    let restarted = Instant::now();
    let waited = fed.get("east").fedctl(&["check", "--wait", "15s"]);
    assert!(
        waited.ok,
        "check --wait 15s must pass after a restart: {}{}",
        waited.stdout, waited.stderr
    );
    println!(
        "check passed {:?} after the gateway restart",
        restarted.elapsed()
    );
}

#[test]
fn check_wait_gives_up_at_its_deadline_with_progress() {
    let fed = Federation::standard(1, "");
    let started = Instant::now();
    let out = fed.get("east").fedctl(&["check", "--wait", "2s"]);
    assert!(!out.ok, "no gateway runs: {}", out.stdout);
    assert!(out.stderr.contains("check 1: "), "{}", out.stderr);
    assert!(out.stderr.contains("gateway gw-1"), "{}", out.stderr);
    assert!(
        started.elapsed() < SYNC,
        "--wait 2s must end near its deadline"
    );
}

#[test]
fn an_export_conflict_is_a_warning_that_does_not_fail_the_check() {
    let mut fed = Federation::standard(2, "");
    fed.join("west", "east");
    fed.wait_connected("east", "west", SYNC);
    // Both gateways run: east's probes west's (it serves an import from
    // west), and a dead one would fail the check on its own.
    for c in &mut fed.clusters {
        c.start_gateway();
    }
    for (cluster, port) in [("east", 8080), ("west", 9090)] {
        fed.get(cluster).write_manifest(
            "hello.yaml",
            &service_yaml("demo", "hello", "http", port, 18080, &[EXPORT], &[]),
        );
    }
    let east = fed.get("east");
    wait_until("east warns of the port conflict and passes", SYNC, || {
        let c = east.fedctl(&["check"]);
        c.ok && line(&c.stdout, "service demo/hello").is_some_and(|l| l.starts_with("WARN"))
    });
}

#[test]
fn a_peer_whose_gateway_dies_fails_the_check_as_this_clusters_gateway_probes_it() {
    let mut fed = Federation::standard(2, "");
    fed.join("west", "east");
    fed.wait_connected("east", "west", SYNC);
    for c in &mut fed.clusters {
        c.start_gateway();
    }
    fed.get("west").write_manifest(
        "hello.yaml",
        &service_yaml(
            "demo",
            "hello",
            "http",
            8080,
            18080,
            &[EXPORT],
            &["127.0.0.1"],
        ),
    );
    let east = fed.get("east");
    wait_until("east's gateway probes west's up", SYNC, || {
        let c = east.fedctl(&["check"]);
        c.ok && line(&c.stdout, "peer west gateways").is_some_and(|l| l.contains(" up as gw-1"))
    });
    fed.get_mut("west").kill_gateway();
    let east = fed.get("east");
    wait_until("east's check fails on west's gateway", SYNC, || {
        let c = east.fedctl(&["check"]);
        !c.ok
            && line(&c.stdout, "peer west gateways")
                .is_some_and(|l| l.starts_with("FAIL") && l.contains("down as gw-1"))
    });
}

/// The `weights` of demo/hello in `cluster`'s `fedctl services -o json`.
fn weights(fed: &Federation, cluster: &str) -> Option<serde_json::Value> {
    fed.get(cluster)
        .service("demo/hello")
        .map(|s| s["weights"].clone())
}

#[test]
fn services_json_shows_the_effective_split_and_how_a_dead_cluster_loses_its_share() {
    let fed = Federation::full_mesh("", SYNC);
    let weighted = [EXPORT, ("fedmesh.io/weights", "east=70,west=30")];
    let hello = |cluster: &str, endpoints: &[&str], extra: &[(&str, &str)]| {
        let annotations: Vec<(&str, &str)> = weighted.iter().chain(extra).copied().collect();
        fed.get(cluster).write_manifest(
            "hello.yaml",
            &service_yaml(
                "demo",
                "hello",
                "http",
                8080,
                18080,
                &annotations,
                endpoints,
            ),
        );
    };
    hello("east", &["127.0.0.1"], &[("fedmesh.io/export-to", "eu")]);
    hello("west", &["127.0.0.1"], &[]);
    let split = serde_json::json!({"east": 70, "west": 30});
    wait_until("eu shows the 70/30 split", SYNC, || {
        weights(&fed, "eu") == Some(split.clone())
    });
    let eu = fed.get("eu").service("demo/hello").unwrap_or_default();
    assert_eq!(eu["affinity"], "local", "{eu}");
    assert_eq!(
        eu["exportTo"],
        serde_json::Value::Null,
        "eu exports nothing"
    );

    let east = fed.get("east").service("demo/hello").unwrap_or_default();
    assert_eq!(east["exportTo"], serde_json::json!(["eu"]), "{east}");
    let excluded: Vec<&str> = east["delivery"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|d| d["state"] == "excluded")
        .filter_map(|d| d["peer"].as_str())
        .collect();
    assert_eq!(excluded, ["west"], "{east}");
    // eu imports it, so it acknowledged a sync version holding it.
    wait_until("east shows eu's acknowledgement", SYNC, || {
        let east = fed.get("east").service("demo/hello").unwrap_or_default();
        east["delivery"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|d| d["peer"] == "eu" && d["state"] == "acked")
    });

    // East loses its one endpoint: its share goes to west.
    hello("east", &[], &[("fedmesh.io/export-to", "eu")]);
    wait_until("eu shows west taking the whole split", SYNC, || {
        weights(&fed, "eu") == Some(serde_json::json!({"west": 100}))
    });
}

#[test]
fn an_embedded_gateway_counts_as_this_clusters_gateway() {
    let mut fed = Federation::new();
    fed.add("east", "us-east", "us-east-1a", "");
    let east = fed.get_mut("east");
    east.set_gateway_option("embedded", "true");
    east.start();
    let east = fed.get("east");
    wait_until("east's check passes on its embedded gateway", SYNC, || {
        let c = east.fedctl(&["check"]);
        c.ok && line(&c.stdout, "gateway gw-1").is_some_and(|l| l.contains("connected and ready"))
    });
}
