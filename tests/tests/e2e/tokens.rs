//! Join tokens are single-use, expire, resist tampering, and pin the
//! issuer's CA: every refusal says why, and no side records a peer.

use std::time::Duration;

use fedmesh_tests::Federation;

fn assert_no_peers(fed: &Federation, names: &[&str]) {
    for n in names {
        assert!(
            fed.get(n).peers().is_empty(),
            "{n} recorded a peer after a refused join"
        );
    }
}

#[test]
fn a_used_token_is_refused() {
    let fed = Federation::standard(3, "");
    let token = fed.get("east").token(None);
    assert!(fed.get("west").fedctl(&["join", &token]).ok);
    let again = fed.get("eu").fedctl(&["join", &token]);
    assert!(!again.ok);
    assert!(again.stderr.contains("already used"), "{}", again.stderr);
    assert!(again.stderr.contains("by west"), "{}", again.stderr);
    assert_eq!(fed.get("east").peers().len(), 1, "east must only have west");
    assert_no_peers(&fed, &["eu"]);
}

#[test]
fn an_expired_token_is_refused() {
    let fed = Federation::standard(2, "");
    let token = fed.get("east").token(Some("1s"));
    // Let the one-second lifetime run out.
    std::thread::sleep(Duration::from_millis(1500));
    let out = fed.get("west").fedctl(&["join", &token]);
    assert!(!out.ok);
    assert!(out.stderr.contains("expired"), "{}", out.stderr);
    assert_no_peers(&fed, &["east", "west"]);
}

#[test]
fn a_token_with_a_flipped_character_is_refused() {
    let fed = Federation::standard(2, "");
    let token = fed.get("east").token(None);
    let mut chars: Vec<char> = token.chars().collect();
    let i = chars.len() / 2;
    chars[i] = if chars[i] == 'A' { 'B' } else { 'A' };
    let altered: String = chars.into_iter().collect();
    let out = fed.get("west").fedctl(&["join", &altered]);
    assert!(!out.ok);
    assert!(out.stderr.contains("damaged"), "{}", out.stderr);
    assert_no_peers(&fed, &["east", "west"]);
    // The genuine token still works afterwards.
    assert!(fed.get("west").fedctl(&["join", &token]).ok);
}

#[test]
fn a_token_whose_pinned_ca_is_not_the_endpoints_is_refused_before_the_secret_is_sent() {
    let mut fed = Federation::standard(2, "");
    let token = fed.get("east").token(None);
    assert!(
        fed.get_mut("east").terminate(),
        "east should stop cleanly on SIGTERM"
    );
    // An impostor with its own CA takes over east's address.
    let east_ip = fed.get("east").ip;
    let i = fed.add("impostor", "us-east", "us-east-1a", "");
    let imp = &mut fed.clusters[i];
    imp.ip = east_ip;
    imp.write_config(&fedmesh_tests::default_config(
        "impostor",
        "us-east",
        "us-east-1a",
        east_ip,
        "",
    ));
    imp.start();
    let out = fed.get("west").fedctl(&["join", &token]);
    assert!(!out.ok);
    assert!(out.stderr.to_lowercase().contains("pin"), "{}", out.stderr);
    assert_no_peers(&fed, &["impostor", "west"]);
    assert!(
        !fed.get("impostor").log().contains("join refused"),
        "the secret must never reach the impostor"
    );
}

#[test]
fn a_malformed_token_names_the_problem() {
    let fed = Federation::standard(1, "");
    let out = fed.get("east").fedctl(&["join", "hello"]);
    assert!(!out.ok);
    assert!(out.stderr.contains("fedmesh-join-v1."), "{}", out.stderr);
}
