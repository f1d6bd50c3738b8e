//! New-connection latency across a long link: the time from `connect()` to
//! the first response byte of an HTTP/1.1 `GET` the client sends at once,
//! on each path, with a delaying relay ([`fedmesh_tests::relay`], half the
//! round trip each way, plus a round trip for the TCP handshake the
//! loopback connect does not pay) on the long hop of that path:
//!
//! - **direct**: client → relay → backend;
//! - **fedmesh**: client → east's VIP of `bench/rtt` (egress) → relay →
//!   the `remote` cluster's ingress → backend. `remote`'s
//!   `gateway.advertise` is the relay, so east's egress dials through it;
//!   the pool is warm (its connection was opened before the measuring), so
//!   a client connection is one CONNECT stream carrying the request;
//! - **HAProxy**: client → front HAProxy (a second frontend) → relay →
//!   west's back HAProxy (mTLS) → backend: one TCP and one TLS handshake
//!   (session resumed) per client connection, since HAProxy in TCP mode
//!   cannot reuse server-side connections.
//!
//! All three end at west's backend. The relays run in this process, so
//! their cost is in no proxy's CPU figure (none is taken here anyway).
//! Connections are made one at a time, the three paths interleaved, so
//! the machine's noise falls on all of them alike.

use std::net::SocketAddr;
use std::time::Duration;

use fedmesh_tests::bench::quantile;
use fedmesh_tests::relay::Relay;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::runtime::Runtime;
use tokio::time::Instant;

use crate::http::Failure;
use crate::say;

/// Connections per path before measuring at a new round trip (they warm
/// HAProxy's TLS session cache and let the pool's connection see the delay).
const WARM_UP: usize = 3;
/// How long one measured connection may take, first byte and rest.
const LIMIT: Duration = Duration::from_secs(5);

/// The relays of the three paths and where clients connect.
#[derive(Debug)]
pub(crate) struct Links {
    /// (path name, where the client connects, the relay on its long hop).
    pub(crate) paths: Vec<(&'static str, SocketAddr, Relay)>,
}

/// One path's figures at one round trip.
#[derive(Debug, Clone)]
pub(crate) struct RttResult {
    /// The round trip the relays added, ms.
    pub(crate) rtt_ms: u64,
    /// `direct`, `fedmesh` or `HAProxy`.
    pub(crate) path: &'static str,
    /// Connections measured.
    pub(crate) total: usize,
    /// Of which failed.
    pub(crate) failed: usize,
    /// Time to the first byte, median and p99, ms.
    pub(crate) p50_ms: f64,
    /// 99th percentile (with 50 connections: the slowest but one).
    pub(crate) p99_ms: f64,
    /// TCP connections the path's relay accepted while measuring.
    pub(crate) relay_connections: u64,
}

impl Links {
    /// Sets every relay to `rtt` (half each way).
    fn set_rtt(&self, rtt: Duration) {
        for (_, _, relay) in &self.paths {
            relay.set_delay(rtt / 2);
        }
    }

    /// For each round trip in `rtts_ms`: a warm-up, then `n` connections
    /// per path; the relays are set back to no delay at the end.
    pub(crate) fn run(&self, rt: &Runtime, rtts_ms: &[u64], n: usize) -> Vec<RttResult> {
        let mut out = Vec::new();
        for &ms in rtts_ms {
            let rtt = Duration::from_millis(ms);
            self.set_rtt(rtt);
            say(&format!(
                "new connections over a {ms} ms round trip ({n} per path)…"
            ));
            for _ in 0..WARM_UP {
                for (_, addr, _) in &self.paths {
                    let _ = rt.block_on(first_byte(*addr));
                }
            }
            let before: Vec<u64> = self.paths.iter().map(|(_, _, r)| r.accepted()).collect();
            let mut samples = vec![Vec::new(); self.paths.len()];
            for _ in 0..n {
                for (i, (_, addr, _)) in self.paths.iter().enumerate() {
                    samples[i].push(rt.block_on(first_byte(*addr)));
                }
            }
            for (i, (name, _, relay)) in self.paths.iter().enumerate() {
                out.push(summarise(
                    ms,
                    name,
                    &samples[i],
                    relay.accepted() - before[i],
                ));
            }
        }
        self.set_rtt(Duration::ZERO);
        out
    }
}

fn summarise(
    rtt_ms: u64,
    path: &'static str,
    samples: &[Result<Duration, Failure>],
    relay_connections: u64,
) -> RttResult {
    let mut ms: Vec<f64> = samples
        .iter()
        .filter_map(|s| s.as_ref().ok())
        .map(|d| d.as_secs_f64() * 1e3)
        .collect();
    ms.sort_by(f64::total_cmp);
    RttResult {
        rtt_ms,
        path,
        total: samples.len(),
        failed: samples.iter().filter(|s| s.is_err()).count(),
        p50_ms: quantile(&ms, 0.50).unwrap_or(f64::NAN),
        p99_ms: quantile(&ms, 0.99).unwrap_or(f64::NAN),
        relay_connections,
    }
}

/// Connects to `addr`, sends a `GET /` (`Connection: close`) at once, and
/// returns the time from before `connect()` to the first response byte;
/// then reads the rest, so the connection ends cleanly. Bounded by
/// [`LIMIT`].
async fn first_byte(addr: SocketAddr) -> Result<Duration, Failure> {
    let deadline = Instant::now() + LIMIT;
    let started = Instant::now();
    let mut conn = tokio::time::timeout_at(deadline, TcpStream::connect(addr))
        .await
        .map_err(|_| Failure::Timeout)?
        .map_err(|_| Failure::Connect)?;
    let _ = conn.set_nodelay(true);
    conn.write_all(b"GET / HTTP/1.1\r\nhost: bench\r\nconnection: close\r\n\r\n")
        .await
        .map_err(|_| Failure::Exchange)?;
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout_at(deadline, conn.read(&mut buf))
        .await
        .map_err(|_| Failure::Timeout)?
        .map_err(|_| Failure::Exchange)?;
    let took = started.elapsed();
    if n == 0 {
        return Err(Failure::Exchange);
    }
    // The rest of the answer, then the close (bounded by the deadline).
    buf.truncate(n);
    let _ = tokio::time::timeout_at(deadline, conn.read_to_end(&mut buf)).await;
    if buf.starts_with(b"HTTP/1.1 200") {
        Ok(took)
    } else {
        Err(Failure::Exchange)
    }
}
