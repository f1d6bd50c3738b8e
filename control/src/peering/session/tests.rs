//! The session state machine, driven over in-memory channels: the test
//! plays the peer.

use std::time::Duration;

use fedmesh_proto::v1::{self, sync_message::Msg};

use super::SessionEnd;
use crate::model::LinkState;
use crate::peering::testkit::{DEADLINE, eventually, hello, next_non_heartbeat, open, side};
use crate::store::{Role, SyncPos};

const SLOW: Duration = Duration::from_secs(30);

fn ack(epoch: u64, version: u64) -> v1::SyncMessage {
    v1::SyncMessage {
        msg: Some(Msg::Ack(v1::Ack { epoch, version })),
    }
}

fn exports_of(msg: Msg) -> v1::ExportUpdate {
    match msg {
        Msg::Exports(update) => update,
        other => panic!("expected exports, got {other:?}"),
    }
}

async fn end_of(task: tokio::task::JoinHandle<SessionEnd>) -> SessionEnd {
    tokio::time::timeout(DEADLINE, task)
        .await
        .expect("the session ends before the deadline")
        .expect("the session task does not panic")
}

#[tokio::test]
async fn a_session_opens_with_a_hello_carrying_the_stored_position() {
    let (east, west) = (side("east", SLOW), side("west", SLOW));
    east.add_peer(&west, Role::Acceptor);
    east.h
        .store
        .apply_imports(
            "west",
            SyncPos {
                epoch: 7,
                version: 3,
            },
            true,
            &[],
            &[],
        )
        .unwrap();
    let mut remote = open(&east, "west");
    match next_non_heartbeat(&mut remote.from_us).await {
        Msg::Hello(h) => {
            assert_eq!(h.info.unwrap().name, "east");
            assert_eq!((h.epoch, h.acked_version), (7, 3));
        }
        other => panic!("expected hello, got {other:?}"),
    }
    remote.to_us.send(Ok(hello(&west, 0, 0))).await.unwrap();
    eventually("west connected", || {
        east.state("west") == Some(LinkState::Connected)
    })
    .await;
}

#[tokio::test]
async fn a_peer_that_acked_our_version_resumes_with_only_the_changes() {
    let (east, west) = (side("east", SLOW), side("west", SLOW));
    east.add_peer(&west, Role::Acceptor);
    east.export(5, 2, &["a"]);
    let mut first = open(&east, "west");
    let _hello = next_non_heartbeat(&mut first.from_us).await;
    first.to_us.send(Ok(hello(&west, 0, 0))).await.unwrap();
    let full = exports_of(next_non_heartbeat(&mut first.from_us).await);
    assert!(full.full && full.version == 2 && full.upserts.len() == 1);
    first.to_us.send(Ok(ack(5, 2))).await.unwrap();

    // The stream breaks; the peer comes back holding version 2.
    drop(first.to_us);
    assert!(matches!(end_of(first.task).await, SessionEnd::Failed(_)));
    let mut second = open(&east, "west");
    let _hello = next_non_heartbeat(&mut second.from_us).await;
    second.to_us.send(Ok(hello(&west, 5, 2))).await.unwrap();
    east.export(5, 3, &["a", "b"]);
    let update = exports_of(next_non_heartbeat(&mut second.from_us).await);
    assert!(!update.full, "a resumed peer gets no full resync");
    assert_eq!((update.base_version, update.version), (2, 3));
    let names: Vec<_> = update.upserts.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(names, ["b"], "only what changed since the acked version");
}

#[tokio::test]
async fn a_peer_holding_another_epoch_gets_a_full_resync() {
    let (east, west) = (side("east", SLOW), side("west", SLOW));
    east.add_peer(&west, Role::Acceptor);
    east.export(5, 2, &["a", "b"]);
    let mut remote = open(&east, "west");
    let _hello = next_non_heartbeat(&mut remote.from_us).await;
    // It says it holds version 9 of an epoch this process never had.
    remote.to_us.send(Ok(hello(&west, 99, 9))).await.unwrap();
    let update = exports_of(next_non_heartbeat(&mut remote.from_us).await);
    assert!(update.full);
    assert_eq!(
        (update.epoch, update.version, update.upserts.len()),
        (5, 2, 2)
    );
}

