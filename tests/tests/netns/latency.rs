//! Latency the kernel here cannot add with `tc netem`, two ways:
//!
//! - eu's peering and gateway advertised behind 150 ms delaying TCP relays
//!   (`fedmesh_tests::relay`, run inside eu's namespace), so every byte
//!   any peer sends eu, or eu answers, takes 150 ms each way: joining,
//!   export sync, heartbeats, the pooled connection's TLS handshake and
//!   each CONNECT stream
//!   must fit their deadlines, and traffic must take the advertised path;
//! - every packet of eu's link delayed 150 ms at the IP layer
//!   (`fedmesh_tests::netns::delay`), handshakes included, as for a
//!   cluster on another continent: a 300 ms round trip is slow, not dead,
//!   so the gateway's probes must not route around it.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use fedmesh_tests::netns::helper::relay_accepted;
use fedmesh_tests::netns::mesh::{Advertise, Mesh, SYNC, Settings};
use fedmesh_tests::netns::{skip, tool_available};

/// One-way delay of the relays.
const DELAY_MS: &str = "150";

#[test]
fn a_peer_behind_a_150ms_relay_joins_syncs_stays_connected_and_serves_through_it() {
    let Some(mut mesh) = Mesh::create(
        "a_peer_behind_a_150ms_relay_joins_syncs_stays_connected_and_serves_through_it",
    ) else {
        return;
    };
    let eu = mesh.addr("eu");
    let advertise = Advertise {
        peering: SocketAddr::from((eu, 25017)),
        gateway: SocketAddr::from((eu, 25443)),
    };
    let relay = |what: &str, front: SocketAddr, port: u16| {
        let back = SocketAddr::from((eu, port));
        let mut r = mesh.helper(
            "eu",
            what,
            &["relay", &front.to_string(), &back.to_string(), DELAY_MS],
        );
        r.wait_for("relay listening on", Duration::from_secs(10));
        r
    };
    let peering_relay = relay("relay-peering", advertise.peering, 15017);
    let gateway_relay = relay("relay-gateway", advertise.gateway, 15443);
    mesh.configure(
        "eu",
        &Settings {
            advertise: Some(advertise.clone()),
            ..Settings::default()
        },
    );
    mesh.start();

    // eu's tokens carry the relayed address: east and west join through it.
    mesh.fed.join("east", "eu");
    mesh.fed.join("west", "eu");
    mesh.fed.join("west", "east");
    for (a, b) in [("east", "eu"), ("west", "eu"), ("east", "west")] {
        mesh.fed.wait_connected(a, b, SYNC);
    }
    let east_sees_eu = peer(&mesh, "east", "eu");
    assert_eq!(east_sees_eu["endpoint"], advertise.peering.to_string());
    assert!(
        relay_accepted(&peering_relay.log()) >= 2,
        "both joiners dialed eu through the relay:\n{}",
        peering_relay.log()
    );

    // Export sync across the relay, then traffic across it.
    let _backend = mesh.serve_hello("eu");
    let vip = mesh.hello_vip("east", &["eu"]);
    let before = relay_accepted(&gateway_relay.log());
    let answers = mesh.ask("east", vip, 10);
    assert!(
        answers.iter().all(|a| a.as_deref() == Ok("eu")),
        "east's clients are served by eu across 300 ms round trips: {answers:?}"
    );
    // They rode the pooled connection through the relay (opened by the
    // first use or by the probes), not a connection each.
    let after = relay_accepted(&gateway_relay.log());
    assert!(
        after >= 1 && after <= before + 1,
        "the pool crossed the relay once, not per connection ({before} before, {after} after):\n{}",
        gateway_relay.log()
    );

    // Heartbeats arrive 150 ms late, well inside peerDeadAfter (3 s): the
    // peering stays up, the same session, for longer than that.
    let since = east_sees_eu["since"].clone();
    let watch_until = Instant::now() + Duration::from_secs(4);
    for _ in 0..40 {
        if Instant::now() >= watch_until {
            break;
        }
        let now = peer(&mesh, "east", "eu");
        assert_eq!(now["state"], "connected", "{now}");
        assert_eq!(now["since"], since, "the session was not replaced: {now}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// `fedctl peers` entry of `peer` on `cluster`.
fn peer(mesh: &Mesh, cluster: &str, peer: &str) -> serde_json::Value {
    mesh.fed
        .get(cluster)
        .peers()
        .into_iter()
        .find(|p| p["name"] == peer)
        .unwrap_or_else(|| panic!("{cluster} lists {peer}"))
}

#[test]
fn a_cluster_a_240ms_round_trip_away_passes_its_probes_and_serves_every_connection() {
    const TEST: &str =
        "a_cluster_a_240ms_round_trip_away_passes_its_probes_and_serves_every_connection";
    if !tool_available("iptables-legacy") {
        skip(
            TEST,
            "iptables-legacy (iptables) is not installed; .ci/run installs it",
        );
        return;
    }
    let Some(mut mesh) = Mesh::create(TEST) else {
        return;
    };
    let _delay = mesh.delay("eu", Duration::from_millis(120));
    mesh.start_joined();
    let _backend = mesh.serve_hello("eu");
    let vip = mesh.hello_vip("east", &["eu"]);
    // Ten connections take several seconds: many probe rounds.
    let answers = mesh.ask("east", vip, 10);
    assert!(
        answers.iter().all(|a| a.as_deref() == Ok("eu")),
        "eu is far, not down: {answers:?}"
    );
    let gateway = format!("gateway={}:15443", mesh.addr("eu"));
    let east_log = mesh.fed.get("east").log();
    assert!(
        !east_log
            .lines()
            .any(|l| l.contains("failed its probes") && l.contains(&gateway)),
        "east's probes must not mark a 240 ms away gateway down"
    );
}
