//! `fedctl leave` ends a peering on both sides, or on one side when the
//! other is gone.

use std::time::Duration;

use fedmesh_tests::{Federation, wait_until};

#[test]
fn leave_removes_the_peering_on_both_sides_and_nothing_else() {
    let fed = Federation::standard(3, "");
    fed.join("west", "east");
    fed.join("eu", "east");
    fed.wait_connected("east", "west", Duration::from_secs(15));
    fed.wait_connected("east", "eu", Duration::from_secs(15));

    // The acceptor leaves: the dialer must learn it over the stream.
    let out = fed.get("east").fedctl(&["leave", "west"]);
    assert!(out.ok, "{}", out.stderr);
    assert!(
        out.stdout.contains("removed the peering too"),
        "{}",
        out.stdout
    );
    assert!(fed.get("east").peer_state("west").is_none());
    wait_until("west drops east", Duration::from_secs(5), || {
        fed.get("west").peers().is_empty()
    });
    assert_eq!(
        fed.get("east").peer_state("eu").as_deref(),
        Some("connected")
    );

    // The dialer leaves.
    let out = fed.get("eu").fedctl(&["leave", "east"]);
    assert!(out.ok, "{}", out.stderr);
    wait_until("east drops eu", Duration::from_secs(5), || {
        fed.get("east").peers().is_empty()
    });
    assert!(fed.get("eu").peers().is_empty());
}

#[test]
fn leave_with_the_peer_down_removes_this_side_and_says_so() {
    let mut fed = Federation::standard(2, "");
    fed.join("west", "east");
    fed.wait_connected("east", "west", Duration::from_secs(15));
    fed.get_mut("east").kill9();
    let out = fed.get("west").fedctl(&["leave", "east"]);
    assert!(out.ok, "{}", out.stderr);
    assert!(out.stdout.contains("this side only"), "{}", out.stdout);
    assert!(fed.get("west").peers().is_empty());
}

#[test]
fn leaving_an_unknown_peer_is_an_error() {
    let fed = Federation::standard(1, "");
    let out = fed.get("east").fedctl(&["leave", "nobody"]);
    assert!(!out.ok);
    assert!(
        out.stderr.contains("nobody") && out.stderr.contains("fedctl peers"),
        "{}",
        out.stderr
    );
}
