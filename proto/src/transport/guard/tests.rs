use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::*;

fn limits(max: usize) -> ListenerLimits {
    ListenerLimits {
        handshake_timeout: Duration::from_secs(1),
        idle_timeout: Duration::from_millis(200),
        unauthenticated_lifetime: Duration::from_millis(600),
        max_unauthenticated: max,
    }
}

fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

#[tokio::test]
async fn a_silent_unauthenticated_connection_times_out() {
    let guard = Unauthenticated::new(limits(4));
    let (server, _client) = tokio::io::duplex(64);
    let mut guarded = guard.admit(server, addr(1), false).unwrap();
    let mut buf = [0u8; 8];
    let error = tokio::time::timeout(Duration::from_secs(5), guarded.read(&mut buf))
        .await
        .expect("the idle deadline ends the read")
        .unwrap_err();
    assert_eq!(error.kind(), std::io::ErrorKind::TimedOut);
}

#[tokio::test]
async fn an_authenticated_connection_is_never_timed_out_or_counted() {
    let guard = Unauthenticated::new(limits(0));
    let (server, mut client) = tokio::io::duplex(64);
    let mut guarded = guard.admit(server, addr(1), true).unwrap();
    assert_eq!(guard.count(), 0);
    let mut buf = [0u8; 2];
    let read = tokio::time::timeout(Duration::from_millis(600), guarded.read(&mut buf)).await;
    assert!(read.is_err(), "still waiting past the idle deadline");
    client.write_all(b"hi").await.unwrap();
    guarded.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"hi");
}

#[tokio::test]
async fn the_cap_refuses_newcomers_and_a_closed_connection_frees_its_place() {
    let guard = Unauthenticated::new(limits(2));
    let (a, _a) = tokio::io::duplex(8);
    let (b, _b) = tokio::io::duplex(8);
    let (c, _c) = tokio::io::duplex(8);
    let first = guard.admit(a, addr(1), false).unwrap();
    let _second = guard.admit(b, addr(2), false).unwrap();
    assert_eq!(guard.count(), 2);
    assert!(guard.admit(c, addr(3), false).is_err());
    drop(first);
    assert_eq!(guard.count(), 1);
    let (d, _d) = tokio::io::duplex(8);
    assert!(guard.admit(d, addr(3), false).is_ok());
}

#[tokio::test]
async fn marking_a_connection_authenticated_frees_its_place_and_lifts_the_deadline() {
    let guard = Unauthenticated::new(limits(1));
    let (server, _client) = tokio::io::duplex(8);
    let mut guarded = guard.admit(server, addr(7), false).unwrap();
    guard.mark_authenticated(addr(7));
    assert_eq!(guard.count(), 0);
    let mut buf = [0u8; 1];
    let read = tokio::time::timeout(Duration::from_millis(600), guarded.read(&mut buf)).await;
    assert!(read.is_err(), "no idle deadline once authenticated");
}

#[tokio::test]
async fn a_busy_connection_that_never_authenticates_is_closed_at_its_lifetime() {
    let guard = Unauthenticated::new(limits(4));
    let (server, mut client) = tokio::io::duplex(64);
    let mut guarded = guard.admit(server, addr(1), false).unwrap();
    let reader = tokio::spawn(async move {
        let mut buf = [0u8; 8];
        // Bounded: the lifetime (600 ms) ends this long before 200 reads.
        for _ in 0..200 {
            if let Err(error) = guarded.read(&mut buf).await {
                return Some(error.kind());
            }
        }
        None
    });
    // Keep it busy: a byte every 50 ms, well within the idle deadline.
    for _ in 0..100 {
        if reader.is_finished() || client.write_all(b"p").await.is_err() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let kind = tokio::time::timeout(Duration::from_secs(5), reader)
        .await
        .expect("the lifetime ends the reads")
        .unwrap();
    assert_eq!(kind, Some(std::io::ErrorKind::TimedOut));
}

#[tokio::test]
async fn an_evicting_registry_closes_the_oldest_to_admit_a_newcomer() {
    let guard = Unauthenticated::evicting(limits(2));
    let (a, _ca) = tokio::io::duplex(64);
    let (b, _cb) = tokio::io::duplex(64);
    let (c, mut cc) = tokio::io::duplex(64);
    let mut oldest = guard.admit(a, addr(1), false).unwrap();
    let _second = guard.admit(b, addr(2), false).unwrap();
    let mut buf = [0u8; 2];
    // The oldest is blocked in a read when the newcomer arrives.
    let read = tokio::spawn(async move { oldest.read(&mut buf).await });
    tokio::task::yield_now().await;
    let mut newcomer = guard.admit(c, addr(3), false).expect("room is made");
    assert_eq!(guard.count(), 2);
    let error = tokio::time::timeout(Duration::from_secs(5), read)
        .await
        .expect("the evicted read ends at once")
        .unwrap()
        .unwrap_err();
    assert_eq!(error.kind(), std::io::ErrorKind::TimedOut);
    cc.write_all(b"ok").await.unwrap();
    let mut got = [0u8; 2];
    newcomer.read_exact(&mut got).await.unwrap();
    assert_eq!(&got, b"ok");
}

#[tokio::test]
async fn an_evicting_registry_never_evicts_an_authenticated_connection() {
    let guard = Unauthenticated::evicting(limits(1));
    let (a, _ca) = tokio::io::duplex(64);
    let (b, _cb) = tokio::io::duplex(64);
    let _first = guard.admit(a, addr(1), false).unwrap();
    guard.mark_authenticated(addr(1));
    let _second = guard
        .admit(b, addr(2), false)
        .expect("the place was given back");
    let (c, _cc) = tokio::io::duplex(64);
    // The only unauthenticated one is evicted; the authenticated one stays.
    let _third = guard.admit(c, addr(3), false).expect("room is made");
    assert_eq!(guard.count(), 1);
}
