//! Pool tests over real TLS on loopback: connection sharing and growth,
//! PING without handshakes, GOAWAY drains, dial backoff, close, ALPN.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use http::{HeaderMap, StatusCode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::task::JoinSet;

use super::test_pki::server_name;
use super::tests::{Peer, STEP, deadline, tunnel};
use super::{PeerPool, PoolConfig, ServerConfig, TlsSource, TransportError, Tunnel};

/// Polls `done` every 10 ms until it holds or [`STEP`] passes.
async fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    let end = tokio::time::Instant::now() + STEP;
    while !done() {
        assert!(
            tokio::time::Instant::now() < end,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// One echo round trip on `t`.
async fn round_trip(t: &mut Tunnel) {
    t.write_all(b"ping").await.expect("write");
    let mut back = [0u8; 4];
    tokio::time::timeout(STEP, t.read_exact(&mut back))
        .await
        .expect("echo in time")
        .expect("echo");
    assert_eq!(&back, b"ping");
}

/// Opens `n` echo tunnels concurrently.
async fn open_concurrently(pool: &Arc<PeerPool>, n: usize) -> Vec<Tunnel> {
    let mut tasks = JoinSet::new();
    for i in 0..n {
        let pool = Arc::clone(pool);
        tasks.spawn(async move {
            let mut t = tunnel(&pool, &format!("echo.s{i}.demo.fedmesh")).await;
            round_trip(&mut t).await;
            t
        });
    }
    let mut tunnels = Vec::new();
    while let Some(t) = tasks.join_next().await {
        tunnels.push(t.expect("stream task"));
    }
    tunnels
}

#[tokio::test]
async fn sixty_streams_share_one_connection_and_one_handshake() {
    let peer = Peer::start().await;
    let pool = peer.pool(PoolConfig::default());
    let tunnels = open_concurrently(&pool, 60).await;
    assert_eq!(peer.accepts(), 1);
    let stats = pool.stats();
    assert_eq!((stats.tcp_connects, stats.tls_full), (1, 1));
    assert_eq!((stats.live_connections, stats.open_streams), (1, 60));
    drop(tunnels);
    assert_eq!(pool.stats().open_streams, 0);
}

#[tokio::test]
async fn streams_past_the_per_connection_limit_open_more_connections() {
    let peer = Peer::start().await;
    let config = PoolConfig {
        max_streams_per_connection: 10,
        ..PoolConfig::default()
    };
    let pool = peer.pool(config);
    let tunnels = open_concurrently(&pool, 25).await;
    assert_eq!(peer.accepts(), 3);
    let stats = pool.stats();
    assert_eq!((stats.tcp_connects, stats.live_connections), (3, 3));
    assert_eq!(stats.tls_full + stats.tls_resumed, 3);
    assert_eq!(stats.open_streams, 25);
    drop(tunnels);
}

#[tokio::test]
async fn each_new_connection_asks_the_tls_source_again() {
    let peer = Peer::start().await;
    let calls = Arc::new(AtomicUsize::new(0));
    let tls: TlsSource = {
        let (pki, calls) = (Arc::clone(&peer.pki), Arc::clone(&calls));
        Arc::new(move || {
            calls.fetch_add(1, Ordering::SeqCst);
            Ok(pki.client_config(&[super::ALPN_H2]))
        })
    };
    let config = PoolConfig {
        max_streams_per_connection: 1,
        ..PoolConfig::default()
    };
    let pool = PeerPool::new(peer.addr.clone(), server_name(), tls, config);
    let tunnels = open_concurrently(&pool, 2).await;
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    drop(tunnels);
}

#[tokio::test]
async fn ping_rides_a_live_connection() {
    let peer = Peer::start().await;
    let pool = peer.pool(PoolConfig::default());
    let mut t = tunnel(&pool, "echo.hello.demo.fedmesh").await;
    for _ in 0..3 {
        let rtt = pool.ping(STEP).await.expect("ping");
        assert!(rtt < STEP);
    }
    round_trip(&mut t).await;
    assert_eq!(peer.accepts(), 1);
    assert_eq!(pool.stats().tcp_connects, 1);
}

#[tokio::test]
async fn ping_without_a_connection_opens_exactly_one() {
    let peer = Peer::start().await;
    let pool = peer.pool(PoolConfig::default());
    pool.ping(STEP).await.expect("first ping dials");
    pool.ping(STEP).await.expect("second ping reuses");
    assert_eq!(peer.accepts(), 1);
    // The probe's connection then carries traffic without a handshake.
    let mut t = tunnel(&pool, "echo.hello.demo.fedmesh").await;
    round_trip(&mut t).await;
    assert_eq!(peer.accepts(), 1);
}

#[tokio::test]
async fn goaway_lets_open_stream_finish_and_next_open_uses_a_new_connection() {
    let peer = Peer::start().await;
    let pool = peer.pool(PoolConfig::default());
    let mut old = tunnel(&pool, "echo.old.demo.fedmesh").await;
    round_trip(&mut old).await;
    peer.goaway();
    // Until the client has read the GOAWAY a new stream may still land on
    // the draining connection, which serves it; every open must succeed,
    // and soon one goes over a second connection.
    let end = tokio::time::Instant::now() + STEP;
    let mut fresh = loop {
        let mut t = tunnel(&pool, "echo.new.demo.fedmesh").await;
        round_trip(&mut t).await;
        if pool.stats().tcp_connects == 2 {
            break t;
        }
        assert!(
            tokio::time::Instant::now() < end,
            "no new connection after GOAWAY"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    assert_eq!(peer.accepts(), 2);
    // The stream on the draining connection still works, then ends cleanly.
    round_trip(&mut old).await;
    old.shutdown().await.expect("half-close");
    let mut rest = Vec::new();
    old.read_to_end(&mut rest).await.expect("clean end");
    drop(old);
    // With its last stream gone the draining connection closes.
    eventually("old connection closed", || {
        peer.closed.load(Ordering::SeqCst) == 1
    })
    .await;
    round_trip(&mut fresh).await;
    eventually("pool forgets it", || pool.stats().live_connections == 1).await;
}

#[tokio::test]
async fn refused_dial_may_retry_and_backoff_fails_at_once() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    drop(listener);
    let peer = Peer::start().await;
    let pki = Arc::clone(&peer.pki);
    let tls: TlsSource = Arc::new(move || Ok(pki.client_config(&[super::ALPN_H2])));
    let config = PoolConfig {
        backoff_min: Duration::from_secs(30),
        backoff_max: Duration::from_secs(60),
        ..PoolConfig::default()
    };
    let pool = PeerPool::new(addr, server_name(), tls, config);
    let first = pool
        .open("echo.hello.demo.fedmesh", HeaderMap::new(), deadline())
        .await
        .expect_err("closed port");
    assert!(matches!(first, TransportError::Dial { .. }), "{first}");
    assert!(first.is_before_request());
    let second = pool
        .open("echo.hello.demo.fedmesh", HeaderMap::new(), deadline())
        .await
        .expect_err("in backoff");
    assert!(matches!(second, TransportError::Backoff { .. }), "{second}");
    assert!(second.is_before_request());
    let probe = pool.ping(STEP).await.expect_err("probe in backoff");
    assert!(matches!(probe, TransportError::Backoff { .. }), "{probe}");
    assert_eq!(pool.stats().tcp_connects, 0);
}

#[tokio::test]
async fn close_sends_goaway_and_refuses_new_streams() {
    let peer = Peer::start().await;
    let pool = peer.pool(PoolConfig::default());
    let mut t = tunnel(&pool, "echo.hello.demo.fedmesh").await;
    round_trip(&mut t).await;
    pool.close();
    let error = pool
        .open("echo.hello.demo.fedmesh", HeaderMap::new(), deadline())
        .await
        .expect_err("closed pool");
    assert!(matches!(error, TransportError::Closed { .. }), "{error}");
    // The open stream keeps working until it ends; then the connection goes.
    round_trip(&mut t).await;
    drop(t);
    eventually("server saw the connection end", || {
        peer.closed.load(Ordering::SeqCst) == 1
    })
    .await;
}

#[tokio::test]
async fn a_peer_without_h2_alpn_is_an_error() {
    let peer = Peer::start().await;
    let pki = Arc::clone(&peer.pki);
    // The client offers no ALPN, so the server negotiates none.
    let tls: TlsSource = Arc::new(move || Ok(pki.client_config(&[])));
    let pool = PeerPool::new(peer.addr.clone(), server_name(), tls, PoolConfig::default());
    let error = pool
        .open("echo.hello.demo.fedmesh", HeaderMap::new(), deadline())
        .await
        .expect_err("no h2");
    assert!(
        matches!(error, TransportError::Alpn { got: None, .. }),
        "{error}"
    );
    assert!(error.is_before_request());
}

#[tokio::test]
async fn refused_stream_status_comes_back_on_a_shared_connection() {
    let peer = Peer::start().await;
    let pool = peer.pool(PoolConfig::default());
    for _ in 0..5 {
        let mut opening = pool
            .open("refuse.hello.demo.fedmesh", HeaderMap::new(), deadline())
            .await
            .expect("open");
        let response = opening.response().await.expect("response");
        assert_eq!(response.status, StatusCode::SERVICE_UNAVAILABLE);
    }
    assert_eq!(peer.accepts(), 1);
    eventually("refused streams freed", || pool.stats().open_streams == 0).await;
}

/// A peer that completes TLS but never speaks HTTP/2 (hung process); sends
/// one event per connection when the client closes it.
async fn silent_peer(
    pki: Arc<super::test_pki::Pki>,
) -> (String, tokio::sync::mpsc::UnboundedReceiver<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let acceptor = tokio_rustls::TlsAcceptor::from(pki.server_config());
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let (acceptor, tx) = (acceptor.clone(), tx.clone());
            tokio::spawn(async move {
                if let Ok(mut tls) = acceptor.accept(tcp).await {
                    let _ = tokio::io::copy(&mut tls, &mut tokio::io::sink()).await;
                    let _ = tx.send(());
                }
            });
        }
    });
    (addr, rx)
}

