//! One pooled connection: the dial (TCP, TLS 1.3 with ALPN `h2`, HTTP/2
//! preface), the task that drives it, and its keepalive.
//!
//! The pool keeps a [`Conn`] (the `SendRequest` handle plus shared state)
//! per connection. The driver task owns the h2 `Connection` future and
//! marks the shared state dead when it ends; the pool drops dead entries.
//! Dropping every `SendRequest` makes h2 send GOAWAY once the last stream
//! ends, which is how [`PeerPool::close`](super::PeerPool::close) drains.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use h2::client::SendRequest;
use h2::{Ping, PingPong};
use rustls::HandshakeKind;
use rustls_pki_types::ServerName;
use tokio::net::TcpStream;
use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use tracing::{debug, warn};

use super::{ALPN_H2, PoolConfig, TransportError, WindowConfig};

/// Produces the client TLS configuration for each new connection (so a
/// renewed certificate is used by the next one). Its ALPN list must offer
/// `h2`.
pub type TlsSource =
    Arc<dyn Fn() -> Result<Arc<rustls::ClientConfig>, TransportError> + Send + Sync>;

/// Monotonic counters updated by dials.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(super) tcp_connects: AtomicU64,
    pub(super) tls_full: AtomicU64,
    pub(super) tls_resumed: AtomicU64,
}

