//! A delaying TCP relay: the latency the test kernel cannot add (no `tc
//! netem`), put in front of a peer's advertised address.
//!
//! [`Relay::start`] listens on one address and carries each accepted
//! connection to one upstream address, holding every chunk of bytes for
//! `delay` in each direction before writing it on. Chunks are pipelined
//! (a chunk read at `t` is written at `t + delay`, whatever came before),
//! so the relay adds latency, not a bandwidth cap. It is bounded — at most
//! [`MAX_CONNECTIONS`] connections at once and [`QUEUED_CHUNKS`] chunks in
//! flight per direction — and [`Relay::stop`] (or dropping it) closes the
//! listener and every relayed connection.
//!
//! The delay can be changed while the relay runs ([`Relay::set_delay`]); it
//! applies to every chunk read after the change, on open connections too,
//! so a long-lived connection through the relay sees the new round trip.
//! Connecting to the relay is a loopback handshake, which costs no round
//! trip; [`Relay::start_with_handshake`] adds it back: a new connection's
//! bytes towards the upstream are held one extra round trip after the
//! accept, as if the client had waited for the SYN-ACK (RFC 9293 §3.5) —
//! without it a request sent at once would arrive a round trip early.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;

/// Connections relayed at once; more wait in the listen backlog.
pub const MAX_CONNECTIONS: usize = 256;
/// Chunks held per direction of one connection before reading pauses.
pub const QUEUED_CHUNKS: usize = 64;
/// Largest chunk read at once.
const CHUNK: usize = 16 * 1024;
/// How long one upstream connect may take.
const UPSTREAM_CONNECT: Duration = Duration::from_secs(5);

