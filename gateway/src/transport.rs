//! The inter-gateway transport: a small pool of long-lived mTLS HTTP/2
//! connections per peer gateway, one CONNECT stream per client connection.
//!
//! Data flow, client side first:
//!
//! 1. The egress asks the [`PeerPool`] of the chosen peer gateway to
//!    [`open`](PeerPool::open) a stream for `<port>.<svc>.<ns>.fedmesh`. The
//!    pool puts it on its least-loaded live connection, or dials one (TCP,
//!    TLS 1.3 with ALPN `h2`, HTTP/2 preface) when none has room
//!    ([`client`]).
//! 2. The stream starts with classic CONNECT HEADERS (RFC 9113 §8.5: only
//!    `:method` and `:authority`, END_STREAM unset). The egress may queue
//!    early data on the [`Opening`] and waits for the answer.
//! 3. The peer's ingress has accepted the TLS connection and checked the
//!    caller's identity; [`serve_connection`] hands it each CONNECT stream as
//!    an [`Incoming`] ([`server`]). The handler authorizes the authority,
//!    dials an endpoint, and either [`accept`](Incoming::accept)s (200) or
//!    [`refuse`](Incoming::refuse)s (503 + [`REASON_HEADER`]). Early data is
//!    not read before `accept`, so no byte reaches an endpoint that was not
//!    chosen.
//! 4. After a 200 both sides hold a [`Tunnel`] ([`stream`]): an
//!    `AsyncRead + AsyncWrite` with HTTP/2 flow control and half-close, so
//!    the gateway splices it to the client or endpoint socket.
//!
//! For HTTP ports the egress opens one ordinary request stream per client
//! request instead ([`PeerPool::request`], a [`RequestStream`]), naming
//! the service port in [`crate::wire::SERVICE_HEADER`]; the server hands
//! it to the same handler as an [`Incoming`] for which
//! [`Incoming::is_request`] holds ([`crate::http`] forwards it).
//!
//! Probes ride the pool as HTTP/2 PING ([`PeerPool::ping`]). Every error is a
//! [`TransportError`] that says whether the peer could have received the
//! request ([`TransportError::is_before_request`]), which decides whether the
//! egress may try the next target.
//!
//! Start reading at [`client`] for the pool, [`stream`] for the byte path.

use std::io;
use std::time::Duration;

use http::StatusCode;

pub mod client;
mod dial;
mod opening;
mod request;
pub mod server;
pub mod stream;

#[cfg(test)]
mod test_pki;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_pool;
#[cfg(test)]
mod tests_probe;
#[cfg(test)]
mod tests_request;

pub use client::{Opening, PeerPool, PoolStats, RequestStream, Response, TlsSource};
pub use server::{Incoming, serve_connection};
pub use stream::Tunnel;

/// The response header that carries why an ingress refused a CONNECT stream.
pub const REASON_HEADER: &str = "fedmesh-reason";

/// The ALPN protocol both sides must negotiate (RFC 9113 §3.2).
pub const ALPN_H2: &[u8] = b"h2";