#[tokio::test]
async fn keepalive_drops_a_connection_whose_peer_stopped_answering() {
    let pki = Arc::new(super::test_pki::Pki::new());
    let (addr, mut closed) = silent_peer(Arc::clone(&pki)).await;
    let tls: TlsSource = Arc::new(move || Ok(pki.client_config(&[super::ALPN_H2])));
    let config = PoolConfig {
        keepalive_interval: Duration::from_millis(50),
        keepalive_timeout: Duration::from_millis(100),
        ..PoolConfig::default()
    };
    let pool = PeerPool::new(addr, server_name(), tls, config);
    let opening = pool
        .open("echo.hello.demo.fedmesh", HeaderMap::new(), deadline())
        .await
        .expect("HEADERS queued on the new connection");
    drop(opening);
    tokio::time::timeout(STEP, closed.recv())
        .await
        .expect("keepalive gave up on the silent peer in time")
        .expect("peer task alive");
    eventually("pool forgets it", || pool.stats().live_connections == 0).await;
}

#[tokio::test]
async fn ping_to_a_silent_peer_times_out_and_the_next_probe_redials() {
    let pki = Arc::new(super::test_pki::Pki::new());
    let (addr, mut closed) = silent_peer(Arc::clone(&pki)).await;
    let tls: TlsSource = Arc::new(move || Ok(pki.client_config(&[super::ALPN_H2])));
    let pool = PeerPool::new(addr, server_name(), tls, PoolConfig::default());
    let error = pool
        .ping(Duration::from_millis(200))
        .await
        .expect_err("no PONG");
    assert!(
        matches!(error, TransportError::PingTimeout { .. }),
        "{error}"
    );
    let again = pool.ping(Duration::from_millis(200)).await;
    assert!(again.is_err());
    assert_eq!(pool.stats().tcp_connects, 2);
    // The first connection, drained and idle, was closed.
    tokio::time::timeout(STEP, closed.recv())
        .await
        .expect("first connection closed in time")
        .expect("peer task alive");
}