#[tokio::test]
async fn a_peer_silent_past_peer_dead_after_turns_stale() {
    let (east, west) = (side("east", Duration::from_millis(300)), side("west", SLOW));
    east.add_peer(&west, Role::Acceptor);
    let mut remote = open(&east, "west");
    let _hello = next_non_heartbeat(&mut remote.from_us).await;
    remote.to_us.send(Ok(hello(&west, 0, 0))).await.unwrap();
    eventually("west connected", || {
        east.state("west") == Some(LinkState::Connected)
    })
    .await;
    // The peer says nothing more, but keeps its stream open.
    let end = end_of(remote.task).await;
    match end {
        SessionEnd::Failed(reason) => assert!(reason.contains("peerDeadAfter"), "{reason}"),
        other => panic!("expected a failure, got {other:?}"),
    }
    assert_eq!(east.state("west"), Some(LinkState::Stale));
    let error = east.h.peers.view("west").unwrap().last_error.unwrap();
    assert!(error.contains("silent"), "{error}");
}

#[tokio::test]
async fn a_new_stream_from_the_same_peer_replaces_the_old_one() {
    let (east, west) = (side("east", SLOW), side("west", SLOW));
    east.add_peer(&west, Role::Acceptor);
    let mut old = open(&east, "west");
    let _hello = next_non_heartbeat(&mut old.from_us).await;
    old.to_us.send(Ok(hello(&west, 0, 0))).await.unwrap();
    eventually("west connected", || {
        east.state("west") == Some(LinkState::Connected)
    })
    .await;

    let mut new = open(&east, "west");
    assert_eq!(end_of(old.task).await, SessionEnd::Replaced);
    let _hello = next_non_heartbeat(&mut new.from_us).await;
    new.to_us.send(Ok(hello(&west, 0, 0))).await.unwrap();
    // The old session's end does not mark the peer stale: the new one holds it.
    assert_eq!(east.state("west"), Some(LinkState::Connected));
    assert!(east.h.peers.outbound("west").is_some());
}

#[tokio::test]
async fn a_hello_under_another_name_ends_the_session() {
    let (east, west, eu) = (side("east", SLOW), side("west", SLOW), side("eu", SLOW));
    east.add_peer(&west, Role::Acceptor);
    let mut remote = open(&east, "west");
    let _hello = next_non_heartbeat(&mut remote.from_us).await;
    remote.to_us.send(Ok(hello(&eu, 0, 0))).await.unwrap();
    match end_of(remote.task).await {
        SessionEnd::Failed(reason) => assert!(reason.contains("\"eu\""), "{reason}"),
        other => panic!("expected a failure, got {other:?}"),
    }
}

#[tokio::test]
async fn exports_from_the_peer_are_stored_then_handed_to_the_table_then_acked() {
    let (mut east, west) = (side("east", SLOW), side("west", SLOW));
    east.add_peer(&west, Role::Acceptor);
    west.export(4, 1, &["hello"]);
    let update = {
        let state = west.h.exports.borrow().clone();
        let mut sender = crate::peering::sync::ExportSender::new("east");
        sender.hello(SyncPos::default());
        sender.next_update(&state, &west.h.acked).unwrap()
    };
    let mut remote = open(&east, "west");
    let _hello = next_non_heartbeat(&mut remote.from_us).await;
    remote.to_us.send(Ok(hello(&west, 0, 0))).await.unwrap();
    let msg = v1::SyncMessage {
        msg: Some(Msg::Exports(update)),
    };
    remote.to_us.send(Ok(msg)).await.unwrap();
    match next_non_heartbeat(&mut remote.from_us).await {
        Msg::Ack(a) => assert_eq!((a.epoch, a.version), (4, 1)),
        other => panic!("expected an ack, got {other:?}"),
    }
    assert_eq!(
        east.h.store.sync_pos("west").unwrap(),
        SyncPos {
            epoch: 4,
            version: 1
        }
    );
    let event = east
        .table
        .try_recv()
        .expect("the table heard of it before the ack");
    assert!(matches!(
        event,
        crate::table::TableEvent::Imports { full: true, .. }
    ));
}
