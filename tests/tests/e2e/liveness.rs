//! Heartbeats: a silent peer (frozen, sockets still open) is marked stale
//! after peerDeadAfter, `fedctl check` reports it, and it recovers.

use std::time::Duration;

use fedmesh_tests::{Federation, wait_until};

const FAST: &str = "  heartbeatInterval: 200ms\n  peerDeadAfter: 1s\n  staleGrace: 30s\n";

#[test]
fn a_silent_peer_is_marked_stale_and_check_fails_until_it_returns() {
    let mut fed = Federation::standard(2, FAST);
    fed.join("west", "east");
    fed.wait_connected("east", "west", Duration::from_secs(15));
    // The check covers the data plane: east's gateway must serve.
    fed.get_mut("east").start_gateway();
    wait_until("east's check passes", Duration::from_secs(15), || {
        fed.get("east").fedctl(&["check"]).ok
    });
    let ok = fed.get("east").fedctl(&["check"]);
    assert!(ok.ok, "check should pass: {}{}", ok.stdout, ok.stderr);
    assert!(ok.stdout.contains("ok   peer west"), "{}", ok.stdout);

    fed.get("west").freeze();
    wait_until(
        "east marks frozen west stale",
        Duration::from_secs(5),
        || fed.get("east").peer_state("west").as_deref() == Some("stale"),
    );
    let bad = fed.get("east").fedctl(&["check"]);
    assert!(!bad.ok);
    assert!(bad.stdout.contains("FAIL peer west"), "{}", bad.stdout);
    assert!(bad.stdout.contains("ok   ca"), "{}", bad.stdout);

    fed.get("west").thaw();
    fed.wait_connected("east", "west", Duration::from_secs(20));
    assert!(fed.get("east").fedctl(&["check"]).ok);
}

#[test]
fn a_stale_peer_turns_disconnected_after_the_grace_period() {
    let quick = "  heartbeatInterval: 200ms\n  peerDeadAfter: 1s\n  staleGrace: 2s\n";
    let mut fed = Federation::standard(2, quick);
    fed.join("west", "east");
    fed.wait_connected("east", "west", Duration::from_secs(15));
    fed.get_mut("west").kill9();
    wait_until("east marks west stale", Duration::from_secs(5), || {
        fed.get("east").peer_state("west").as_deref() == Some("stale")
    });
    wait_until(
        "east marks west disconnected",
        Duration::from_secs(10),
        || fed.get("east").peer_state("west").as_deref() == Some("disconnected"),
    );
}

#[test]
fn check_json_lists_every_check() {
    let mut fed = Federation::standard(1, "");
    fed.get_mut("east").start_gateway();
    wait_until("east's check passes", Duration::from_secs(15), || {
        fed.get("east").fedctl(&["check"]).ok
    });
    let out = fed.get("east").fedctl(&["check", "-o", "json"]);
    assert!(out.ok, "{}", out.stderr);
    let names: Vec<String> = out
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        names,
        [
            "ca",
            "control certificate",
            "gateway bootstrap token",
            "store",
            "registry",
            "gateways",
            "gateway gw-1"
        ]
    );
}