#[tokio::test]
async fn drain_timeout_ends_streams_that_outlive_it_with_an_error() {
    let peer = Peer::start_with(ServerConfig {
        drain_timeout: Duration::from_millis(100),
        ..ServerConfig::default()
    })
    .await;
    let pool = peer.pool(PoolConfig::default());
    let mut long = tunnel(&pool, "echo.long.demo.fedmesh").await;
    round_trip(&mut long).await;
    peer.goaway();
    eventually("server gave up draining", || {
        peer.closed.load(Ordering::SeqCst) == 1
    })
    .await;
    // The cut stream reads as an error, not as a clean end.
    let mut rest = Vec::new();
    let result = tokio::time::timeout(STEP, long.read_to_end(&mut rest))
        .await
        .expect("read in time");
    assert!(
        result.is_err(),
        "a stream cut by the drain timeout read as EOF"
    );
}

#[tokio::test]
async fn keepalive_pings_leave_a_healthy_connection_and_its_streams_alone() {
    let peer = Peer::start().await;
    let config = PoolConfig {
        keepalive_interval: Duration::from_millis(10),
        ..PoolConfig::default()
    };
    let pool = peer.pool(config);
    let mut t = tunnel(&pool, "echo.hello.demo.fedmesh").await;
    // Twenty round trips spread over many keepalive intervals.
    for _ in 0..20 {
        round_trip(&mut t).await;
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(peer.accepts(), 1);
    assert_eq!(pool.stats().live_connections, 1);
}
