//! Throughput probes (ignored: they print numbers, they assert only that
//! every byte arrived). Run them with
//! `cargo test --release -p fedmesh-gateway --lib transport::tests_probe -- --ignored --nocapture`;
//! `FEDMESH_PROBE_MIB` sets the bytes per run (default 1024 on loopback,
//! 256 over the 40 ms relay).
//!
//! The 40 ms link is a user-space relay on loopback that holds every chunk
//! for 20 ms in each direction (no netem on these machines), so the
//! HTTP/2 windows, not the kernel, bound the rate: window / RTT.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::tests::{Peer, tunnel};
use super::{PoolConfig, ServerConfig, WindowConfig};

/// Window settings tried by the probes.
fn candidates() -> Vec<(&'static str, WindowConfig)> {
    let window = |stream_window, max_frame_size, max_send_buffer| WindowConfig {
        stream_window,
        connection_window: 16 << 20,
        max_frame_size,
        max_send_buffer,
    };
    vec![
        (
            "stream 1 MiB, frame 16 KiB",
            window(1 << 20, 16 << 10, 1 << 20),
        ),
        (
            "stream 4 MiB, frame 16 KiB",
            window(4 << 20, 16 << 10, 1 << 20),
        ),
        (
            "stream 4 MiB, frame 64 KiB (default)",
            WindowConfig::default(),
        ),
        (
            "stream 4 MiB, frame 256 KiB",
            window(4 << 20, 256 << 10, 1 << 20),
        ),
        (
            "stream 4 MiB, frame 64 KiB, send buffer 4 MiB",
            window(4 << 20, 64 << 10, 4 << 20),
        ),
        (
            "stream 8 MiB, frame 64 KiB",
            window(8 << 20, 64 << 10, 1 << 20),
        ),
    ]
}

fn probe_bytes(default_mib: u64) -> u64 {
    let mib = std::env::var("FEDMESH_PROBE_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default_mib);
    mib << 20
}

/// Sends `total` bytes over one tunnel (through `relay` when given) and
/// returns MB/s; the server counts what arrived.
async fn one_run(window: WindowConfig, total: u64, relay: Option<Duration>) -> f64 {
    let peer = Peer::start_with(ServerConfig {
        window: window.clone(),
        ..ServerConfig::default()
    })
    .await;
    let config = PoolConfig {
        window,
        ..PoolConfig::default()
    };
    let pool = match relay {
        Some(delay) => peer.pool_via(start_relay(peer.addr.clone(), delay).await, config),
        None => peer.pool(config),
    };
    let mut t = tunnel(&pool, "count.bulk.demo.fedmesh").await;
    let chunk = vec![0x5au8; 256 << 10];
    let start = Instant::now();
    for _ in 0..total / chunk.len() as u64 {
        t.write_all(&chunk).await.expect("write");
    }
    t.shutdown().await.expect("half-close");
    let mut count = [0u8; 8];
    t.read_exact(&mut count).await.expect("count");
    let elapsed = start.elapsed();
    assert_eq!(u64::from_be_bytes(count), total);
    total as f64 / elapsed.as_secs_f64() / 1e6
}

fn peak_rss() -> String {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM"))
                .map(str::to_owned)
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "throughput probe, prints MB/s"]
async fn throughput_probe_one_tunnel_loopback() {
    let total = probe_bytes(1024);
    for (name, window) in candidates() {
        let rate = one_run(window, total, None).await;
        println!("loopback, {name}: {} MiB at {rate:.0} MB/s", total >> 20);
    }
    println!("{}", peak_rss());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "throughput probe, prints MB/s"]
async fn throughput_probe_one_tunnel_40ms_link() {
    let total = probe_bytes(256);
    for (name, window) in candidates() {
        let rate = one_run(window, total, Some(Duration::from_millis(20))).await;
        println!("40 ms RTT, {name}: {} MiB at {rate:.0} MB/s", total >> 20);
    }
    println!("{}", peak_rss());
}

/// A relay on 127.0.0.1 to `upstream` that delays each direction by
/// `delay`; returns its address.
async fn start_relay(upstream: String, delay: Duration) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind relay");
    let addr = listener.local_addr().expect("relay addr").to_string();
    tokio::spawn(async move {
        // Ends with the test's runtime.
        while let Ok((client, _)) = listener.accept().await {
            let Ok(server) = TcpStream::connect(&upstream).await else {
                continue;
            };
            let _ = client.set_nodelay(true);
            let _ = server.set_nodelay(true);
            let (cr, cw) = client.into_split();
            let (sr, sw) = server.into_split();
            tokio::spawn(delayed_copy(cr, sw, delay));
            tokio::spawn(delayed_copy(sr, cw, delay));
        }
    });
    addr
}

/// Copies `from` to `to`, each chunk written `delay` after it was read.
async fn delayed_copy(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    delay: Duration,
) {
    // Bounded queue: a full one stops reading, so TCP pushes back.
    let (tx, mut rx) = mpsc::channel::<(Instant, Vec<u8>)>(4096);
    let writer = tokio::spawn(async move {
        while let Some((due, chunk)) = rx.recv().await {
            tokio::time::sleep_until(due).await;
            if to.write_all(&chunk).await.is_err() {
                return;
            }
        }
        let _ = to.shutdown().await;
    });
    let mut buf = vec![0u8; 64 << 10];
    // Ends at EOF or error of the read side.
    while let Ok(n) = from.read(&mut buf).await {
        if n == 0
            || tx
                .send((Instant::now() + delay, buf[..n].to_vec()))
                .await
                .is_err()
        {
            break;
        }
    }
    drop(tx);
    let _ = writer.await;
}
