//! A join is all-or-nothing and safe to retry: kill -9 of either side at a
//! random moment during a join, restart it, and the state is consistent (the
//! joiner never has a peering its issuer lacks) and the same `fedctl join`
//! with the same token completes the peering on both sides.

use std::process::{Child, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use fedmesh_tests::{Federation, bin, wait_until};

/// Joins tried; each is killed at a random point.
const TRIALS: u32 = 20;

/// A small xorshift generator: the moments to kill at need no quality, only
/// spread, and the seed is printed so a failing run can be replayed.
struct Moments(u64);

impl Moments {
    fn next_below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// Waits (bounded) for a `fedctl join` child; kills it when it hangs.
fn finish(mut child: Child) -> bool {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return status.success();
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn has_peer(fed: &Federation, on: &str, peer: &str) -> bool {
    fed.get(on).peers().iter().any(|p| p["name"] == peer)
}

#[test]
fn a_join_killed_on_either_side_is_all_or_nothing_and_a_retry_completes_it() {
    let seed = std::env::var("FEDMESH_JOIN_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64 | 1)
                .unwrap_or(0x9e37_79b9)
        });
    eprintln!("join torture seed {seed} (set FEDMESH_JOIN_SEED to replay)");
    let mut moments = Moments(seed);
    let mut fed = Federation::standard(2, "");
    let mut half_joins = 0;
    for trial in 0..TRIALS {
        let token = fed.get("east").token(None);
        let victim = if trial % 2 == 0 { "west" } else { "east" };
        let child = fed
            .get("west")
            .command(&bin("fedctl"))
            .args(["join", &token, "--admin", &fed.get("west").admin()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn fedctl join");
        // The moment to kill at, not a wait for a result.
        std::thread::sleep(Duration::from_millis(moments.next_below(40)));
        fed.get_mut(victim).kill9();
        finish(child);
        fed.get_mut(victim).start();

        let west_has = has_peer(&fed, "west", "east");
        let east_has = has_peer(&fed, "east", "west");
        assert!(
            !west_has || east_has,
            "trial {trial} (seed {seed}, killed {victim}): the joiner has a peering the issuer lacks"
        );
        if west_has != east_has {
            half_joins += 1;
        }
        let retry = fed.get("west").fedctl(&["join", &token]);
        assert!(
            retry.ok,
            "trial {trial} (seed {seed}, killed {victim}): the same join again failed: {}",
            retry.stderr
        );
        fed.wait_connected("east", "west", Duration::from_secs(20));

        // Back to no peering for the next trial.
        let out = fed.get("west").fedctl(&["leave", "east"]);
        assert!(out.ok, "leave failed: {}", out.stderr);
        if has_peer(&fed, "east", "west") {
            let _ = fed.get("east").fedctl(&["leave", "west"]);
        }
        wait_until(
            "neither side has the peering",
            Duration::from_secs(10),
            || !has_peer(&fed, "west", "east") && !has_peer(&fed, "east", "west"),
        );
    }
    eprintln!(
        "{TRIALS} killed joins, {half_joins} left only the issuer's commit, all completed by a retry"
    );
}

#[test]
fn a_join_refused_for_a_clash_leaves_both_sides_and_the_token_as_they_were() {
    let mut fed = Federation::new();
    fed.add("east", "us-east", "us-east-1a", "");
    fed.add("west", "us-west", "us-west-2a", "");
    // A new cluster configured with east's trust domain.
    fed.add("eu", "eu-central", "eu-central-1a", "");
    fed.add("twin", "eu-central", "eu-central-1b", "");
    let twin = fed.get("twin");
    let config = std::fs::read_to_string(&twin.config).expect("read twin's config");
    twin.write_config(&format!("trustDomain: east.fedmesh\n{config}"));
    for name in ["east", "west", "eu", "twin"] {
        fed.get_mut(name).start();
    }
    fed.join("west", "east");
    fed.wait_connected("east", "west", Duration::from_secs(15));

    let token = fed.get("twin").token(None);
    let refused = fed.get("west").fedctl(&["join", &token]);
    assert!(!refused.ok, "a trust-domain clash must fail the join");
    assert!(
        refused
            .stderr
            .contains("trust domain east.fedmesh already belongs to peer east"),
        "{}",
        refused.stderr
    );
    assert!(fed.get("twin").peers().is_empty(), "no ghost on the issuer");
    let west_peers = fed.get("west").peers();
    assert_eq!(west_peers.len(), 1);
    assert_eq!(west_peers[0]["name"], "east");
    assert_eq!(west_peers[0]["state"], "connected", "the live peer stays");
    // The token was never presented: a cluster without the clash uses it.
    let joined = fed.get("eu").fedctl(&["join", &token]);
    assert!(joined.ok, "the token is still unused: {}", joined.stderr);
    fed.wait_connected("eu", "twin", Duration::from_secs(15));
}
