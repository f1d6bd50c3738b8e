//! Moves bytes both ways between a client and an upstream until either side
//! closes or no byte moved for the idle timeout.

use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, copy_bidirectional};

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

/// Splices `a` and `b`. The idle timer restarts whenever a read returns
/// data (checked at a quarter of the timeout).
pub async fn splice<A, B>(a: &mut A, b: &mut B, idle: Duration) -> Moved
where
    A: AsyncRead + AsyncWrite + Unpin,
    B: AsyncRead + AsyncWrite + Unpin,
{
    let seen = activity::Seen::default();
    let (mut a, up) = activity::Tracked::new(a, &seen);
    let (mut b, down) = activity::Tracked::new(b, &seen);
    let count = |c: &std::sync::atomic::AtomicU64| c.load(std::sync::atomic::Ordering::Relaxed);
    let check = (idle / 4).max(Duration::from_millis(10));
    let copy = copy_bidirectional(&mut a, &mut b);
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
    //! A stream wrapper that notes when it last read data.

    use std::pin::Pin;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::task::{Context, Poll};
    use std::time::{Duration, Instant};

    use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

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
        fn touch(&self) {
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
    }

    impl<'a, S> Tracked<'a, S> {
        /// Wraps `inner`; the counter returned holds the bytes read from it.
        pub(super) fn new(inner: &'a mut S, seen: &Seen) -> (Self, Arc<AtomicU64>) {
            let read = Arc::new(AtomicU64::new(0));
            let tracked = Self {
                inner,
                seen: seen.clone(),
                read: read.clone(),
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
        let task =
            tokio::spawn(async move { splice(&mut a, &mut b, Duration::from_secs(5)).await });
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
    }

    #[tokio::test]
    async fn a_silent_connection_ends_at_the_idle_timeout() {
        let (_client, mut a) = duplex(64);
        let (mut b, _server) = duplex(64);
        let moved = tokio::time::timeout(
            Duration::from_secs(5),
            splice(&mut a, &mut b, Duration::from_millis(100)),
        )
        .await
        .expect("ended by the idle timeout");
        assert!(moved.idle_timeout);
    }
}
