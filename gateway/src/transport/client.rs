//! [`PeerPool`]: the warm connections to one peer gateway, shared by every
//! client connection the egress carries there.
//!
//! `open` picks the live connection with the fewest open streams; when all
//! carry `max_streams_per_connection` (or the peer's
//! SETTINGS_MAX_CONCURRENT_STREAMS) and fewer than `max_connections` are
//! live, it dials another. Only one dial is in flight per pool: concurrent
//! callers wait for it and then pick again, so a burst of first users opens
//! one connection, not one each. A failed dial starts an exponential backoff
//! with jitter; while it runs, `open` fails at once with
//! [`TransportError::Backoff`] so the egress fails over without waiting.
//!
//! A connection that received GOAWAY (the peer drains) takes no new streams;
//! its open streams finish, the peer closes it, and the pool forgets it.
//! Dialing and the per-connection task live in `dial.rs`;
//! the stream being opened is an [`Opening`].

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBackoff, ExponentialBuilder};
use bytes::Bytes;
use h2::SendStream;
use h2::client::{ResponseFuture, SendRequest};
use http::{HeaderMap, Method, Request, Uri};
use rustls_pki_types::ServerName;
use tokio::time::Instant;

pub use super::dial::TlsSource;
use super::dial::{Conn, ConnShared, Counters, DialTarget, dial};
use super::stream::StreamSlot;
use super::{PoolConfig, TransportError};

pub use super::opening::{Opening, Response};
pub use super::request::RequestStream;

/// Rounds of pick-or-dial one `open` makes beyond `max_connections`
/// before giving up; each dial (its own or another caller's) or refused
/// connection costs one, so this bounds the loop.
const EXTRA_ROUNDS: usize = 4;

/// Counters of a pool, for the gateway's metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PoolStats {
    /// TCP connections established to the peer gateway.
    pub tcp_connects: u64,
    /// TLS handshakes with full certificate exchange.
    pub tls_full: u64,
    /// TLS handshakes that resumed a session.
    pub tls_resumed: u64,
    /// Connections up now (including ones draining after GOAWAY).
    pub live_connections: usize,
    /// Streams open now over all connections.
    pub open_streams: usize,
}

/// Connections to one peer gateway.
pub struct PeerPool {
    addr: Arc<str>,
    server_name: ServerName<'static>,
    tls: TlsSource,
    config: PoolConfig,
    state: Mutex<PoolState>,
    /// Held for the whole of a dial: one dial in flight per pool.
    dial_lock: tokio::sync::Mutex<()>,
    counters: Counters,
}

impl std::fmt::Debug for PeerPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PeerPool")
            .field("addr", &self.addr)
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

struct PoolState {
    conns: Vec<Conn>,
    closed: bool,
    /// No dial before this instant (set by a failed dial).
    retry_at: Option<Instant>,
    backoff: ExponentialBackoff,
    /// Bumped by every dial outcome, so a caller that waited for the dial
    /// lock knows whether to look at the pool again instead of dialing.
    generation: u64,
    next_id: u64,
}

/// What `open` does next.
enum Pick {
    /// Put the stream on this connection (its slot is already counted).
    Use(SendRequest<Bytes>, Arc<ConnShared>, StreamSlot),
    /// Dial, unless the generation moved on meanwhile.
    Dial(u64),
}

impl PeerPool {
    /// A pool for the peer gateway at `addr` (`host:port`), verifying it as
    /// `server_name`. No connection is made until the first use.
    pub fn new(
        addr: String,
        server_name: ServerName<'static>,
        tls: TlsSource,
        config: PoolConfig,
    ) -> Arc<PeerPool> {
        let backoff = backoff(&config);
        Arc::new(PeerPool {
            addr: addr.into(),
            server_name,
            tls,
            config,
            state: Mutex::new(PoolState {
                conns: Vec::new(),
                closed: false,
                retry_at: None,
                backoff,
                generation: 0,
                next_id: 0,
            }),
            dial_lock: tokio::sync::Mutex::new(()),
            counters: Counters::default(),
        })
    }

