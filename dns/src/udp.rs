//! The UDP side of the server: one socket per core on the same address
//! (`SO_REUSEPORT`: the kernel spreads queries over them), each served by
//! a thread of its own that moves queries and answers in batches, one
//! `recvmmsg` and one `sendmmsg` per batch (`batch`).
//!
//! A worker hands each packet of a batch to the pre-encoded table of the
//! latest snapshot ([`crate::fast`]). The common query is answered there,
//! on the worker thread, with no allocation per query. Everything else (other
//! opcodes, unusual EDNS, names outside the zone, meta types, answers that
//! need truncation, and every query while the newest snapshot is still
//! being encoded) goes to hickory ([`hickory`]) as a task on the tokio
//! runtime, so a forwarded query never holds up the batch; that task sends
//! its own answer.

mod batch;
mod hickory;

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::num::NonZeroUsize;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use socket2::{Domain, Protocol, Socket, Type};
use tokio::runtime::Handle;
use tracing::{debug, warn};

use crate::counters::QueryCounters;
use crate::fast::publish::FastReader;
use crate::router::ZoneRouter;
use batch::Batch;

/// Most UDP workers, whatever the core count: past a few, the sockets only
/// cost memory.
const MAX_WORKERS: usize = 8;
/// Queries answered by hickory at once per worker; past it, a query is
/// dropped (the client retries), so a flood of forwarded names cannot grow
/// tasks without bound.
const MAX_SLOW_IN_FLIGHT: usize = 1024;
/// How often a worker blocked on an idle socket checks whether to stop.
const STOP_POLL: Duration = Duration::from_millis(100);

/// Binds `workers` UDP sockets on `listen` with `SO_REUSEPORT`. With port 0
/// the first socket picks the port and the others join it. Returns them
/// with the bound address.
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
    socket.bind(&addr.into())?;
    let socket = UdpSocket::from(socket);
    // Blocking with a timeout: the worker sleeps in the kernel while idle
    // and still sees a stop request.
    socket.set_read_timeout(Some(STOP_POLL))?;
    Ok(socket)
}

/// How many UDP workers to run: one per core this process may use.
pub(crate) fn workers() -> usize {
    std::thread::available_parallelism()
        .map_or(1, NonZeroUsize::get)
        .min(MAX_WORKERS)
}

/// A running UDP worker thread; dropping it asks the thread to stop (it
/// does within [`STOP_POLL`]).
#[derive(Debug)]
pub(crate) struct Worker {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Worker {
    /// Starts serving `socket` on a new thread, handing the slow path to
    /// tasks on `runtime`; every response sent is counted in `counts`'
    /// shard `shard`.
    ///
    /// # Errors
    ///
    /// The operating system's reason when the thread cannot be started.
    pub(crate) fn spawn(
        socket: UdpSocket,
        fast: FastReader,
        router: Arc<ZoneRouter>,
        runtime: Handle,
        (counts, shard): (Arc<QueryCounters>, usize),
    ) -> io::Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let state = Serving {
            socket: Arc::new(socket),
            fast,
            router,
            runtime,
            stop: Arc::clone(&stop),
            slow: Arc::new(AtomicUsize::new(0)),
            counts,
            shard,
        };
        let thread = std::thread::Builder::new()
            .name("dns-udp".into())
            .spawn(move || state.run())?;
        Ok(Self {
            stop,
            thread: Some(thread),
        })
    }

    /// Stops the thread and waits for it to close its socket.
    pub(crate) async fn stop(mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            // Joining blocks for up to STOP_POLL: not on a runtime thread.
            let joined = tokio::task::spawn_blocking(move || thread.join()).await;
            if !matches!(joined, Ok(Ok(()))) {
                warn!("a DNS UDP worker ended with a panic");
            }
        }
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// What a worker thread holds.
struct Serving {
    socket: Arc<UdpSocket>,
    fast: FastReader,
    router: Arc<ZoneRouter>,
    runtime: Handle,
    stop: Arc<AtomicBool>,
    /// Slow-path tasks in flight.
    slow: Arc<AtomicUsize>,
    /// Responses sent, by rcode; this worker counts into `shard`.
    counts: Arc<QueryCounters>,
    shard: usize,
}

impl Serving {
    fn run(mut self) {
        let mut batch = Batch::new();
        // Runs until stopped; each turn handles one batch, and an idle
        // socket wakes the thread every STOP_POLL.
        while !self.stop.load(Ordering::Relaxed) {
            match batch.receive(&self.socket) {
                Ok(()) => {}
                Err(error) if recoverable(&error) => continue,
                Err(error) => {
                    warn!(%error, "DNS UDP socket failed; no longer answering on it");
                    return;
                }
            }
            let table = self.fast.current().map(Arc::clone);
            let warm = |query: &[u8]| {
                if let Some(table) = &table {
                    table.warm(query);
                }
            };
            batch.answer(warm, |query, src, out| self.answer(query, src, out));
            batch.send(&self.socket);
        }
    }

    /// Answers `query` from `src` into `out` on the fast path (`true`), or
    /// hands it to hickory (`false`).
    fn answer(&mut self, query: &[u8], src: SocketAddr, out: &mut Vec<u8>) -> bool {
        // RFC 1035 §4.2.1 replies go to the source; port 0 cannot be one.
        if src.port() == 0 {
            debug!(%src, "DNS query from port 0; dropped");
            return false;
        }
        if self.fast.current().is_some_and(|t| t.respond(query, out)) {
            // The fast path never sets an extended (EDNS) code.
            self.counts.count_header(self.shard, out);
            return true;
        }
        if self.slow.fetch_add(1, Ordering::Relaxed) >= MAX_SLOW_IN_FLIGHT {
            self.slow.fetch_sub(1, Ordering::Relaxed);
            debug!(%src, "too many DNS queries in flight; dropped");
            return false;
        }
        let (socket, router, slow) = (
            Arc::clone(&self.socket),
            Arc::clone(&self.router),
            Arc::clone(&self.slow),
        );
        let (counts, shard) = (Arc::clone(&self.counts), self.shard);
        let query = query.to_vec();
        self.runtime.spawn(async move {
            if let Some(response) = hickory::answer(&router, &query, src).await {
                batch::send_one(&socket, &response, src);
                count_decoded(&counts, shard, &response);
            }
            slow.fetch_sub(1, Ordering::Relaxed);
        });
        false
    }
}

/// Counts a slow-path response by its full response code: decoding joins
/// the header's 4 bits with the OPT record's upper 8 (RFC 6891 §6.1.3), so
/// BADVERS is told from NOERROR.
fn count_decoded(counts: &QueryCounters, shard: usize, response: &[u8]) {
    match hickory_proto::op::Message::from_vec(response) {
        Ok(message) => counts.count(shard, u16::from(message.metadata.response_code)),
        Err(_) => counts.count_header(shard, response),
    }
}

/// Errors a UDP socket reports about one datagram or one peer (ICMP
/// unreachable, a signal), or an idle timeout, after which it keeps
/// working.
fn recoverable(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::Interrupted
            | io::ErrorKind::WouldBlock
            | io::ErrorKind::TimedOut
    )
}

/// hickory's path for one UDP packet, also for `offline` and the tests.
pub(crate) use hickory::answer as hickory_answer;
pub(crate) use hickory::answer_over;
