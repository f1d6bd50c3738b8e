//! The splice between a TCP socket and a pooled CONNECT stream
//! ([`Tunnel`]), moving [`Bytes`] instead of copying through read buffers.
//!
//! The generic [`super::splice`] copies twice per direction on this path:
//! into its own buffer, then into the `Bytes` that h2 frames (tunnel side),
//! or out of h2's `Bytes` into its buffer (socket side), in 8–16 KiB steps.
//! Here socket reads land in a fresh buffer that becomes the DATA frame
//! itself, up to [`MAX_READ`] at a time (one frame of the transport's
//! 64 KiB `max_frame_size`), and each received DATA frame is written to the
//! socket as it is. Nothing is held while a connection is idle: a read
//! buffer is allocated only once the socket is readable, and handed to h2
//! with the data, so 10 000 idle connections cost no buffers.
//!
//! Flow control is kept both ways: a write into the tunnel waits for the
//! peer's window (RFC 9113 §5.2), and a received frame's window goes back
//! only after the socket took its bytes, so a slow reader on either end
//! stalls its sender instead of growing a buffer. A socket FIN becomes
//! END_STREAM and END_STREAM a socket shutdown (RFC 9113 §8.5); a reset or
//! error on either side ends both (dropping the tunnel resets its stream).

use std::future::poll_fn;
use std::io;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use h2::{RecvStream, SendStream};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::net::tcp::{ReadHalf, WriteHalf};

use super::Moved;
use super::activity::Seen;
use crate::metrics::{ByteCounter, ByteMeters};
use crate::transport::{Tunnel, h2_to_io as h2_io};

/// Most bytes taken from the socket per read: one DATA frame at the
/// transport's `max_frame_size`.
const MAX_READ: usize = 64 << 10;
/// The first read of a burst: enough for a typical request or response, so
/// small messages do not each pin a frame-sized allocation until h2 has
/// written them.
const FIRST_READ: usize = 16 << 10;

/// Which side of the connection the socket is, for the byte meters: the
/// meters' `up` counts bytes read from the first side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TunnelSide {
    /// The socket is the first side (the egress: client socket → tunnel).
    SocketFirst,
    /// The tunnel is the first side (the ingress: tunnel → endpoint).
    TunnelFirst,
}

/// Splices `socket` and `tunnel` until both directions are done, either
/// fails, or nothing moved for `idle`. `Moved::up` counts bytes read from
/// the first side as `side` says, as [`super::splice`] does.
pub async fn splice_tunnel(
    socket: &mut TcpStream,
    tunnel: &mut Tunnel,
    side: TunnelSide,
    idle: Duration,
    meters: &ByteMeters,
) -> Moved {
    let (from_socket, from_tunnel) = match side {
        TunnelSide::SocketFirst => (&meters.up, &meters.down),
        TunnelSide::TunnelFirst => (&meters.down, &meters.up),
    };
    let seen = Seen::default();
    let (read, write) = socket.split();
    let (send, recv, pending) = tunnel.halves();
    let mut moved = (0u64, 0u64);
    let up = socket_to_tunnel(read, send, from_socket, &seen, &mut moved.0);
    let down = tunnel_to_socket(recv, write, pending, from_tunnel, &seen, &mut moved.1);
    let idle_timeout = run_both(up, down, &seen, idle).await;
    let (socket_bytes, tunnel_bytes) = moved;
    let (up, down) = match side {
        TunnelSide::SocketFirst => (socket_bytes, tunnel_bytes),
        TunnelSide::TunnelFirst => (tunnel_bytes, socket_bytes),
    };
    Moved {
        up,
        down,
        idle_timeout,
    }
}

