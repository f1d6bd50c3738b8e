//! Tunnel tests over real TLS 1.3 on loopback TCP: bytes both ways,
//! half-close, early data, refusals, flow control, resets. The harness
//! ([`Peer`]) is a listener that accepts TLS and runs [`serve_connection`]
//! with a handler keyed by authority; the pool tests use it too.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, StatusCode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::test_pki::{Pki, server_name};
use super::{
    ALPN_H2, Incoming, PeerPool, PoolConfig, ServerConfig, TlsSource, TransportError, Tunnel,
    serve_connection,
};

/// How long any single step of a test may take.
pub(super) const STEP: Duration = Duration::from_secs(10);

/// A peer gateway's ingress on 127.0.0.1: TLS accept, then the transport
/// server with [`handle`].
pub(super) struct Peer {
    pub(super) addr: String,
    pub(super) pki: Arc<Pki>,
    /// TCP connections accepted.
    pub(super) accepts: Arc<AtomicUsize>,
    /// `serve_connection` calls that returned.
    pub(super) closed: Arc<AtomicUsize>,
    /// Bumping it shuts down (GOAWAY) every connection accepted before.
    epoch: watch::Sender<u64>,
    /// What handlers report (resets seen, bytes read).
    pub(super) events: tokio::sync::Mutex<mpsc::UnboundedReceiver<String>>,
    task: JoinHandle<()>,
}

impl Drop for Peer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Peer {
    pub(super) async fn start() -> Peer {
        Peer::start_with(ServerConfig::default()).await
    }

    /// A peer whose connections use `config`.
    pub(super) async fn start_with(config: ServerConfig) -> Peer {
        let pki = Arc::new(Pki::new());
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("local addr").to_string();
        let accepts = Arc::new(AtomicUsize::new(0));
        let closed = Arc::new(AtomicUsize::new(0));
        let (epoch, _) = watch::channel(0u64);
        let (events_tx, events_rx) = mpsc::unbounded_channel();
        let acceptor = tokio_rustls::TlsAcceptor::from(pki.server_config());
        let task = tokio::spawn(accept_loop(
            listener,
            acceptor,
            Arc::clone(&accepts),
            Arc::clone(&closed),
            epoch.clone(),
            (events_tx, config),
        ));
        Peer {
            addr,
            pki,
            accepts,
            closed,
            epoch,
            events: tokio::sync::Mutex::new(events_rx),
            task,
        }
    }

    /// A pool to this peer with `config`.
    pub(super) fn pool(&self, config: PoolConfig) -> Arc<PeerPool> {
        self.pool_via(self.addr.clone(), config)
    }

    /// A pool that reaches this peer through `addr` (a relay).
    pub(super) fn pool_via(&self, addr: String, config: PoolConfig) -> Arc<PeerPool> {
        let pki = Arc::clone(&self.pki);
        let tls: TlsSource = Arc::new(move || Ok(pki.client_config(&[ALPN_H2])));
        PeerPool::new(addr, server_name(), tls, config)
    }

    /// Graceful shutdown of the connections accepted so far.
    pub(super) fn goaway(&self) {
        self.epoch.send_modify(|e| *e += 1);
    }

    pub(super) fn accepts(&self) -> usize {
        self.accepts.load(Ordering::SeqCst)
    }

    /// The next handler event, within [`STEP`].
    pub(super) async fn event(&self) -> String {
        let mut events = self.events.lock().await;
        tokio::time::timeout(STEP, events.recv())
            .await
            .expect("handler event in time")
            .expect("harness alive")
    }
}

async fn accept_loop(
    listener: TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
    accepts: Arc<AtomicUsize>,
    closed: Arc<AtomicUsize>,
    epoch: watch::Sender<u64>,
    (events, config): (mpsc::UnboundedSender<String>, ServerConfig),
) {
    // Ends when the test drops the Peer (task aborted).
    while let Ok((tcp, _)) = listener.accept().await {
        accepts.fetch_add(1, Ordering::SeqCst);
        // As the ingress does: answers and PONGs must not wait for Nagle.
        let _ = tcp.set_nodelay(true);
        let acceptor = acceptor.clone();
        let closed = Arc::clone(&closed);
        let mut epoch = epoch.subscribe();
        let (events, config) = (events.clone(), config.clone());
        tokio::spawn(async move {
            let Ok(tls) = acceptor.accept(tcp).await else {
                return;
            };
            let born = *epoch.borrow_and_update();
            let shutdown = async move {
                let _ = epoch.wait_for(|e| *e > born).await;
            };
            let handler = move |incoming| handle(incoming, events.clone());
            let _ = serve_connection(tls, config, handler, shutdown).await;
            closed.fetch_add(1, Ordering::SeqCst);
        });
    }
}

