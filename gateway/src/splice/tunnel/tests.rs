//! The tunnel splice over a real HTTP/2 connection (h2 over an in-memory
//! pipe) and a real loopback TCP pair: bytes both ways with half-close,
//! the window honoured, resets and the idle timeout.

use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

use super::{TunnelSide, splice_tunnel};
use crate::metrics::ByteMeters;
use crate::splice::Moved;
use crate::transport::Tunnel;

const STEP: Duration = Duration::from_secs(10);

/// Two ends of one HTTP/2 stream, each a [`Tunnel`], with `window` as both
/// sides' initial stream window.
async fn stream_pair(window: u32) -> (Tunnel, Tunnel) {
    let (a, b) = tokio::io::duplex(1 << 20);
    let server = tokio::spawn(async move {
        let mut conn = h2::server::Builder::new()
            .initial_window_size(window)
            .max_frame_size(64 << 10)
            .handshake::<_, Bytes>(b)
            .await
            .expect("server handshake");
        let (request, mut respond) = conn.accept().await.expect("a stream").expect("no error");
        let send = respond
            .send_response(http::Response::new(()), false)
            .expect("respond");
        tokio::spawn(async move { while conn.accept().await.is_some() {} });
        Tunnel::new(send, request.into_body(), None)
    });
    let (client, conn) = h2::client::Builder::new()
        .initial_window_size(window)
        .max_frame_size(64 << 10)
        .handshake::<_, Bytes>(a)
        .await
        .expect("client handshake");
    tokio::spawn(conn);
    let mut client = client.ready().await.expect("ready");
    let request = http::Request::post("http://t/").body(()).expect("request");
    let (response, send) = client.send_request(request, false).expect("send");
    let server_end = server.await.expect("server task");
    let recv = response.await.expect("response").into_body();
    (Tunnel::new(send, recv, None), server_end)
}

/// A connected loopback TCP pair.
async fn tcp_pair() -> (TcpStream, TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (a, b) = tokio::join!(TcpStream::connect(addr), listener.accept());
    (a.expect("connect"), b.expect("accept").0)
}

/// The socket side of a splice: `outer` is the test's end of the TCP pair.
async fn spliced(
    window: u32,
    idle: Duration,
    meters: ByteMeters,
) -> (TcpStream, Tunnel, JoinHandle<Moved>) {
    let (mut near, far) = stream_pair(window).await;
    let (outer, mut inner) = tcp_pair().await;
    let task = tokio::spawn(async move {
        splice_tunnel(
            &mut inner,
            &mut near,
            TunnelSide::SocketFirst,
            idle,
            &meters,
        )
        .await
    });
    (outer, far, task)
}

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31) ^ seed)
        .collect()
}

#[tokio::test]
async fn bytes_cross_both_ways_with_half_close_and_are_counted() {
    let meters = ByteMeters::default();
    let (mut socket, mut far, task) = spliced(64 << 10, STEP, meters.clone()).await;
    let up = pattern(3 << 20, 1);
    let down = pattern(2 << 20, 2);
    let sent = up.clone();
    let writer = tokio::spawn(async move {
        let (mut r, mut w) = socket.split();
        let read = async {
            let mut got = Vec::new();
            r.read_to_end(&mut got).await.expect("socket read");
            got
        };
        let write = async {
            w.write_all(&sent).await.expect("socket write");
            w.shutdown().await.expect("half-close");
        };
        tokio::join!(read, write).0
    });
    let mut got_up = Vec::new();
    tokio::time::timeout(STEP, far.read_to_end(&mut got_up))
        .await
        .expect("in time")
        .expect("tunnel read");
    assert!(got_up == up, "the tunnel got exactly what the socket sent");
    // The other way still flows after the client's FIN.
    far.write_all(&down).await.expect("tunnel write");
    far.shutdown().await.expect("END_STREAM");
    let got_down = tokio::time::timeout(STEP, writer)
        .await
        .expect("in time")
        .expect("writer");
    assert!(
        got_down == down,
        "the socket got exactly what the tunnel sent"
    );
    let moved = tokio::time::timeout(STEP, task)
        .await
        .expect("in time")
        .expect("task");
    assert_eq!((moved.up, moved.down), (up.len() as u64, down.len() as u64));
    assert_eq!(meters.up.get(), up.len() as u64);
    assert_eq!(meters.down.get(), down.len() as u64);
    assert!(!moved.idle_timeout);
}

#[tokio::test]
async fn a_reader_that_stops_stalls_the_writer_at_the_window() {
    let meters = ByteMeters::default();
    // A small window: the splice may have at most that much in flight.
    let (mut socket, mut far, _task) = spliced(16 << 10, STEP, meters.clone()).await;
    let writer = tokio::spawn(async move {
        let data = pattern(8 << 20, 3);
        let _ = socket.write_all(&data).await;
        socket
    });
    // Nobody reads the tunnel: the splice gets stuck, having read far less
    // than was offered (socket buffers plus one window). Wait until the
    // count has stood still for a while (bounded: the machine may be slow).
    let deadline = tokio::time::Instant::now() + STEP;
    let (mut last, mut still) = (0, 0);
    while still < 4 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let now = meters.up.get();
        still = if now == last && now > 0 { still + 1 } else { 0 };
        last = now;
    }
    assert!(
        still >= 4,
        "the splice read on and never stalled ({last} bytes)"
    );
    assert!(
        last < 2 << 20,
        "stalled near the window, not after {last} bytes"
    );
    // Reading resumes the flow to the end.
    let mut buf = vec![0u8; 8 << 20];
    tokio::time::timeout(STEP, far.read_exact(&mut buf))
        .await
        .expect("in time")
        .expect("all bytes");
    assert!(buf == pattern(8 << 20, 3));
    writer.abort();
}

#[tokio::test]
async fn a_reset_stream_ends_the_splice_and_the_socket() {
    let (mut socket, mut far, task) = spliced(64 << 10, STEP, ByteMeters::default()).await;
    socket.write_all(b"hello").await.expect("write");
    let mut buf = [0u8; 5];
    far.read_exact(&mut buf).await.expect("read");
    far.reset(h2::Reason::CANCEL);
    tokio::time::timeout(STEP, task)
        .await
        .expect("the splice ends")
        .expect("task");
    let mut rest = Vec::new();
    let read = tokio::time::timeout(STEP, socket.read_to_end(&mut rest))
        .await
        .expect("the socket closes");
    assert!(read.is_err() || rest.is_empty(), "no bytes after the reset");
}

#[tokio::test]
async fn a_silent_connection_ends_at_the_idle_timeout() {
    let (_socket, _far, task) =
        spliced(64 << 10, Duration::from_millis(100), ByteMeters::default()).await;
    let moved = tokio::time::timeout(STEP, task)
        .await
        .expect("ended by the idle timeout")
        .expect("task");
    assert!(moved.idle_timeout);
}
