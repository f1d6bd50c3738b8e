//! `fedctl leave`, both sides connected over in-memory channels, and one
//! side alone.

use std::time::Duration;

use super::{LeaveError, leave};
use crate::model::LinkState;
use crate::peering::session::SessionEnd;
use crate::peering::testkit::{DEADLINE, eventually, side, wire};
use crate::store::Role;

const SLOW: Duration = Duration::from_secs(30);

#[tokio::test]
async fn leaving_a_connected_peer_removes_the_peering_on_both_sides() {
    let (east, west) = (side("east", SLOW), side("west", SLOW));
    east.add_peer(&west, Role::Dialer);
    west.add_peer(&east, Role::Acceptor);
    let (east_session, west_session) = wire(&east, &west);
    eventually("both connected", || {
        east.state("west") == Some(LinkState::Connected)
            && west.state("east") == Some(LinkState::Connected)
    })
    .await;

    let outcome = leave(&east.h, "west").await.unwrap();
    assert!(outcome.remote_notified, "{}", outcome.detail);
    assert_eq!(outcome.detail, "left west; west removed the peering too");
    for (name, s) in [("east", &east), ("west", &west)] {
        assert!(
            s.h.store.peers().unwrap().is_empty(),
            "{name} still stores a peer"
        );
    }
    assert_eq!(east.state("west"), None);
    eventually("west forgot east", || west.state("east").is_none()).await;
    for task in [east_session, west_session] {
        let end = tokio::time::timeout(DEADLINE, task).await.unwrap().unwrap();
        assert!(
            matches!(end, SessionEnd::Left | SessionEnd::Replaced),
            "{end:?}"
        );
    }
    assert!(west.h.peers.trust().snapshot().get("east").is_none());
}

#[tokio::test]
async fn leaving_an_unreachable_peer_removes_it_here_only_and_says_so() {
    let (east, west) = (side("east", SLOW), side("west", SLOW));
    east.add_peer(&west, Role::Dialer);
    let outcome = leave(&east.h, "west").await.unwrap();
    assert!(!outcome.remote_notified);
    assert!(
        outcome.detail.contains("on this side only"),
        "{}",
        outcome.detail
    );
    assert!(
        outcome.detail.contains("`fedctl leave east` on west"),
        "{}",
        outcome.detail
    );
    assert!(east.h.store.peers().unwrap().is_empty());
    assert_eq!(east.state("west"), None);
}

#[tokio::test]
async fn leaving_an_unknown_peer_is_refused_and_names_the_list() {
    let east = side("east", SLOW);
    let err = leave(&east.h, "nowhere").await.unwrap_err();
    assert!(matches!(err, LeaveError::UnknownPeer { .. }));
    assert_eq!(
        err.to_string(),
        "nowhere is not a peer of east; `fedctl peers` lists the peers"
    );
}
