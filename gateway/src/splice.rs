//! Moves bytes both ways between a client and an upstream until either side
//! closes or no byte moved for the idle timeout.
//!
//! Every read is counted at once into the connection's [`ByteMeters`] (the
//! Prometheus byte counters of its service and cluster), so that a
//! connection open for an hour shows its bytes while it is open, not in
//! one jump when it closes; the returned [`Moved`] still gives the totals
//! of this one connection.
//!
//! Bytes headed into a TLS stream are copied in buffers of one full TLS
//! record, so that each write seals a full-size record; tokio's default
//! 8 KiB buffer made every record half-size, twice the records and
//! syscalls per byte (bench/gateway.sh: bulk throughput per gateway
//! CPU-second). The other direction keeps the default: a bigger buffer
//! there buys little and costs memory on every open connection.

use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, copy_bidirectional_with_sizes};

use crate::metrics::ByteMeters;

mod tunnel;

pub use tunnel::{TunnelSide, splice_tunnel};

/// The largest TLS record's plaintext (RFC 8446 §5.1: 2^14 bytes).
pub const TLS_RECORD: usize = 16 * 1024;
/// tokio's default copy buffer, for bytes not headed into TLS.
pub const PLAIN_BUFFER: usize = 8 * 1024;

/// Which side of a splice is a TLS stream (for buffer sizes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsSide {
    /// Both sides are plain TCP.
    Neither,
    /// The first (`a`).
    A,
    /// The second (`b`).
    B,
}

/// Bytes moved by a finished splice.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Moved {
    /// Client → upstream.
    pub up: u64,
    /// Upstream → client.
    pub down: u64,
    /// Ended by the idle timeout.
    pub idle_timeout: bool,
}

/// Splices `a` and `b`; `tls` says which of them is a TLS stream. Bytes
/// read from `a` count into `meters.up` and those read from `b` into
/// `meters.down` as they are read. The idle timer restarts whenever a read
/// returns data (checked at a quarter of the timeout).
pub async fn splice<A, B>(
    a: &mut A,
    b: &mut B,
    tls: TlsSide,
    idle: Duration,
    meters: &ByteMeters,
) -> Moved
where
    A: AsyncRead + AsyncWrite + Unpin,
    B: AsyncRead + AsyncWrite + Unpin,
{
    let seen = activity::Seen::default();
    let (mut a, up) = activity::Tracked::new(a, &seen, meters.up.clone());
    let (mut b, down) = activity::Tracked::new(b, &seen, meters.down.clone());
    let count = |c: &std::sync::atomic::AtomicU64| c.load(std::sync::atomic::Ordering::Relaxed);
    let check = (idle / 4).max(Duration::from_millis(10));
    let into = |side| {
        if tls == side {
            TLS_RECORD
        } else {
            PLAIN_BUFFER
        }
    };
    let copy = copy_bidirectional_with_sizes(&mut a, &mut b, into(TlsSide::B), into(TlsSide::A));
    tokio::pin!(copy);
    loop {
        tokio::select! {
            r = &mut copy => {
                let _ = r;
                return Moved { up: count(&up), down: count(&down), idle_timeout: false };
            }
            () = tokio::time::sleep(check) => {
                if seen.idle_for() >= idle {
                    return Moved { up: count(&up), down: count(&down), idle_timeout: true };
                }
            }
        }
    }
}

mod activity {
    //! A stream wrapper that notes when it last read data and counts what
    //! it read, for this connection and into a shared metric.

    use std::pin::Pin;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::task::{Context, Poll};
    use std::time::{Duration, Instant};

    use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

    use crate::metrics::ByteCounter;

    /// The last time either side read something.
    #[derive(Debug, Clone)]
    pub(super) struct Seen {
        start: Instant,
        last_ms: Arc<AtomicU64>,
    }

    impl Default for Seen {
        fn default() -> Self {
            Self {
                start: Instant::now(),
                last_ms: Arc::new(AtomicU64::new(0)),
            }
        }
    }

    impl Seen {
        pub(super) fn touch(&self) {
            let ms = u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX);
            self.last_ms.store(ms, Ordering::Relaxed);
        }