/// Errors of the inter-gateway transport.
///
/// The first group fails before the peer could have received the request
/// (no CONNECT reached a peer that would act on it): the egress may try
/// another connection or the next target. The second group happens after:
/// the peer may have acted on the request.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// No client TLS configuration could be produced (for example no
    /// certificate yet).
    #[error("no TLS client configuration for peer gateways: {source}")]
    TlsConfig {
        /// Why the configuration is missing.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The TCP connect to the peer gateway failed.
    #[error("connecting to peer gateway {addr}: {source}")]
    Dial {
        /// The peer gateway address.
        addr: String,
        /// The socket error.
        #[source]
        source: io::Error,
    },
    /// The dial (TCP, TLS and HTTP/2 preface) did not finish in time.
    #[error("connecting to peer gateway {addr} timed out; is it reachable?")]
    DialTimeout {
        /// The peer gateway address.
        addr: String,
    },
    /// The TLS handshake failed (certificate, identity or protocol).
    #[error("TLS handshake with peer gateway {addr}: {source}")]
    Tls {
        /// The peer gateway address.
        addr: String,
        /// The TLS error, as tokio-rustls reports it.
        #[source]
        source: io::Error,
    },
    /// The peer did not negotiate ALPN `h2`.
    #[error(
        "peer gateway {addr} negotiated ALPN {got:?}, not \"h2\"; its ingress must speak the pooled transport"
    )]
    Alpn {
        /// The peer gateway address.
        addr: String,
        /// The protocol it chose, if any.
        got: Option<String>,
    },
    /// The HTTP/2 connection preface failed.
    #[error("HTTP/2 handshake with peer gateway {addr}: {source}")]
    Handshake {
        /// The peer gateway address.
        addr: String,
        /// The h2 error.
        #[source]
        source: h2::Error,
    },
    /// A recent dial failed and the pool waits before dialing again.
    #[error("peer gateway {addr} is in reconnect backoff for {remaining:?} after a failed dial")]
    Backoff {
        /// The peer gateway address.
        addr: String,
        /// How long until the next dial is allowed.
        remaining: Duration,
    },
    /// The peer refused the stream unprocessed: GOAWAY before it was opened
    /// or REFUSED_STREAM (RFC 9113 §8.7).
    #[error("peer gateway {addr} refused the stream unprocessed ({source})")]
    Refused {
        /// The peer gateway address.
        addr: String,
        /// The h2 error naming the GOAWAY or reset.
        #[source]
        source: h2::Error,
    },
    /// The pool was closed (the peer left).
    #[error("pool for peer gateway {addr} is closed")]
    Closed {
        /// The peer gateway address.
        addr: String,
    },
    /// The caller's deadline passed before a connection took the stream.
    #[error("deadline passed before a connection to peer gateway {addr} took the stream")]
    OpenTimeout {
        /// The peer gateway address.
        addr: String,
    },
    /// The authority is not a valid `:authority` value.
    #[error("invalid CONNECT authority {authority:?}: {source}")]
    Authority {
        /// The authority given.
        authority: String,
        /// Why http rejected it.
        #[source]
        source: http::Error,
    },
    /// h2 refused to send the request as built (for example a
    /// connection-specific header, RFC 9113 §8.2.2).
    #[error("CONNECT request not valid for HTTP/2: {source}")]
    InvalidRequest {
        /// The h2 user error.
        #[source]
        source: h2::Error,
    },
    /// The stream was reset (RST_STREAM) after it was opened.
    #[error("stream to peer gateway was reset: {source}")]
    Reset {
        /// The h2 error carrying the reason code.
        #[source]
        source: h2::Error,
    },
    /// The connection failed after the stream was opened.
    #[error("connection to peer gateway lost: {source}")]
    ConnectionLost {
        /// The h2 error.
        #[source]
        source: h2::Error,
    },
    /// The CONNECT was sent but no response came before the deadline.
    #[error("no CONNECT response from peer gateway {addr} before the deadline")]
    ResponseTimeout {
        /// The peer gateway address.
        addr: String,
    },
    /// A tunnel was asked for, but the CONNECT was not answered 200.
    #[error("CONNECT answered {status:?}, not 200: there is no tunnel")]
    NotEstablished {
        /// The status received, or `None` before any response.
        status: Option<StatusCode>,
    },
    /// An HTTP/2 PING got no PONG in time.
    #[error("PING to peer gateway {addr} got no answer within {timeout:?}")]
    PingTimeout {
        /// The peer gateway address.
        addr: String,
        /// The timeout given.
        timeout: Duration,
    },
    /// An error on a served (ingress-side) connection or stream.
    #[error("HTTP/2 on an accepted peer connection: {source}")]
    Serve {
        /// The h2 error.
        #[source]
        source: h2::Error,
    },
}

impl TransportError {
    /// True when the failure happened before the peer could have received
    /// the request, so the next target (or another connection) may be tried
    /// without risk of the same request reaching two endpoints.
    ///
    /// False means the peer may have acted on it: an egress that sent no
    /// early data on the stream (so nothing can have reached an endpoint
    /// before a 200 it never saw) may still try the next target.
    pub fn is_before_request(&self) -> bool {
        matches!(
            self,
            TransportError::TlsConfig { .. }
                | TransportError::Dial { .. }
                | TransportError::DialTimeout { .. }
                | TransportError::Tls { .. }
                | TransportError::Alpn { .. }
                | TransportError::Handshake { .. }
                | TransportError::Backoff { .. }
                | TransportError::Refused { .. }
                | TransportError::Closed { .. }
                | TransportError::OpenTimeout { .. }
                | TransportError::Authority { .. }
                | TransportError::InvalidRequest { .. }
        )
    }

    /// Classifies an h2 error seen on a stream the client opened: refused
    /// unprocessed (RFC 9113 §6.8 GOAWAY above the last stream id, §8.7
    /// REFUSED_STREAM) or a failure after the peer took it.
    ///
    /// h2 hands a stream the remote GOAWAY error only when the stream's id
    /// is above the GOAWAY's last stream id; streams at or below it end
    /// with their own outcome (or a broken pipe when the connection drops),
    /// so a remote GOAWAY error here means "never processed".
    pub(crate) fn from_stream(addr: &str, source: h2::Error) -> TransportError {
        let refused = source.reason() == Some(h2::Reason::REFUSED_STREAM)
            || (source.is_go_away() && source.is_remote());
        if refused {
            TransportError::Refused {
                addr: addr.to_owned(),
                source,
            }
        } else if source.is_reset() {
            TransportError::Reset { source }
        } else {
            TransportError::ConnectionLost { source }
        }
    }
}