/// A running relay; stops when dropped.
#[derive(Debug)]
pub struct Relay {
    addr: SocketAddr,
    accepted: Arc<AtomicU64>,
    delay: Arc<AtomicU64>,
    stop: watch::Sender<bool>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Relay {
    /// Listens on `listen` and relays to `upstream`, `delay` each way.
    ///
    /// # Errors
    /// When `listen` cannot be bound.
    pub async fn start(
        listen: SocketAddr,
        upstream: SocketAddr,
        delay: Duration,
    ) -> std::io::Result<Self> {
        Self::spawn(listen, upstream, delay, false).await
    }

    /// As [`Relay::start`], and also charges each new connection the round
    /// trip of a TCP handshake: bytes from the client reach the upstream no
    /// sooner than three one-way delays after the accept.
    ///
    /// # Errors
    /// When `listen` cannot be bound.
    pub async fn start_with_handshake(
        listen: SocketAddr,
        upstream: SocketAddr,
        delay: Duration,
    ) -> std::io::Result<Self> {
        Self::spawn(listen, upstream, delay, true).await
    }

    async fn spawn(
        listen: SocketAddr,
        upstream: SocketAddr,
        delay: Duration,
        handshake: bool,
    ) -> std::io::Result<Self> {
        let listener = TcpListener::bind(listen).await?;
        let addr = listener.local_addr()?;
        let accepted = Arc::new(AtomicU64::new(0));
        let delay = Arc::new(AtomicU64::new(nanos(delay)));
        let (stop, stopped) = watch::channel(false);
        let link = Link {
            upstream,
            delay: delay.clone(),
            handshake,
        };
        let task = tokio::spawn(accept_loop(listener, link, accepted.clone(), stopped));
        Ok(Self {
            addr,
            accepted,
            delay,
            stop,
            task: Some(task),
        })
    }

    /// Changes the one-way delay for every chunk read from now on, on new
    /// and open connections alike (chunks already held keep their time).
    pub fn set_delay(&self, delay: Duration) {
        self.delay.store(nanos(delay), Ordering::Relaxed);
    }

    /// The one-way delay now.
    pub fn delay(&self) -> Duration {
        Duration::from_nanos(self.delay.load(Ordering::Relaxed))
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> u64 {
        self.accepted.load(Ordering::Relaxed)
    }

    /// Closes the listener and every relayed connection, and waits for
    /// them to be gone.
    pub async fn stop(mut self) {
        let _ = self.stop.send(true);
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// What every relayed connection shares: where to, and how slow.
#[derive(Debug, Clone)]
struct Link {
    upstream: SocketAddr,
    /// One-way delay in nanoseconds, read for every chunk.
    delay: Arc<AtomicU64>,
    /// Charge new connections a handshake round trip.
    handshake: bool,
}

impl Link {
    fn delay(&self) -> Duration {
        Duration::from_nanos(self.delay.load(Ordering::Relaxed))
    }
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

async fn accept_loop(
    listener: TcpListener,
    link: Link,
    accepted: Arc<AtomicU64>,
    mut stopped: watch::Receiver<bool>,
) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    // Dropping the set (when this task ends or is aborted) aborts every
    // connection task, which closes both of its sockets.
    let mut connections = JoinSet::new();
    loop {
        let permit = tokio::select! {
            permit = slots.clone().acquire_owned() => permit,
            _ = stopped.wait_for(|s| *s) => return,
        };
        let Ok(permit) = permit else {
            return;
        };
        let conn = tokio::select! {
            conn = listener.accept() => conn,
            _ = stopped.wait_for(|s| *s) => return,
        };
        // Reap finished connections so the set stays small.
        while connections.try_join_next().is_some() {}
        let Ok((client, _)) = conn else {
            continue;
        };
        accepted.fetch_add(1, Ordering::Relaxed);
        let link = link.clone();
        connections.spawn(async move {
            relay_one(client, link).await;
            drop(permit);
        });
    }
}

/// Carries one connection both ways until both directions have ended.
async fn relay_one(client: TcpStream, link: Link) {
    // The client's SYN-ACK would arrive one round trip after its SYN; its
    // first bytes leave no sooner.
    let first = Instant::now() + link.delay() * 2 * u32::from(link.handshake);
    let connect = TcpStream::connect(link.upstream);
    let Ok(Ok(server)) = tokio::time::timeout(UPSTREAM_CONNECT, connect).await else {
        // The client sees its connection closed, as with a dead upstream.
        return;
    };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let (client_read, client_write) = client.into_split();
    let (server_read, server_write) = server.into_split();
    let now = Instant::now();
    tokio::join!(
        one_way(client_read, server_write, &link, first),
        one_way(server_read, client_write, &link, now),
    );
}

/// Reads chunks from `from` and writes each to `to` once it is the link's
/// delay old (counted from `not_before` at the earliest); a FIN is passed
/// on the same way, after the bytes before it.
async fn one_way(
    mut from: OwnedReadHalf,
    mut to: OwnedWriteHalf,
    link: &Link,
    not_before: Instant,
) {
    let (tx, mut rx) = mpsc::channel::<(Instant, Vec<u8>)>(QUEUED_CHUNKS);
    let reader = async move {
        let mut buf = vec![0u8; CHUNK];
        loop {
            let n = from.read(&mut buf).await.unwrap_or(0);
            // An empty chunk stands for the end of the stream.
            let chunk = buf.get(..n).unwrap_or_default().to_vec();
            let due = Instant::now().max(not_before) + link.delay();
            if tx.send((due, chunk)).await.is_err() || n == 0 {
                return;
            }
        }
    };
    let writer = async move {
        while let Some((due, chunk)) = rx.recv().await {
            tokio::time::sleep_until(due).await;
            if chunk.is_empty() || to.write_all(&chunk).await.is_err() {
                break;
            }
        }
        let _ = to.shutdown().await;
    };
    tokio::join!(reader, writer);
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncBufReadExt, BufReader};

    /// An echo server on loopback port 0.
    async fn echo() -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind echo");
        let addr = listener.local_addr().expect("echo addr");
        tokio::spawn(async move {
            while let Ok((mut conn, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let (mut r, mut w) = conn.split();
                    let _ = tokio::io::copy(&mut r, &mut w).await;
                });
            }
        });
        addr
    }

    /// A relay on loopback port 0 to `upstream`.
    async fn relay_to(upstream: SocketAddr, delay: Duration) -> Relay {
        Relay::start("127.0.0.1:0".parse().expect("addr"), upstream, delay)
            .await
            .expect("relay starts")
    }

    /// Reads `conn` to its end, which must come within 5 s.
    async fn read_to_end(conn: &mut TcpStream) -> std::io::Result<Vec<u8>> {
        let mut buf = Vec::new();
        tokio::time::timeout(Duration::from_secs(5), conn.read_to_end(&mut buf))
            .await
            .expect("the connection ends within 5 s")?;
        Ok(buf)
    }

    #[tokio::test]
    async fn bytes_pass_both_ways_and_take_at_least_the_delay_each_way() {
        let delay = Duration::from_millis(100);
        let relay = relay_to(echo().await, delay).await;
        let conn = TcpStream::connect(relay.addr()).await.expect("connect");
        let (r, mut w) = conn.into_split();
        let mut lines = BufReader::new(r).lines();
        for word in ["one", "two"] {
            let sent = Instant::now();
            w.write_all(format!("{word}\n").as_bytes())
                .await
                .expect("write");
            let line = lines.next_line().await.expect("read").expect("a line");
            assert_eq!(line, word);
            // A lower bound only: the relay held it once each way.
            assert!(sent.elapsed() >= delay * 2, "{:?}", sent.elapsed());
        }
        assert_eq!(relay.accepted(), 1);
    }

    /// Sends a line on `w` and reads it back from `lines`; how long it took.
    async fn echo_time(
        w: &mut OwnedWriteHalf,
        lines: &mut tokio::io::Lines<BufReader<OwnedReadHalf>>,
    ) -> Duration {
        let sent = Instant::now();
        w.write_all(b"x\n").await.expect("write");
        let line = lines.next_line().await.expect("read").expect("a line");
        assert_eq!(line, "x");
        sent.elapsed()
    }

    #[tokio::test]
    async fn a_new_delay_applies_to_connections_already_open() {
        let relay = relay_to(echo().await, Duration::from_millis(1)).await;
        let (r, mut w) = TcpStream::connect(relay.addr())
            .await
            .expect("connect")
            .into_split();
        let mut lines = BufReader::new(r).lines();
        echo_time(&mut w, &mut lines).await;
        let delay = Duration::from_millis(80);
        relay.set_delay(delay);
        assert_eq!(relay.delay(), delay);
        // A lower bound only: the open connection now waits the new delay.
        let took = echo_time(&mut w, &mut lines).await;
        assert!(took >= delay * 2, "{took:?}");
    }

    #[tokio::test]
    async fn with_handshake_the_first_bytes_wait_one_more_round_trip() {
        let delay = Duration::from_millis(50);
        let relay =
            Relay::start_with_handshake("127.0.0.1:0".parse().expect("addr"), echo().await, delay)
                .await
                .expect("relay starts");
        let (r, mut w) = TcpStream::connect(relay.addr())
            .await
            .expect("connect")
            .into_split();
        let mut lines = BufReader::new(r).lines();
        // Lower bounds only: the handshake's round trip, then the echo's.
        let first = echo_time(&mut w, &mut lines).await;
        assert!(first >= delay * 4, "{first:?}");
        let second = echo_time(&mut w, &mut lines).await;
        assert!(second >= delay * 2, "{second:?}");
    }

    #[tokio::test]
    async fn a_fin_is_passed_on_after_the_bytes_before_it() {
        let relay = relay_to(echo().await, Duration::from_millis(20)).await;
        let mut conn = TcpStream::connect(relay.addr()).await.expect("connect");
        conn.write_all(b"last words").await.expect("write");
        conn.shutdown().await.expect("shutdown");
        let back = read_to_end(&mut conn).await.expect("read");
        assert_eq!(back, b"last words");
    }

    #[tokio::test]
    async fn stop_closes_the_listener_and_open_connections() {
        let relay = relay_to(echo().await, Duration::from_millis(10)).await;
        let addr = relay.addr();
        let mut conn = TcpStream::connect(addr).await.expect("connect");
        conn.write_all(b"x").await.expect("write");
        let mut one = [0u8; 1];
        conn.read_exact(&mut one).await.expect("echoed");
        relay.stop().await;
        let rest = read_to_end(&mut conn).await;
        assert!(
            rest.map_or(true, |b| b.is_empty()),
            "no more bytes after stop"
        );
        assert!(
            TcpStream::connect(addr).await.is_err(),
            "nothing listens after stop"
        );
    }

    #[tokio::test]
    async fn a_dead_upstream_closes_the_client_connection() {
        // Bind then drop, so nothing listens on the port.
        let dead = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind")
            .local_addr()
            .expect("addr");
        let relay = relay_to(dead, Duration::from_millis(10)).await;
        let mut conn = TcpStream::connect(relay.addr()).await.expect("connect");
        let rest = read_to_end(&mut conn).await;
        assert!(rest.map_or(true, |b| b.is_empty()));
    }
}
