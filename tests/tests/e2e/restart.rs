//! kill -9 either control plane and restart it: the peering comes back
//! without a new join.

use std::time::Duration;

use fedmesh_tests::{Federation, wait_until};

#[test]
fn killed_acceptor_and_dialer_come_back_connected_without_a_new_join() {
    let mut fed = Federation::standard(2, "");
    fed.join("west", "east");
    fed.wait_connected("east", "west", Duration::from_secs(15));

    // The acceptor dies hard; the dialer sees it go, then redials.
    fed.get_mut("east").kill9();
    wait_until("west marks east stale", Duration::from_secs(10), || {
        fed.get("west").peer_state("east").as_deref() == Some("stale")
    });
    fed.get_mut("east").start();
    fed.wait_connected("east", "west", Duration::from_secs(20));

    // The dialer dies hard and comes back with its peering intact.
    fed.get_mut("west").kill9();
    fed.get_mut("west").start();
    fed.wait_connected("east", "west", Duration::from_secs(20));
    assert_eq!(fed.get("west").peers()[0]["role"], "dialer");
}

#[test]
fn sigterm_stops_the_control_plane_cleanly() {
    let mut fed = Federation::standard(1, "");
    assert!(fed.get_mut("east").terminate());
    assert!(fed.get("east").log().contains("stopped"));
}