    /// The peer gateway address.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// Opens a CONNECT stream for `authority` (`<port>.<svc>.<ns>.fedmesh`)
    /// with extra request `headers`, dialing first if no connection has
    /// room. Returns once the HEADERS are queued; the answer comes from
    /// [`Opening::response`].
    ///
    /// # Errors
    ///
    /// Every error here happened before the peer could act on the request
    /// ([`TransportError::is_before_request`]): an invalid authority, the
    /// pool closed, a failed dial, [`TransportError::Backoff`] right after
    /// one, or [`TransportError::OpenTimeout`] at `deadline`.
    pub async fn open(
        &self,
        authority: &str,
        headers: HeaderMap,
        deadline: Instant,
    ) -> Result<Opening, TransportError> {
        let uri = Uri::builder()
            .authority(authority)
            .build()
            .map_err(|source| TransportError::Authority {
                authority: authority.to_owned(),
                source,
            })?;
        let request = connect_request(&uri, &headers);
        let (response, stream, slot) = self.open_stream(&request, false, deadline).await?;
        Ok(Opening::new(
            Arc::clone(&self.addr),
            stream,
            response,
            slot,
            deadline,
        ))
    }

    /// Opens an ordinary HTTP/2 request stream (not CONNECT) with
    /// `request`'s head, END_STREAM set when `end_stream` (no body), on the
    /// least-loaded connection as [`PeerPool::open`] does; the HTTP-aware
    /// egress sends one per client request ([`crate::http`]).
    ///
    /// # Errors
    ///
    /// As [`PeerPool::open`]: every error happened before the peer could
    /// act on the request.
    pub async fn request(
        &self,
        request: &Request<()>,
        end_stream: bool,
        deadline: Instant,
    ) -> Result<RequestStream, TransportError> {
        let (response, send, slot) = self.open_stream(request, end_stream, deadline).await?;
        Ok(RequestStream {
            addr: Arc::clone(&self.addr),
            response,
            send,
            slot,
        })
    }

    /// Puts one stream with `request`'s head on a connection with room.
    async fn open_stream(
        &self,
        request: &Request<()>,
        end_stream: bool,
        deadline: Instant,
    ) -> Result<(ResponseFuture, SendStream<Bytes>, StreamSlot), TransportError> {
        let mut last = None;
        for _ in 0..self.config.max_connections + EXTRA_ROUNDS {
            let (send, shared, slot) = match self.pick()? {
                Pick::Use(send, shared, slot) => (send, shared, slot),
                Pick::Dial(generation) => {
                    self.dial_new(generation, deadline).await?;
                    continue;
                }
            };
            match self
                .start(send, clone_head(request), end_stream, deadline)
                .await
            {
                Ok((response, stream)) => return Ok((response, stream, slot)),
                Err(error @ TransportError::Refused { .. }) => {
                    // GOAWAY or a broken connection: no new streams there;
                    // the next round picks another or dials.
                    shared.drain();
                    last = Some(error);
                }
                Err(error) => return Err(error),
            }
        }
        Err(last.unwrap_or_else(|| self.open_timeout()))
    }

    /// One HTTP/2 PING round trip on a live connection; dials one only when
    /// none is up (the only time a probe causes a handshake).
    ///
    /// # Errors
    ///
    /// [`TransportError::PingTimeout`] without a PONG in `timeout` (the
    /// connection then takes no new streams), the dial errors of
    /// [`PeerPool::open`], or [`TransportError::ConnectionLost`].
    pub async fn ping(&self, timeout: Duration) -> Result<Duration, TransportError> {
        let deadline = Instant::now() + timeout;
        for _ in 0..EXTRA_ROUNDS {
            match self.ping_target()? {
                Ok(shared) => return self.ping_on(&shared, deadline).await,
                Err(generation) => self.dial_new(generation, deadline).await?,
            }
        }
        Err(self.open_timeout())
    }

