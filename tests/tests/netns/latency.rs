//! Latency the kernel here cannot add (no `tc netem`): eu's peering and
//! gateway are advertised behind 150 ms delaying relays
//! (`fedmesh_tests::relay`, run inside eu's namespace), so every byte any
//! peer sends eu, or eu answers, takes 150 ms each way. Joining, export
//! sync, heartbeats and the remote hop's TCP + TLS + status handshake must
//! all fit their deadlines across that round trip, and the traffic must
//! really take the advertised path.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use fedmesh_tests::netns::helper::relay_accepted;
use fedmesh_tests::netns::mesh::{Advertise, Mesh, SYNC, Settings};

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
    fedmesh_tests::wait_until(
        "the gateway relay counts the ten connections",
        Duration::from_secs(5),
        || relay_accepted(&gateway_relay.log()) >= before + 10,
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