        pub(super) fn idle_for(&self) -> Duration {
            let now = self.start.elapsed();
            now.saturating_sub(Duration::from_millis(self.last_ms.load(Ordering::Relaxed)))
        }
    }

    pub(super) struct Tracked<'a, S> {
        inner: &'a mut S,
        seen: Seen,
        read: Arc<AtomicU64>,
        meter: ByteCounter,
    }

    impl<'a, S> Tracked<'a, S> {
        /// Wraps `inner`; the counter returned holds the bytes read from it
        /// (as does `meter`, shared with other connections).
        pub(super) fn new(
            inner: &'a mut S,
            seen: &Seen,
            meter: ByteCounter,
        ) -> (Self, Arc<AtomicU64>) {
            let read = Arc::new(AtomicU64::new(0));
            let tracked = Self {
                inner,
                seen: seen.clone(),
                read: read.clone(),
                meter,
            };
            (tracked, read)
        }
    }

    impl<S: AsyncRead + Unpin> AsyncRead for Tracked<'_, S> {
        fn poll_read(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &mut ReadBuf<'_>,
        ) -> Poll<std::io::Result<()>> {
            let before = buf.filled().len();
            let r = Pin::new(&mut *self.inner).poll_read(cx, buf);
            let n = buf.filled().len() - before;
            if n > 0 {
                self.read.fetch_add(n as u64, Ordering::Relaxed);
                self.meter.inc_by(n as u64);
                self.seen.touch();
            }
            r
        }
    }

    impl<S: AsyncWrite + Unpin> AsyncWrite for Tracked<'_, S> {
        fn poll_write(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            data: &[u8],
        ) -> Poll<std::io::Result<usize>> {
            Pin::new(&mut *self.inner).poll_write(cx, data)
        }

        fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
            Pin::new(&mut *self.inner).poll_flush(cx)
        }

        fn poll_shutdown(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
        ) -> Poll<std::io::Result<()>> {
            Pin::new(&mut *self.inner).poll_shutdown(cx)
        }
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt, duplex};

    use super::*;

    #[tokio::test]
    async fn bytes_flow_both_ways_and_are_counted() {
        let (mut client, mut a) = duplex(64);
        let (mut b, mut server) = duplex(64);
        let meters = ByteMeters::default();
        let shared = meters.clone();
        let task = tokio::spawn(async move {
            splice(
                &mut a,
                &mut b,
                TlsSide::Neither,
                Duration::from_secs(5),
                &shared,
            )
            .await
        });
        client.write_all(b"ping").await.unwrap();
        let mut buf = [0u8; 4];
        server.read_exact(&mut buf).await.unwrap();
        server.write_all(b"pong!").await.unwrap();
        let mut buf = [0u8; 5];
        client.read_exact(&mut buf).await.unwrap();
        drop(client);
        drop(server);
        let moved = task.await.unwrap();
        assert_eq!((moved.up, moved.down, moved.idle_timeout), (4, 5, false));
        assert_eq!((meters.up.get(), meters.down.get()), (4, 5));
    }

    #[tokio::test]
    async fn byte_counters_move_while_the_connection_is_open() {
        let (mut client, mut a) = duplex(1 << 16);
        let (mut b, mut server) = duplex(1 << 16);
        // Counters already holding other connections' bytes.
        let meters = ByteMeters::default();
        meters.up.inc_by(100);
        let shared = meters.clone();
        let task = tokio::spawn(async move {
            splice(
                &mut a,
                &mut b,
                TlsSide::Neither,
                Duration::from_secs(5),
                &shared,
            )
            .await
        });
        let mut buf = vec![0u8; 3000];
        for round in 1..=3u64 {
            client.write_all(&[1u8; 1000]).await.unwrap();
            server.read_exact(&mut buf[..1000]).await.unwrap();
            // The splice counts a read before it writes it on: once the
            // server has the bytes, the counter has them too.
            assert_eq!(meters.up.get(), 100 + 1000 * round, "round {round}");
            server.write_all(&buf[..500]).await.unwrap();
            client.read_exact(&mut buf[..500]).await.unwrap();
            assert_eq!(meters.down.get(), 500 * round, "round {round}");
        }
        assert!(!task.is_finished(), "the connection is still open");
        drop(client);
        drop(server);
        let moved = task.await.unwrap();
        assert_eq!((moved.up, moved.down), (3000, 1500), "this connection only");
    }

    #[tokio::test]
    async fn a_silent_connection_ends_at_the_idle_timeout() {
        let (_client, mut a) = duplex(64);
        let (mut b, _server) = duplex(64);
        let moved = tokio::time::timeout(
            Duration::from_secs(5),
            splice(
                &mut a,
                &mut b,
                TlsSide::Neither,
                Duration::from_millis(100),
                &ByteMeters::default(),
            ),
        )
        .await
        .expect("ended by the idle timeout");
        assert!(moved.idle_timeout);
    }

    /// An upstream that takes every write whole, remembers the largest,
    /// and reads as closed.
    #[derive(Default)]
    struct Recorder {
        largest: usize,
    }

    impl tokio::io::AsyncRead for Recorder {
        fn poll_read(
            self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
            _: &mut tokio::io::ReadBuf<'_>,
        ) -> std::task::Poll<std::io::Result<()>> {
            std::task::Poll::Ready(Ok(()))
        }
    }

    impl tokio::io::AsyncWrite for Recorder {
        fn poll_write(
            mut self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
            data: &[u8],
        ) -> std::task::Poll<std::io::Result<usize>> {
            self.largest = self.largest.max(data.len());
            std::task::Poll::Ready(Ok(data.len()))
        }

        fn poll_flush(
            self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<std::io::Result<()>> {
            std::task::Poll::Ready(Ok(()))
        }

        fn poll_shutdown(
            self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<std::io::Result<()>> {
            std::task::Poll::Ready(Ok(()))
        }
    }

    /// Pushes 256 KiB from a client through a splice into `upstream` and
    /// returns the largest single write the upstream saw.
    async fn largest_write(tls: TlsSide) -> usize {
        let (mut client, mut a) = duplex(1 << 20);
        client.write_all(&vec![7u8; 256 * 1024]).await.unwrap();
        drop(client);
        let mut upstream = Recorder::default();
        let meters = ByteMeters::default();
        let moved = splice(&mut a, &mut upstream, tls, Duration::from_secs(5), &meters).await;
        assert_eq!(moved.up, 256 * 1024);
        upstream.largest
    }

    #[tokio::test]
    async fn bytes_into_tls_are_written_a_full_record_at_a_time() {
        assert_eq!(largest_write(TlsSide::B).await, TLS_RECORD);
        assert_eq!(largest_write(TlsSide::Neither).await, PLAIN_BUFFER);
    }
}