    /// The least-loaded live connection, or the generation to dial at.
    fn ping_target(&self) -> Result<Result<Arc<ConnShared>, u64>, TransportError> {
        let mut state = self.lock();
        self.check_open(&state)?;
        prune(&mut state.conns);
        let best = state
            .conns
            .iter()
            .filter(|c| c.shared.is_live())
            .min_by_key(|c| c.load());
        match best {
            Some(conn) => Ok(Ok(Arc::clone(&conn.shared))),
            None => {
                self.check_backoff(&state)?;
                Ok(Err(state.generation))
            }
        }
    }

    /// Sends GOAWAY on every connection (once their open streams end, within
    /// the close grace) and refuses new streams from now on. Used when the
    /// peer leaves.
    pub fn close(&self) {
        let conns = {
            let mut state = self.lock();
            state.closed = true;
            std::mem::take(&mut state.conns)
        };
        // Dropping each SendRequest lets h2 send GOAWAY when idle.
        for conn in conns {
            conn.shared.close();
        }
    }

    /// Counters and gauges for metrics.
    pub fn stats(&self) -> PoolStats {
        let (live, streams) = {
            let state = self.lock();
            let up = state.conns.iter().filter(|c| !c.shared.is_dead());
            up.fold((0, 0), |(n, s), c| (n + 1, s + c.load()))
        };
        PoolStats {
            tcp_connects: self.counters.tcp_connects.load(Ordering::Relaxed),
            tls_full: self.counters.tls_full.load(Ordering::Relaxed),
            tls_resumed: self.counters.tls_resumed.load(Ordering::Relaxed),
            live_connections: live,
            open_streams: streams,
        }
    }

    fn lock(&self) -> MutexGuard<'_, PoolState> {
        // A panic while holding this lock leaves only counters and a list
        // behind, both still consistent: keep serving.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn check_open(&self, state: &PoolState) -> Result<(), TransportError> {
        if state.closed {
            return Err(TransportError::Closed {
                addr: self.addr.to_string(),
            });
        }
        Ok(())
    }

    fn check_backoff(&self, state: &PoolState) -> Result<(), TransportError> {
        match state.retry_at {
            Some(at) if at > Instant::now() => Err(TransportError::Backoff {
                addr: self.addr.to_string(),
                remaining: at - Instant::now(),
            }),
            _ => Ok(()),
        }
    }

    fn open_timeout(&self) -> TransportError {
        TransportError::OpenTimeout {
            addr: self.addr.to_string(),
        }
    }

    /// The least-loaded live connection with room, or a dial.
    fn pick(&self) -> Result<Pick, TransportError> {
        let mut state = self.lock();
        self.check_open(&state)?;
        prune(&mut state.conns);
        let live = state.conns.iter().filter(|c| c.shared.is_live());
        let may_grow = live.clone().count() < self.config.max_connections
            && self.check_backoff(&state).is_ok();
        match live.min_by_key(|c| c.load()) {
            // Room, or no other connection to be had (at the limit or in
            // backoff): at the peer's limit h2 queues the stream until one
            // ends (`SendRequest::ready`).
            Some(conn) if conn.load() < conn.stream_limit(&self.config) || !may_grow => {
                let slot = StreamSlot::take(&conn.shared.streams);
                Ok(Pick::Use(conn.send.clone(), Arc::clone(&conn.shared), slot))
            }
            Some(_) => Ok(Pick::Dial(state.generation)),
            None => {
                self.check_backoff(&state)?;
                Ok(Pick::Dial(state.generation))
            }
        }
    }

    /// Dials one connection unless another caller did since `seen`.
    async fn dial_new(&self, seen: u64, deadline: Instant) -> Result<(), TransportError> {
        let _dialing = tokio::time::timeout_at(deadline, self.dial_lock.lock())
            .await
            .map_err(|_| self.open_timeout())?;
        let id = {
            let mut state = self.lock();
            if state.generation != seen {
                return Ok(());
            }
            state.next_id += 1;
            state.next_id
        };
        let target = DialTarget {
            addr: &self.addr,
            server_name: &self.server_name,
            tls: &self.tls,
            config: &self.config,
            counters: &self.counters,
        };
        // The caller's deadline cuts the dial short without counting it as
        // the peer's failure (no backoff, nobody else's generation moves).
        let result = tokio::time::timeout_at(deadline, dial(target, id))
            .await
            .map_err(|_| self.open_timeout())?;
        self.dialed(result)
    }

    /// Records a dial's outcome.
    fn dialed(&self, result: Result<Conn, TransportError>) -> Result<(), TransportError> {
        let mut state = self.lock();
        state.generation += 1;
        match result {
            Ok(conn) if state.closed => {
                conn.shared.close();
                self.check_open(&state)
            }
            Ok(conn) => {
                state.conns.push(conn);
                state.retry_at = None;
                state.backoff = backoff(&self.config);
                Ok(())
            }
            Err(error) => {
                let delay = state.backoff.next().unwrap_or(self.config.backoff_max);
                state.retry_at = Some(Instant::now() + delay);
                Err(error)
            }
        }
    }

    /// Waits for the connection to take a stream and sends the HEADERS.
    async fn start(
        &self,
        send: SendRequest<Bytes>,
        request: Request<()>,
        end_stream: bool,
        deadline: Instant,
    ) -> Result<(ResponseFuture, SendStream<Bytes>), TransportError> {
        let mut send = match tokio::time::timeout_at(deadline, send.ready()).await {
            Ok(Ok(send)) => send,
            Ok(Err(source)) => return Err(self.not_taken(source)),
            Err(_) => return Err(self.open_timeout()),
        };
        // END_STREAM unset for CONNECT: the stream stays open for the
        // tunnel's bytes.
        send.send_request(request, end_stream)
            .map_err(|source| self.not_taken(source))
    }

    /// An error before the stream existed on the wire: the connection is
    /// going away or broken (retry elsewhere), or the request itself is bad.
    fn not_taken(&self, source: h2::Error) -> TransportError {
        // Only h2's user errors (a header HTTP/2 forbids, say) carry neither a
        // reason code nor an I/O error.
        if source.reason().is_some() || source.is_io() {
            TransportError::Refused {
                addr: self.addr.to_string(),
                source,
            }
        } else {
            TransportError::InvalidRequest { source }
        }
    }

    async fn ping_on(
        &self,
        shared: &ConnShared,
        deadline: Instant,
    ) -> Result<Duration, TransportError> {
        let timeout = deadline.saturating_duration_since(Instant::now());
        let result = shared.ping(&self.addr, timeout).await;
        if result.is_err() {
            // A silent peer gets no new streams; the streams it has keep
            // their chance to finish.
            shared.drain();
        }
        result
    }
}