/// Settings of one [`PeerPool`].
#[derive(Debug, Clone)]
pub struct PoolConfig {
    /// Most connections kept to the peer gateway.
    pub max_connections: usize,
    /// Streams per connection before another connection is opened.
    pub max_streams_per_connection: usize,
    /// Bound on a dial: TCP connect, TLS handshake and HTTP/2 preface.
    pub connect_timeout: Duration,
    /// First reconnect delay after a failed dial.
    pub backoff_min: Duration,
    /// Longest reconnect delay.
    pub backoff_max: Duration,
    /// Every connection is pinged this often (keeps NAT bindings and finds
    /// dead peers).
    pub keepalive_interval: Duration,
    /// How long a keepalive PING may take before the connection (and any
    /// stream still on it) is dropped.
    pub keepalive_timeout: Duration,
    /// After [`PeerPool::close`], how long open streams may still run.
    pub close_grace: Duration,
    /// Flow-control and framing settings of each connection.
    pub window: WindowConfig,
}

impl Default for PoolConfig {
    fn default() -> PoolConfig {
        PoolConfig {
            max_connections: 4,
            max_streams_per_connection: 100,
            connect_timeout: Duration::from_secs(3),
            backoff_min: Duration::from_millis(200),
            backoff_max: Duration::from_secs(10),
            keepalive_interval: Duration::from_secs(30),
            keepalive_timeout: Duration::from_secs(10),
            close_grace: Duration::from_secs(30),
            window: WindowConfig::default(),
        }
    }
}

/// HTTP/2 flow-control and framing settings (RFC 9113 §6.5.2, §6.9), the
/// same on both sides.
///
/// A window is also a memory bound: h2 keeps received bytes until the
/// reader takes them, so a tunnel whose client stops reading holds up to
/// one stream window, and the connection stalls only once stalled tunnels
/// hold the whole connection window (four with the defaults). One tunnel
/// moves at most stream window / RTT: measured (release build, one tunnel,
/// `tests_probe`) 4 MiB gave about 70 MB/s over a 40 ms relay (8 MiB: 134,
/// 1 MiB: 21) and 420–520 MB/s on loopback, where TLS on both ends is the
/// limit; 64 KiB frames beat 16 KiB (about 460 against 410 MB/s) and
/// larger ones gained nothing clear.
#[derive(Debug, Clone)]
pub struct WindowConfig {
    /// SETTINGS_INITIAL_WINDOW_SIZE: bytes a peer may send on one stream
    /// before the reader consumes them.
    pub stream_window: u32,
    /// The connection-level receive window.
    pub connection_window: u32,
    /// SETTINGS_MAX_FRAME_SIZE (16 KiB to 16 MiB - 1).
    pub max_frame_size: u32,
    /// Bytes a stream may have queued for the socket before its writer waits.
    pub max_send_buffer: usize,
}

impl Default for WindowConfig {
    fn default() -> WindowConfig {
        WindowConfig {
            stream_window: 4 << 20,
            connection_window: 16 << 20,
            max_frame_size: 64 << 10,
            max_send_buffer: 1 << 20,
        }
    }
}

/// Settings of [`serve_connection`].
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// SETTINGS_MAX_CONCURRENT_STREAMS announced to the client.
    pub max_concurrent_streams: u32,
    /// SETTINGS_MAX_HEADER_LIST_SIZE announced to the client.
    pub max_header_list_size: u32,
    /// Streams the client may reset before this side accepted them, at
    /// once, before the connection is closed as abusive (the rapid-reset
    /// guard, CVE-2023-44487). h2's default of 20 is for the open
    /// internet; an egress that gives up on many streams at once under a
    /// burst (its `connectTimeout`) is an authenticated peer doing its job.
    pub max_pending_resets: usize,
    /// After shutdown, how long open streams may run before the connection
    /// is closed anyway.
    pub drain_timeout: Duration,
    /// Flow-control and framing settings.
    pub window: WindowConfig,
}

impl Default for ServerConfig {
    fn default() -> ServerConfig {
        ServerConfig {
            max_concurrent_streams: 1000,
            max_header_list_size: 16 << 10,
            max_pending_resets: 1000,
            drain_timeout: Duration::from_secs(30),
            window: WindowConfig::default(),
        }
    }
}

/// An h2 error as the `io::Error` a byte copier understands: a reset or lost
/// connection is `ConnectionReset`, never a clean EOF.
pub(crate) fn h2_to_io(error: h2::Error) -> io::Error {
    if error.is_io() {
        return error
            .into_io()
            .unwrap_or_else(|| io::Error::from(io::ErrorKind::ConnectionReset));
    }
    io::Error::new(io::ErrorKind::ConnectionReset, error)
}