/// The test ingress: what it does depends on the authority's first label.
async fn handle(mut incoming: Incoming, events: mpsc::UnboundedSender<String>) {
    if incoming.is_request() {
        super::tests_request::echo_request(incoming).await;
        return;
    }
    let kind = incoming
        .authority
        .split('.')
        .next()
        .unwrap_or("")
        .to_owned();
    match kind.as_str() {
        "refuse" => {
            let _ = incoming.refuse(StatusCode::SERVICE_UNAVAILABLE, "no endpoint");
        }
        "hold" => {
            let reason = incoming.reset().await;
            let _ = events.send(format!("reset {reason:?}"));
        }
        "reply" => {
            if let Ok(tunnel) = incoming.accept(HeaderMap::new()) {
                reply_after_eof(tunnel).await;
            }
        }
        "first" => {
            if let Ok(tunnel) = incoming.accept(HeaderMap::new()) {
                let _ = events.send(server_closes_first(tunnel).await);
            }
        }
        "rst" => {
            if let Ok(mut tunnel) = incoming.accept(HeaderMap::new()) {
                let mut one = [0u8; 1];
                let _ = tunnel.write_all(b"x").await;
                let _ = tunnel.read_exact(&mut one).await;
                tunnel.reset(h2::Reason::INTERNAL_ERROR);
            }
        }
        "late" => {
            // Answers only after the test saw one wait for it time out.
            tokio::time::sleep(Duration::from_millis(100)).await;
            if let Ok(tunnel) = incoming.accept(HeaderMap::new()) {
                echo(tunnel).await;
            }
        }
        "flood" => {
            if let Ok(mut tunnel) = incoming.accept(HeaderMap::new()) {
                let chunk = vec![0u8; 1 << 20];
                // Blocks once the stream window is full; the client never reads.
                for _ in 0..64 {
                    if tunnel.write_all(&chunk).await.is_err() {
                        break;
                    }
                }
            }
        }
        "count" => {
            if let Ok(tunnel) = incoming.accept(HeaderMap::new()) {
                count_bytes(tunnel).await;
            }
        }
        _ => {
            if let Ok(tunnel) = incoming.accept(HeaderMap::new()) {
                echo(tunnel).await;
            }
        }
    }
}

async fn echo(tunnel: Tunnel) {
    let (mut read, mut write) = tokio::io::split(tunnel);
    if tokio::io::copy(&mut read, &mut write).await.is_ok() {
        let _ = write.shutdown().await;
    }
}

/// Reads to EOF (the client's half-close), then answers `got:<bytes>`.
async fn reply_after_eof(mut tunnel: Tunnel) {
    let mut got = Vec::new();
    if tunnel.read_to_end(&mut got).await.is_ok() {
        let mut answer = b"got:".to_vec();
        answer.extend_from_slice(&got);
        let _ = tunnel.write_all(&answer).await;
        let _ = tunnel.shutdown().await;
    }
}

/// Sends `first`, half-closes, then reads what the client still sends.
async fn server_closes_first(mut tunnel: Tunnel) -> String {
    if tunnel.write_all(b"first").await.is_err() || tunnel.shutdown().await.is_err() {
        return "write failed".to_owned();
    }
    let mut got = Vec::new();
    match tunnel.read_to_end(&mut got).await {
        Ok(_) => format!("read {}", String::from_utf8_lossy(&got)),
        Err(error) => format!("read failed: {error}"),
    }
}

/// Discards everything, then answers the byte count (8 bytes, big endian).
async fn count_bytes(tunnel: Tunnel) {
    let (mut read, mut write) = tokio::io::split(tunnel);
    if let Ok(n) = tokio::io::copy(&mut read, &mut tokio::io::sink()).await {
        let _ = write.write_all(&n.to_be_bytes()).await;
        let _ = write.shutdown().await;
    }
}

pub(super) fn deadline() -> Instant {
    Instant::now() + STEP
}

/// Opens `authority` and waits for a 200.
pub(super) async fn tunnel(pool: &PeerPool, authority: &str) -> Tunnel {
    let mut opening = pool
        .open(authority, HeaderMap::new(), deadline())
        .await
        .expect("open");
    let response = opening.response().await.expect("response");
    assert_eq!(response.status, StatusCode::OK);
    opening.into_tunnel().expect("tunnel after 200")
}

async fn read_all(tunnel: &mut Tunnel) -> Vec<u8> {
    let mut got = Vec::new();
    tokio::time::timeout(STEP, tunnel.read_to_end(&mut got))
        .await
        .expect("read in time")
        .expect("read");
    got
}

