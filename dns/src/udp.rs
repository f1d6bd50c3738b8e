//! The UDP side of the server: one socket per core on the same address
//! (`SO_REUSEPORT`: the kernel spreads queries over them), each served by
//! its own task.
//!
//! A worker receives a packet and hands it to the pre-encoded table of the
//! latest snapshot ([`crate::fast`]). The common query is answered there,
//! within the receive loop, with no allocation. Everything else (other
//! opcodes, unusual EDNS, names outside the zone, meta types, answers that
//! need truncation, and every query while the newest snapshot is still
//! being encoded) goes to hickory ([`hickory`]) in a task of its own, so a
//! forwarded query never holds up the loop.

mod hickory;

use std::io;
use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::sync::Arc;

use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::UdpSocket;
use tokio::task::JoinSet;
use tracing::{debug, warn};

use crate::fast::publish::FastReader;
use crate::router::ZoneRouter;

/// Most UDP workers, whatever the core count: past a few, the sockets only
/// cost memory.
const MAX_WORKERS: usize = 8;
/// Queries answered by hickory at once per worker; past it, a query is
/// dropped (the client retries), so a flood of forwarded names cannot grow
/// tasks without bound.
const MAX_SLOW_IN_FLIGHT: usize = 1024;
/// The largest UDP query read (RFC 6891 §6.2.5 allows up to 64 KiB, but a
/// query is a header, a question and an OPT).
const RECEIVE_BUFFER: usize = 4096;

/// Binds `workers` UDP sockets on `listen` with `SO_REUSEPORT`. With port 0
/// the first socket picks the port and the others join it.
///
/// Returns them with the bound address.
///
/// # Errors
///
/// The operating system's reason when a socket cannot be bound.
pub(crate) fn bind(listen: SocketAddr, workers: usize) -> io::Result<(Vec<UdpSocket>, SocketAddr)> {
    let first = bind_one(listen)?;
    let addr = first.local_addr()?;
    let mut sockets = vec![first];
    for _ in 1..workers {
        sockets.push(bind_one(addr)?);
    }
    Ok((sockets, addr))
}

fn bind_one(addr: SocketAddr) -> io::Result<UdpSocket> {
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    socket.set_reuse_port(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    UdpSocket::from_std(socket.into())
}

/// How many UDP workers to run: one per core this process may use.
pub(crate) fn workers() -> usize {
    std::thread::available_parallelism()
        .map_or(1, NonZeroUsize::get)
        .min(MAX_WORKERS)
}

/// Serves `socket` until the task is aborted.
pub(crate) async fn serve(socket: UdpSocket, mut fast: FastReader, router: Arc<ZoneRouter>) {
    let socket = Arc::new(socket);
    let mut packet = vec![0u8; RECEIVE_BUFFER];
    let mut response = Vec::with_capacity(512);
    let mut slow = JoinSet::new();
    // Runs for the server's life; each turn handles one packet.
    loop {
        let (len, src) = match socket.recv_from(&mut packet).await {
            Ok(received) => received,
            Err(error) if recoverable(&error) => {
                debug!(%error, "UDP receive failed; going on");
                continue;
            }
            Err(error) => {
                warn!(%error, "DNS UDP socket failed; no longer answering on it");
                return;
            }
        };
        // RFC 1035 §4.2.1 replies go to the source; port 0 cannot be one.
        if src.port() == 0 {
            debug!(%src, "DNS query from port 0; dropped");
            continue;
        }
        let query = &packet[..len];
        if fast
            .current()
            .is_some_and(|t| t.respond(query, &mut response))
        {
            send(&socket, &response, src).await;
            continue;
        }
        while slow.try_join_next().is_some() {}
        if slow.len() >= MAX_SLOW_IN_FLIGHT {
            debug!(%src, "too many DNS queries in flight; dropped");
            continue;
        }
        let (socket, router, query) = (Arc::clone(&socket), Arc::clone(&router), query.to_vec());
        slow.spawn(async move {
            if let Some(response) = hickory::answer(&router, &query, src).await {
                send(&socket, &response, src).await;
            }
        });
    }
}

async fn send(socket: &UdpSocket, response: &[u8], dst: SocketAddr) {
    if let Err(error) = socket.send_to(response, dst).await {
        // The client's problem (gone, unreachable), not the server's.
        debug!(%dst, %error, "DNS response not sent");
    }
}

/// Errors a UDP socket reports about one datagram or one peer (ICMP
/// unreachable, a signal), after which it keeps working.
fn recoverable(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::Interrupted
            | io::ErrorKind::WouldBlock
    )
}

#[cfg(test)]
pub(crate) use hickory::answer as hickory_answer;