impl Counters {
    pub(crate) fn tcp_connect(&self) {
        self.tcp_connects.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn tls_handshake(&self, resumed: bool) {
        let counter = if resumed {
            &self.tls_resumed
        } else {
            &self.tls_full
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// State a connection shares between the pool, its streams and its task.
#[derive(Debug)]
pub(crate) struct ConnShared {
    /// Pool-unique id, for logs.
    pub(crate) id: u64,
    /// Streams open on it (see [`StreamSlot`](super::stream::StreamSlot)).
    pub(crate) streams: Arc<AtomicUsize>,
    /// GOAWAY seen or close requested: no new streams.
    draining: AtomicBool,
    /// The driver task ended: the connection is gone.
    dead: AtomicBool,
    /// Wakes the driver to stop after the close grace.
    closing: Notify,
    /// The connection's one user PING slot (h2 allows one in flight).
    ping: tokio::sync::Mutex<PingPong>,
}

impl ConnShared {
    /// True while new streams may go on this connection.
    pub(crate) fn is_live(&self) -> bool {
        !self.draining.load(Ordering::Acquire) && !self.dead.load(Ordering::Acquire)
    }

    /// True once the driver task ended.
    pub(crate) fn is_dead(&self) -> bool {
        self.dead.load(Ordering::Acquire)
    }

    /// Takes no more streams (GOAWAY received or the pool closes).
    pub(crate) fn drain(&self) {
        self.draining.store(true, Ordering::Release);
    }

    /// Asks the driver to stop once open streams end or the grace passes.
    pub(crate) fn close(&self) {
        self.drain();
        self.closing.notify_one();
    }

    /// One PING round trip (RFC 9113 §6.7) bounded by `timeout`.
    pub(crate) async fn ping(
        &self,
        addr: &str,
        timeout: Duration,
    ) -> Result<Duration, TransportError> {
        let expired = || TransportError::PingTimeout {
            addr: addr.to_owned(),
            timeout,
        };
        let deadline = Instant::now() + timeout;
        let mut pong = tokio::time::timeout_at(deadline, self.ping.lock())
            .await
            .map_err(|_| expired())?;
        let start = Instant::now();
        match tokio::time::timeout_at(deadline, pong.ping(Ping::opaque())).await {
            Ok(Ok(_pong)) => Ok(start.elapsed()),
            Ok(Err(source)) => Err(TransportError::ConnectionLost { source }),
            Err(_) => Err(expired()),
        }
    }
}

/// A pooled connection: the handle that opens streams and its shared state.
#[derive(Debug)]
pub(crate) struct Conn {
    pub(crate) send: SendRequest<Bytes>,
    pub(crate) shared: Arc<ConnShared>,
}

impl Conn {
    /// Streams this connection may carry: the pool's limit, or the peer's
    /// SETTINGS_MAX_CONCURRENT_STREAMS when lower (RFC 9113 §6.5.2).
    pub(crate) fn stream_limit(&self, config: &PoolConfig) -> usize {
        config
            .max_streams_per_connection
            .min(self.send.current_max_send_streams())
    }

    /// Streams open now.
    pub(crate) fn load(&self) -> usize {
        self.shared.streams.load(Ordering::Acquire)
    }
}

/// What a dial needs, borrowed from the pool.
pub(crate) struct DialTarget<'a> {
    pub(crate) addr: &'a str,
    pub(crate) server_name: &'a ServerName<'static>,
    pub(crate) tls: &'a TlsSource,
    pub(crate) config: &'a PoolConfig,
    pub(crate) counters: &'a Counters,
}

/// Dials one connection and spawns its driver; bounded by the pool's
/// connect timeout.
pub(crate) async fn dial(target: DialTarget<'_>, id: u64) -> Result<Conn, TransportError> {
    let timeout = target.config.connect_timeout;
    match tokio::time::timeout(timeout, dial_inner(&target, id)).await {
        Ok(result) => result,
        Err(_) => Err(TransportError::DialTimeout {
            addr: target.addr.to_owned(),
        }),
    }
}

async fn dial_inner(target: &DialTarget<'_>, id: u64) -> Result<Conn, TransportError> {
    let addr = target.addr;
    // Called per connection, so a renewed certificate is used from the next
    // connection on.
    let tls = (target.tls)()?;
    let tcp = TcpStream::connect(addr)
        .await
        .map_err(|source| TransportError::Dial {
            addr: addr.to_owned(),
            source,
        })?;
    target.counters.tcp_connect();
    // Small writes (CONNECT headers, PING, interactive bytes) must not wait
    // for Nagle.
    if let Err(error) = tcp.set_nodelay(true) {
        debug!(peer = addr, %error, "TCP_NODELAY not set");
    }
    let tls_stream = TlsConnector::from(tls)
        .connect(target.server_name.clone(), tcp)
        .await
        .map_err(|source| TransportError::Tls {
            addr: addr.to_owned(),
            source,
        })?;
    let session = tls_stream.get_ref().1;
    target
        .counters
        .tls_handshake(session.handshake_kind() == Some(HandshakeKind::Resumed));
    if session.alpn_protocol() != Some(ALPN_H2) {
        let got = session
            .alpn_protocol()
            .map(|p| String::from_utf8_lossy(p).into_owned());
        return Err(TransportError::Alpn {
            addr: addr.to_owned(),
            got,
        });
    }
    handshake(tls_stream, target, id).await
}

/// The HTTP/2 client preface on an established TLS stream, then the driver.
async fn handshake(
    io: TlsStream<TcpStream>,
    target: &DialTarget<'_>,
    id: u64,
) -> Result<Conn, TransportError> {
    let (send, mut connection) = client_builder(&target.config.window)
        .handshake::<_, Bytes>(io)
        .await
        .map_err(|source| TransportError::Handshake {
            addr: target.addr.to_owned(),
            source,
        })?;
    // The PING handle must be taken before the connection moves into its task.
    let Some(ping) = connection.ping_pong() else {
        return Err(TransportError::Handshake {
            addr: target.addr.to_owned(),
            source: h2::Error::from(h2::Reason::INTERNAL_ERROR),
        });
    };
    let shared = Arc::new(ConnShared {
        id,
        streams: Arc::new(AtomicUsize::new(0)),
        draining: AtomicBool::new(false),
        dead: AtomicBool::new(false),
        closing: Notify::new(),
        ping: tokio::sync::Mutex::new(ping),
    });
    let driver = Driver {
        addr: target.addr.to_owned(),
        shared: Arc::clone(&shared),
        grace: target.config.close_grace,
        interval: target.config.keepalive_interval,
        timeout: target.config.keepalive_timeout,
    };
    tokio::spawn(driver.run(connection));
    Ok(Conn { send, shared })
}

/// h2 client settings from the window configuration.
fn client_builder(window: &WindowConfig) -> h2::client::Builder {
    let mut builder = h2::client::Builder::new();
    builder
        .initial_window_size(window.stream_window)
        .initial_connection_window_size(window.connection_window)
        .max_frame_size(window.max_frame_size)
        .max_send_buffer_size(window.max_send_buffer)
        // The pool opens CONNECT streams only; the peer never pushes.
        .enable_push(false);
    builder
}

/// Drives one h2 client connection until it ends.
struct Driver {
    addr: String,
    shared: Arc<ConnShared>,
    grace: Duration,
    interval: Duration,
    timeout: Duration,
}

impl Driver {
    async fn run<T>(self, connection: h2::client::Connection<T, Bytes>)
    where
        T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
    {
        tokio::pin!(connection);
        let result = tokio::select! {
            result = &mut connection => Some(result),
            // The keepalive PINGs ride this same poll; it returns only when
            // the peer stopped answering, and then the connection is dropped.
            () = keepalive(&self.addr, &self.shared, self.interval, self.timeout) => None,
            () = self.shared.closing.notified() => {
                // Closing: the pool dropped its SendRequest, so h2 sends
                // GOAWAY once the open streams end; they get `grace`.
                tokio::time::timeout(self.grace, &mut connection).await.ok()
            }
        };
        match result {
            Some(Ok(())) => {
                debug!(peer = %self.addr, conn = self.shared.id, "peer connection closed")
            }
            Some(Err(error)) => {
                warn!(peer = %self.addr, conn = self.shared.id, %error, "peer connection failed")
            }
            None => {
                debug!(peer = %self.addr, conn = self.shared.id, "peer connection dropped after close grace")
            }
        }
        self.shared.drain();
        self.shared.dead.store(true, Ordering::Release);
    }
}

/// Pings the connection every `interval`, so NAT bindings stay (also for
/// tunnels that carry no bytes for long) and a dead peer is noticed;
/// returns when a PING fails. PING ACKs go ahead of DATA (h2 writes them
/// first), so a busy connection still answers within `timeout`.
async fn keepalive(addr: &str, shared: &ConnShared, interval: Duration, timeout: Duration) {
    // Runs as long as the connection: the driver drops it with the
    // connection, and a failed PING ends it.
    loop {
        tokio::time::sleep(interval).await;
        if let Err(error) = shared.ping(addr, timeout).await {
            warn!(peer = %addr, conn = shared.id, %error, "keepalive PING failed; dropping connection");
            return;
        }
    }
}