#[tokio::test]
async fn connect_stream_carries_bytes_both_ways() {
    let peer = Peer::start().await;
    let pool = peer.pool(PoolConfig::default());
    let mut t = tunnel(&pool, "echo.hello.demo.fedmesh").await;
    for round in 0..3u8 {
        let message = [round; 1000];
        t.write_all(&message).await.expect("write");
        let mut back = [0u8; 1000];
        tokio::time::timeout(STEP, t.read_exact(&mut back))
            .await
            .expect("echo in time")
            .expect("echo");
        assert_eq!(back, message);
    }
}

#[tokio::test]
async fn client_half_close_reaches_server_and_reply_still_flows() {
    let peer = Peer::start().await;
    let pool = peer.pool(PoolConfig::default());
    let mut t = tunnel(&pool, "reply.hello.demo.fedmesh").await;
    t.write_all(b"hello").await.expect("write");
    t.shutdown().await.expect("half-close");
    assert_eq!(read_all(&mut t).await, b"got:hello");
}

#[tokio::test]
async fn server_half_close_reaches_client_and_client_still_sends() {
    let peer = Peer::start().await;
    let pool = peer.pool(PoolConfig::default());
    let mut t = tunnel(&pool, "first.hello.demo.fedmesh").await;
    assert_eq!(read_all(&mut t).await, b"first");
    t.write_all(b"after").await.expect("write after server FIN");
    t.shutdown().await.expect("half-close");
    assert_eq!(peer.event().await, "read after");
}

#[tokio::test]
async fn early_data_is_delivered_after_accept() {
    let peer = Peer::start().await;
    let pool = peer.pool(PoolConfig::default());
    let mut opening = pool
        .open("reply.hello.demo.fedmesh", HeaderMap::new(), deadline())
        .await
        .expect("open");
    opening
        .send(Bytes::from_static(b"early "))
        .expect("early data");
    let response = opening.response().await.expect("response");
    assert_eq!(response.status, StatusCode::OK);
    let mut t = opening.into_tunnel().expect("tunnel");
    t.write_all(b"late").await.expect("write");
    t.shutdown().await.expect("half-close");
    assert_eq!(read_all(&mut t).await, b"got:early late");
}

