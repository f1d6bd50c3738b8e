//! The guard with real sockets: idle connections past the cap make room
//! for a real client, and every idle or slow connection is closed within
//! its deadlines.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::{DnsConfig, DnsServer, ZoneSnapshot};

/// A query for `example.` (outside any zone: REFUSED without upstreams),
/// framed for TCP.
fn framed_query() -> Vec<u8> {
    let message: [u8; 25] = [
        0x12, 0x34, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 7, b'e', b'x', b'a', b'm', b'p', b'l', b'e', 0,
        0, 1, 0, 1,
    ];
    let mut out = vec![0, 25];
    out.extend_from_slice(&message);
    out
}

async fn ask(addr: SocketAddr) -> std::io::Result<u16> {
    let mut tcp = TcpStream::connect(addr).await?;
    tcp.write_all(&framed_query()).await?;
    let mut len = [0u8; 2];
    tcp.read_exact(&mut len).await?;
    let mut reply = vec![0u8; usize::from(u16::from_be_bytes(len))];
    tcp.read_exact(&mut reply).await?;
    Ok(u16::from_be_bytes([reply[0], reply[1]]))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_and_slow_connections_are_closed_and_never_keep_a_client_out() {
    let (_tx, rx) = tokio::sync::watch::channel(Arc::new(ZoneSnapshot::default()));
    let config = DnsConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        upstreams: Vec::new(),
    };
    let server = DnsServer::start(config, rx).await.unwrap();
    let addr = server.local_addr();
    let closed = Arc::new(AtomicUsize::new(0));
    let n = 300;
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..n {
        let closed = closed.clone();
        tasks.spawn(async move {
            if let Ok(mut tcp) = TcpStream::connect(addr).await {
                let mut buf = [0u8; 64];
                if i % 100 == 0 {
                    // A slow writer: a length prefix, then a byte a second.
                    let _ = tcp.write_all(&[0, 200]).await;
                    for _ in 0..60 {
                        tokio::time::sleep(Duration::from_secs(1)).await;
                        if tcp.write_all(&[0]).await.is_err() {
                            break;
                        }
                    }
                } else {
                    let read = tcp.read(&mut buf);
                    let _ = tokio::time::timeout(Duration::from_secs(60), read).await;
                }
            }
            closed.fetch_add(1, Ordering::SeqCst);
        });
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(ask(addr).await.expect("a real client is answered"), 0x1234);
    let deadline = Instant::now() + Duration::from_secs(30);
    while closed.load(Ordering::SeqCst) < n {
        assert!(
            Instant::now() < deadline,
            "only {} of {n} closed",
            closed.load(Ordering::SeqCst)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    server.shutdown().await;
}
