//! `fedctl check` covers the data plane, with real `fedctl` and `fedgw`
//! processes: a killed gateway fails the check by name, a restarted one
//! passes again within 15 s (and `check --wait` waits for it), and an
//! export conflict is a `WARN` line that does not fail the check.

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
    let east = fed.get("east");
    wait_until("east's check fails naming gw-1", SYNC, || {
        let c = east.fedctl(&["check"]);
        !c.ok && line(&c.stdout, "gateway gw-1").is_some_and(|l| l.starts_with("FAIL"))
    });
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
    fed.get_mut("east").start_gateway();
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
