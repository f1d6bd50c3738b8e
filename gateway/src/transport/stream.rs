//! [`Tunnel`]: one CONNECT stream as `AsyncRead + AsyncWrite`.
//!
//! Reads take DATA frames from the h2 `RecvStream` and give the window back
//! only as the reader consumes bytes, so a slow reader stalls its sender
//! instead of growing a buffer (RFC 9113 §5.2). Writes ask for send capacity
//! first and send at most what was granted, so no more than the peer's window
//! (plus the connection's send buffer) is ever held in memory. Shutdown sends
//! an empty DATA frame with END_STREAM: a half-close, after which the other
//! direction keeps flowing (RFC 9113 §8.5: a TCP FIN maps to END_STREAM).
//! A RST_STREAM or a lost connection surfaces as `ConnectionReset`, never as
//! a clean EOF, so a truncated transfer cannot pass for a complete one.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use h2::{RecvStream, SendStream};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::h2_to_io;

/// Most bytes one `poll_write` asks capacity for: large enough for few
/// frames per call, small enough that one copy stays cheap.
const MAX_WRITE_CHUNK: usize = 256 << 10;

/// A bidirectional byte stream over one HTTP/2 CONNECT stream.
///
/// Dropping a tunnel whose stream is still open resets it (h2 sends
/// RST_STREAM CANCEL), which the other side reads as `ConnectionReset`.
pub struct Tunnel {
    send: SendStream<Bytes>,
    recv: RecvStream,
    /// Received bytes not yet handed to the reader (their window is not yet
    /// released).
    pending: Bytes,
    /// END_STREAM sent: no more writes.
    write_closed: bool,
    /// Keeps the pool's count of open streams on this connection.
    _slot: Option<StreamSlot>,
}

impl std::fmt::Debug for Tunnel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tunnel")
            .field("pending", &self.pending.len())
            .field("write_closed", &self.write_closed)
            .finish_non_exhaustive()
    }
}

impl Tunnel {
    /// A tunnel over an opened stream; `slot` counts it in its pool.
    pub(crate) fn new(
        send: SendStream<Bytes>,
        recv: RecvStream,
        slot: Option<StreamSlot>,
    ) -> Tunnel {
        Tunnel {
            send,
            recv,
            pending: Bytes::new(),
            write_closed: false,
            _slot: slot,
        }
    }

    /// Resets the stream with `reason` (RST_STREAM), for a caller that
    /// abandons the transfer and wants the peer to know at once.
    pub fn reset(&mut self, reason: h2::Reason) {
        self.send.send_reset(reason);
    }

    /// The stream's two halves and the bytes already received but not yet
    /// read (their window not yet released), for a splice that moves
    /// [`Bytes`] without copying them through a read buffer
    /// ([`crate::splice::splice_tunnel`]). After this the tunnel is only
    /// good for dropping.
    pub(crate) fn halves(&mut self) -> (&mut SendStream<Bytes>, &mut RecvStream, Bytes) {
        let pending = std::mem::take(&mut self.pending);
        (&mut self.send, &mut self.recv, pending)
    }

    /// Hands out up to `buf.remaining()` pending bytes and releases their
    /// flow-control window.
    fn drain_pending(&mut self, buf: &mut ReadBuf<'_>) {
        let n = self.pending.len().min(buf.remaining());
        let chunk = self.pending.split_to(n);
        buf.put_slice(&chunk);
        // RFC 9113 §6.9: the window goes back only once the bytes left h2's
        // buffer. An error means the stream is gone; the next poll reports it.
        let _ = self.recv.flow_control().release_capacity(n);
    }

    /// Why writing is impossible once h2 reports the send side closed.
    fn poll_write_error(&mut self, cx: &mut Context<'_>) -> Poll<io::Error> {
        match ready!(self.send.poll_reset(cx)) {
            Ok(reason) => Poll::Ready(io::Error::new(
                io::ErrorKind::ConnectionReset,
                h2::Error::from(reason),
            )),
            Err(error) => Poll::Ready(h2_to_io(error)),
        }
    }
}

impl AsyncRead for Tunnel {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if buf.remaining() == 0 {
            return Poll::Ready(Ok(()));
        }
        // Bounded: each turn either returns or takes one frame off the
        // stream; only empty DATA frames make it turn again.
        loop {
            if !this.pending.is_empty() {
                this.drain_pending(buf);
                return Poll::Ready(Ok(()));
            }
            match ready!(this.recv.poll_data(cx)) {
                Some(Ok(data)) => this.pending = data,
                Some(Err(error)) => return Poll::Ready(Err(h2_to_io(error))),
                // END_STREAM: the peer half-closed.
                None => return Poll::Ready(Ok(())),
            }
        }
    }
}

impl AsyncWrite for Tunnel {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        if this.write_closed {
            return Poll::Ready(Err(io::ErrorKind::BrokenPipe.into()));
        }
        // The reservation is a total that includes bytes still queued, so
        // this asks for more only once earlier writes have drained.
        this.send.reserve_capacity(buf.len().min(MAX_WRITE_CHUNK));
        match ready!(this.send.poll_capacity(cx)) {
            Some(Ok(granted)) => {
                let n = granted.min(buf.len());
                let data = Bytes::copy_from_slice(&buf[..n]);
                match this.send.send_data(data, false) {
                    Ok(()) => Poll::Ready(Ok(n)),
                    Err(error) => Poll::Ready(Err(h2_to_io(error))),
                }
            }
            Some(Err(error)) => Poll::Ready(Err(h2_to_io(error))),
            // The send side is closed: reset by the peer or connection gone.
            None => this.poll_write_error(cx).map(Err),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // The connection task writes queued frames as soon as it can; there
        // is no per-stream flush in HTTP/2.
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.write_closed {
            return Poll::Ready(Ok(()));
        }
        this.write_closed = true;
        // RFC 9113 §8.5: END_STREAM is the tunnel's FIN; the receive side
        // stays open for the reply.
        this.send.reserve_capacity(0);
        match this.send.send_data(Bytes::new(), true) {
            Ok(()) => Poll::Ready(Ok(())),
            Err(error) => Poll::Ready(Err(h2_to_io(error))),
        }
    }
}

/// One counted stream on a pooled connection: the count drops when the
/// slot does, so the pool sees how loaded each connection is.
#[derive(Debug)]
pub(crate) struct StreamSlot(Arc<AtomicUsize>);

impl StreamSlot {
    /// Counts one more stream on `count`.
    pub(crate) fn take(count: &Arc<AtomicUsize>) -> StreamSlot {
        count.fetch_add(1, Ordering::AcqRel);
        StreamSlot(Arc::clone(count))
    }
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}