/// Drives both directions; true when it stopped for the idle timeout.
async fn run_both(
    up: impl Future<Output = io::Result<()>>,
    down: impl Future<Output = io::Result<()>>,
    seen: &Seen,
    idle: Duration,
) -> bool {
    tokio::pin!(up, down);
    let (mut up_done, mut down_done) = (false, false);
    let check = (idle / 4).max(Duration::from_millis(10));
    // Bounded: every turn ends one direction, returns, or waits a check.
    while !(up_done && down_done) {
        tokio::select! {
            r = &mut up, if !up_done => {
                if r.is_err() {
                    return false;
                }
                up_done = true;
            }
            r = &mut down, if !down_done => {
                if r.is_err() {
                    return false;
                }
                down_done = true;
            }
            () = tokio::time::sleep(check) => {
                if seen.idle_for() >= idle {
                    return true;
                }
            }
        }
    }
    false
}

/// Socket → tunnel: each read becomes one DATA frame, sent within the
/// peer's window; the socket's FIN becomes END_STREAM.
async fn socket_to_tunnel(
    read: ReadHalf<'_>,
    send: &mut SendStream<Bytes>,
    meter: &ByteCounter,
    seen: &Seen,
    total: &mut u64,
) -> io::Result<()> {
    let mut size = FIRST_READ;
    loop {
        read.readable().await?;
        let mut buf = BytesMut::with_capacity(size);
        let n = match read.try_read_buf(&mut buf) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            Err(e) => return Err(e),
        };
        if n == 0 {
            // RFC 9113 §8.5: the client's FIN is the stream's END_STREAM.
            send.reserve_capacity(0);
            return send.send_data(Bytes::new(), true).map_err(h2_io);
        }
        *total += n as u64;
        meter.inc_by(n as u64);
        seen.touch();
        // A full buffer means a burst: read the next at frame size.
        size = if n == size { MAX_READ } else { FIRST_READ };
        send_within_window(send, buf.freeze()).await?;
    }
}

/// Sends `data` as DATA frames no larger than the window h2 grants.
async fn send_within_window(send: &mut SendStream<Bytes>, mut data: Bytes) -> io::Result<()> {
    // Bounded by the data: every granted turn sends at least one byte.
    while !data.is_empty() {
        send.reserve_capacity(data.len());
        match poll_fn(|cx| send.poll_capacity(cx)).await {
            Some(Ok(0)) => continue,
            Some(Ok(granted)) => {
                let chunk = data.split_to(granted.min(data.len()));
                send.send_data(chunk, false).map_err(h2_io)?;
            }
            Some(Err(error)) => return Err(h2_io(error)),
            None => return Err(io::ErrorKind::ConnectionReset.into()),
        }
    }
    Ok(())
}

/// Tunnel → socket: each DATA frame is written as it came; its window goes
/// back once written; END_STREAM becomes the socket's shutdown.
async fn tunnel_to_socket(
    recv: &mut RecvStream,
    mut write: WriteHalf<'_>,
    pending: Bytes,
    meter: &ByteCounter,
    seen: &Seen,
    total: &mut u64,
) -> io::Result<()> {
    if !pending.is_empty() {
        write_frame(recv, &mut write, pending, meter, seen, total).await?;
    }
    loop {
        match poll_fn(|cx| recv.poll_data(cx)).await {
            Some(Ok(data)) => write_frame(recv, &mut write, data, meter, seen, total).await?,
            Some(Err(error)) => return Err(h2_io(error)),
            None => return write.shutdown().await,
        }
    }
}

async fn write_frame(
    recv: &mut RecvStream,
    write: &mut WriteHalf<'_>,
    data: Bytes,
    meter: &ByteCounter,
    seen: &Seen,
    total: &mut u64,
) -> io::Result<()> {
    if data.is_empty() {
        return Ok(());
    }
    let n = data.len();
    *total += n as u64;
    meter.inc_by(n as u64);
    seen.touch();
    write.write_all(&data).await?;
    // RFC 9113 §6.9: the window goes back only once the bytes left.
    let _ = recv.flow_control().release_capacity(n);
    Ok(())
}

#[cfg(test)]
mod tests;