/// Drops connections that ended, and closes draining ones that no stream
/// uses any more (dropping their SendRequest lets h2 send GOAWAY).
fn prune(conns: &mut Vec<Conn>) {
    conns.retain(|c| {
        let keep = !c.shared.is_dead() && (c.shared.is_live() || c.load() > 0);
        if !keep {
            c.shared.close();
        }
        keep
    });
}

/// The reconnect delays: exponential from `backoff_min` to `backoff_max`,
/// with jitter so peers that lost the same gateway do not redial in step.
fn backoff(config: &PoolConfig) -> ExponentialBackoff {
    ExponentialBuilder::new()
        .with_min_delay(config.backoff_min)
        .with_max_delay(config.backoff_max)
        .with_jitter()
        .without_max_times()
        .build()
}

/// A copy of a request head for one more try on another connection.
fn clone_head(request: &Request<()>) -> Request<()> {
    let mut copy = Request::new(());
    *copy.method_mut() = request.method().clone();
    *copy.uri_mut() = request.uri().clone();
    *copy.headers_mut() = request.headers().clone();
    *copy.version_mut() = request.version();
    copy
}

/// A classic CONNECT (RFC 9113 §8.5): `:method` and `:authority` only; h2
/// leaves out `:scheme` and `:path` for CONNECT without `:protocol`.
fn connect_request(uri: &Uri, headers: &HeaderMap) -> Request<()> {
    let mut request = Request::new(());
    *request.method_mut() = Method::CONNECT;
    *request.uri_mut() = uri.clone();
    *request.headers_mut() = headers.clone();
    request
}
