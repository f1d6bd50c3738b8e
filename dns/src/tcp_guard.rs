//! DNS over TCP (RFC 7766), served here rather than by hickory's TCP
//! listener, which accepts without bound and keeps a connection as long as
//! it sends something: here unauthenticated load on the port is bounded.
//!
//! - A connection that has not yet had an answer is "new": at most
//!   [`LIMITS`]`.max_unauthenticated` are open, and a newcomer past that
//!   closes the oldest new one (`Unauthenticated::evicting`), so idle
//!   connections can never keep a real client out: it asks at once and is
//!   answered long before it is the oldest. A new connection that sends
//!   nothing for 10 s, or has no answer within 30 s, is closed.
//! - Every message must arrive whole within [`MESSAGE_TIMEOUT`] of its first
//!   byte, and the next one start within it (RFC 7766 §6.2.3: servers may
//!   close idle connections), so a slow writer is closed too.
//! - At most [`MAX_CONNECTIONS`] connections in all; past it, closed.
//!
//! Data flow: accept → admit under the guard → read one length-prefixed
//! message (RFC 1035 §4.2.2) → the same hickory path as UDP's slow path
//! ([`crate::udp::answer_over`]) → write the length-prefixed answer; queries
//! on one connection are answered in order.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use fedmesh_proto::transport::{ListenerLimits, Unauthenticated};
use hickory_server::net::xfer::Protocol;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tracing::debug;

use crate::counters::QueryCounters;
use crate::router::ZoneRouter;

/// Bounds on connections that have not had an answer yet.
const LIMITS: ListenerLimits = ListenerLimits {
    handshake_timeout: Duration::from_secs(10),
    idle_timeout: Duration::from_secs(10),
    unauthenticated_lifetime: Duration::from_secs(30),
    max_unauthenticated: 256,
};
/// All connections at once.
const MAX_CONNECTIONS: usize = 1024;
/// A message's deadline from the end of the previous one, and a write's.
const MESSAGE_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves DNS over TCP on `listener` until the task is aborted, counting
/// each response by its rcode in shard `counting.1` of `counting.0`.
pub(crate) async fn serve(
    listener: TcpListener,
    router: Arc<ZoneRouter>,
    counting: (Arc<QueryCounters>, usize),
) {
    let guard = Unauthenticated::evicting(LIMITS);
    let all = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let (tcp, remote) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(error) => {
                // Out of file descriptors, say: wait instead of spinning.
                debug!(%error, "DNS TCP accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(place) = all.clone().try_acquire_owned() else {
            debug!(%remote, "too many DNS TCP connections; closed");
            continue;
        };
        let Ok(stream) = guard.admit(tcp, remote, false) else {
            continue;
        };
        let (router, guard, counting) = (router.clone(), guard.clone(), counting.clone());
        tokio::spawn(async move {
            connection(stream, remote, &router, &guard, &counting).await;
            drop(place);
        });
    }
}

/// One connection's queries, in order, until it closes or a deadline ends it.
async fn connection<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    remote: SocketAddr,
    router: &ZoneRouter,
    guard: &Unauthenticated,
    counting: &(Arc<QueryCounters>, usize),
) {
    loop {
        let query = match tokio::time::timeout(MESSAGE_TIMEOUT, read_message(&mut stream)).await {
            Ok(Ok(Some(query))) => query,
            Ok(Ok(None)) => return,
            Ok(Err(error)) => {
                debug!(%remote, %error, "DNS TCP connection ended");
                return;
            }
            Err(_) => {
                debug!(%remote, "DNS TCP connection idle or slow; closed");
                return;
            }
        };
        let Some(answer) = crate::udp::answer_over(router, &query, remote, Protocol::Tcp).await
        else {
            continue;
        };
        counting.0.count_header(counting.1, &answer);
        let write = write_message(&mut stream, &answer);
        if !matches!(
            tokio::time::timeout(MESSAGE_TIMEOUT, write).await,
            Ok(Ok(()))
        ) {
            return;
        }
        // A client that asked and was answered is a real one.
        guard.mark_authenticated(remote);
    }
}

/// One message: a two-byte length, then that many bytes (RFC 1035
/// §4.2.2); `None` at a clean end of stream.
async fn read_message<S: AsyncRead + Unpin>(stream: &mut S) -> std::io::Result<Option<Vec<u8>>> {
    let mut len = [0u8; 2];
    match stream.read_exact(&mut len).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let mut message = vec![0u8; usize::from(u16::from_be_bytes(len))];
    stream.read_exact(&mut message).await?;
    Ok(Some(message))
}

async fn write_message<S: AsyncWrite + Unpin>(
    stream: &mut S,
    message: &[u8],
) -> std::io::Result<()> {
    // An answer over TCP is encoded to at most 65 535 octets.
    let len = u16::try_from(message.len()).unwrap_or(u16::MAX);
    let mut framed = Vec::with_capacity(message.len() + 2);
    framed.extend_from_slice(&len.to_be_bytes());
    framed.extend_from_slice(&message[..usize::from(len)]);
    stream.write_all(&framed).await?;
    stream.flush().await
}

#[cfg(test)]
mod tests;