#[tokio::test]
async fn refusal_gives_status_and_reason_and_early_data_replays_once() {
    let peer = Peer::start().await;
    let pool = peer.pool(PoolConfig::default());
    let early = Bytes::from_static(b"GET / HTTP/1.0\r\n\r\n");
    let mut refused = pool
        .open("refuse.hello.demo.fedmesh", HeaderMap::new(), deadline())
        .await
        .expect("open");
    refused.send(early.clone()).expect("early data");
    let response = refused.response().await.expect("response");
    assert_eq!(response.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(response.reason(), Some("no endpoint"));
    assert!(matches!(
        refused.into_tunnel(),
        Err(TransportError::NotEstablished {
            status: Some(StatusCode::SERVICE_UNAVAILABLE)
        })
    ));
    // The egress replays the same bytes to the next target: the endpoint
    // behind it sees them exactly once (the refusing one never read them).
    let mut next = pool
        .open("reply.hello.demo.fedmesh", HeaderMap::new(), deadline())
        .await
        .expect("open next target");
    next.send(early.clone()).expect("replay");
    assert_eq!(
        next.response().await.expect("response").status,
        StatusCode::OK
    );
    let mut t = next.into_tunnel().expect("tunnel");
    t.shutdown().await.expect("half-close");
    let mut expected = b"got:".to_vec();
    expected.extend_from_slice(&early);
    assert_eq!(read_all(&mut t).await, expected);
}

#[tokio::test]
async fn dropping_an_opening_resets_the_stream_on_the_server() {
    let peer = Peer::start().await;
    let pool = peer.pool(PoolConfig::default());
    let opening = pool
        .open("hold.hello.demo.fedmesh", HeaderMap::new(), deadline())
        .await
        .expect("open");
    drop(opening);
    assert_eq!(peer.event().await, "reset Ok(CANCEL)");
    // The slot is freed with it.
    assert_eq!(pool.stats().open_streams, 0);
}

#[tokio::test]
async fn reset_by_peer_is_an_error_not_eof() {
    let peer = Peer::start().await;
    let pool = peer.pool(PoolConfig::default());
    let mut client = tunnel(&pool, "rst.hello.demo.fedmesh").await;
    let mut one = [0u8; 1];
    client.read_exact(&mut one).await.expect("first byte");
    client.write_all(b"y").await.expect("write");
    let mut rest = Vec::new();
    let result = tokio::time::timeout(STEP, client.read_to_end(&mut rest))
        .await
        .expect("read in time");
    let error = result.expect_err("a reset stream must not read as EOF");
    assert_eq!(error.kind(), std::io::ErrorKind::ConnectionReset);
    assert!(rest.is_empty());
}

#[tokio::test]
async fn non_connect_request_gets_405() {
    let peer = Peer::start().await;
    let tcp = tokio::net::TcpStream::connect(&peer.addr)
        .await
        .expect("connect");
    let tls = tokio_rustls::TlsConnector::from(peer.pki.client_config(&[ALPN_H2]))
        .connect(server_name(), tcp)
        .await
        .expect("TLS");
    let (send, connection) = h2::client::handshake(tls).await.expect("h2 preface");
    tokio::spawn(connection);
    let mut send = send.ready().await.expect("ready");
    let request = http::Request::get("https://gw.east.fedmesh.test/")
        .body(())
        .expect("request");
    let (response, _) = send.send_request(request, true).expect("send");
    let response = tokio::time::timeout(STEP, response)
        .await
        .expect("in time")
        .expect("response");
    assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
}

/// Writes `total` bytes of a counter pattern to `write` and half-closes;
/// returns their SHA-256.
async fn send_pattern(mut write: impl tokio::io::AsyncWrite + Unpin, total: usize) -> Vec<u8> {
    let mut digest = ring::digest::Context::new(&ring::digest::SHA256);
    let mut chunk = vec![0u8; 1 << 20];
    for (i, start) in (0..total).step_by(chunk.len()).enumerate() {
        let n = chunk.len().min(total - start);
        chunk
            .iter_mut()
            .enumerate()
            .for_each(|(j, b)| *b = (i * 31 + j * 7) as u8);
        digest.update(&chunk[..n]);
        write.write_all(&chunk[..n]).await.expect("write");
    }
    write.shutdown().await.expect("half-close");
    digest.finish().as_ref().to_vec()
}

/// Reads to EOF; returns the byte count and SHA-256.
async fn hash_until_eof(mut read: impl tokio::io::AsyncRead + Unpin) -> (usize, Vec<u8>) {
    let mut digest = ring::digest::Context::new(&ring::digest::SHA256);
    let mut buf = vec![0u8; 256 << 10];
    let mut total = 0;
    loop {
        let n = read.read(&mut buf).await.expect("read");
        if n == 0 {
            return (total, digest.finish().as_ref().to_vec());
        }
        total += n;
        digest.update(&buf[..n]);
    }
}

#[tokio::test]
async fn sixty_four_mib_echo_arrives_intact() {
    const TOTAL: usize = 64 << 20;
    let peer = Peer::start().await;
    let pool = peer.pool(PoolConfig::default());
    let t = tunnel(&pool, "echo.bulk.demo.fedmesh").await;
    let (read, write) = tokio::io::split(t);
    let sender = tokio::spawn(send_pattern(write, TOTAL));
    let (got, received) = tokio::time::timeout(Duration::from_secs(60), hash_until_eof(read))
        .await
        .expect("64 MiB echoed in time");
    let sent = sender.await.expect("sender");
    assert_eq!(got, TOTAL);
    assert_eq!(received, sent);
}

#[tokio::test]
async fn a_stalled_reader_holds_only_its_stream_window() {
    const TOTAL: usize = 16 << 20;
    let peer = Peer::start().await;
    let pool = peer.pool(PoolConfig::default());
    // This tunnel's reader never reads: the peer fills its 4 MiB window
    // and waits.
    let _stalled = tunnel(&pool, "flood.big.demo.fedmesh").await;
    let t = tunnel(&pool, "echo.bulk.demo.fedmesh").await;
    let (read, write) = tokio::io::split(t);
    let sender = tokio::spawn(send_pattern(write, TOTAL));
    let (got, received) = tokio::time::timeout(Duration::from_secs(60), hash_until_eof(read))
        .await
        .expect("the other stream on the connection kept moving");
    assert_eq!(got, TOTAL);
    assert_eq!(received, sender.await.expect("sender"));
    assert_eq!(peer.accepts(), 1);
}

#[tokio::test]
async fn waiting_for_the_response_is_cancel_safe() {
    let peer = Peer::start().await;
    let pool = peer.pool(PoolConfig::default());
    let mut opening = pool
        .open("late.hello.demo.fedmesh", HeaderMap::new(), deadline())
        .await
        .expect("open");
    // The egress races the answer against the client; the client wins first.
    tokio::select! {
        response = opening.response() => panic!("answered too early: {response:?}"),
        () = tokio::time::sleep(Duration::from_millis(10)) => {}
    }
    let response = opening
        .response()
        .await
        .expect("response after a cancelled wait");
    assert_eq!(response.status, StatusCode::OK);
    let mut t = opening.into_tunnel().expect("tunnel");
    t.write_all(b"ok").await.expect("write");
    let mut back = [0u8; 2];
    t.read_exact(&mut back).await.expect("echo");
    assert_eq!(&back, b"ok");
}
