//! The ingress side: [`serve_connection`] speaks HTTP/2 on one accepted,
//! already authenticated TLS connection from a peer gateway and hands each
//! CONNECT stream to the ingress's handler as an [`Incoming`].
//!
//! The handler decides (authorize the authority, dial an endpoint) and then
//! [`accept`](Incoming::accept)s (200, the tunnel's bytes flow) or
//! [`refuse`](Incoming::refuse)s (503 + [`REASON_HEADER`], END_STREAM).
//! Early data the client sent with the CONNECT waits in h2's receive buffer
//! (bounded by the stream window) until `accept`: nothing reads it before,
//! so no byte reaches an endpoint that was not chosen. An ordinary request
//! (not CONNECT) naming a service port in [`SERVICE_HEADER`] is an HTTP
//! request stream of the HTTP-aware egress: the handler gets it as an
//! [`Incoming`] too ([`Incoming::is_request`]), authorizes it the same way
//! and takes it with [`Incoming::into_request`]. Other requests get 405
//! without the handler. Shutdown is a graceful GOAWAY (RFC 9113 §6.8):
//! open streams finish, then `serve_connection` returns.

use std::future::Future;

use bytes::Bytes;
use h2::RecvStream;
use h2::server::SendResponse;
use http::header::HeaderValue;
use http::{HeaderMap, Method, Request, StatusCode, Uri};
use tokio::io::{AsyncRead, AsyncWrite};
use tracing::debug;

use super::stream::Tunnel;
use super::{REASON_HEADER, ServerConfig, TransportError};
use crate::wire::SERVICE_HEADER;

/// How long a connection closed at the drain timeout may take to write its
/// final GOAWAY.
const GOAWAY_FLUSH: std::time::Duration = std::time::Duration::from_secs(1);

/// A CONNECT stream the ingress has not answered yet.
///
/// Dropping it unanswered resets the stream, which the client sees as a
/// reset (not a refusal it may retry elsewhere): answer with
/// [`Incoming::refuse`] instead.
pub struct Incoming {
    /// The `:authority` as the client sent it (`<port>.<svc>.<ns>.fedmesh`
    /// when well-formed; checking it is the handler's business).
    pub authority: String,
    /// The request headers.
    pub headers: HeaderMap,
    /// For an HTTP request stream: its method and URI; `None` for CONNECT.
    pub request: Option<(Method, Uri)>,
    body: RecvStream,
    respond: SendResponse<Bytes>,
}

impl std::fmt::Debug for Incoming {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Incoming")
            .field("authority", &self.authority)
            .field("stream", &self.respond.stream_id())
            .finish_non_exhaustive()
    }
}

impl Incoming {
    /// Answers 200 with `headers` and returns the tunnel; its read side
    /// starts with any early data the client sent.
    ///
    /// # Errors
    ///
    /// [`TransportError::Serve`] when the stream or connection is already
    /// gone (the client reset it).
    pub fn accept(mut self, headers: HeaderMap) -> Result<Tunnel, TransportError> {
        let response = answer(StatusCode::OK, headers);
        let send = self
            .respond
            .send_response(response, false)
            .map_err(|source| TransportError::Serve { source })?;
        Ok(Tunnel::new(send, self.body, None))
    }

    /// Answers `status` with `fedmesh-reason: <reason>` and END_STREAM; the
    /// early data is discarded unread. A reason that is not a valid header
    /// value is sent with the offending characters replaced.
    ///
    /// # Errors
    ///
    /// [`TransportError::Serve`] when the stream is already gone.
    pub fn refuse(mut self, status: StatusCode, reason: &str) -> Result<(), TransportError> {
        let mut headers = HeaderMap::new();
        headers.insert(REASON_HEADER, reason_value(reason));
        self.respond
            .send_response(answer(status, headers), true)
            .map(drop)
            .map_err(|source| TransportError::Serve { source })
    }

    /// Whether this is an HTTP request stream rather than a CONNECT.
    pub fn is_request(&self) -> bool {
        self.request.is_some()
    }

    /// The HTTP request of a request stream (its body streams from the
    /// peer as the reader takes it) and where its response goes; `None`
    /// for a CONNECT stream, which is answered by `accept` or `refuse`.
    pub fn into_request(self) -> Option<(Request<RecvStream>, SendResponse<Bytes>)> {
        let (method, uri) = self.request?;
        let mut request = Request::new(self.body);
        *request.method_mut() = method;
        *request.uri_mut() = uri;
        *request.headers_mut() = self.headers;
        Some((request, self.respond))
    }

    /// Waits until the client resets the stream (it gave up), for a handler
    /// that races its endpoint dial against the client.
    ///
    /// # Errors
    ///
    /// [`TransportError::Serve`] when the connection failed.
    pub async fn reset(&mut self) -> Result<h2::Reason, TransportError> {
        std::future::poll_fn(|cx| self.respond.poll_reset(cx))
            .await
            .map_err(|source| TransportError::Serve { source })
    }
}

/// Serves HTTP/2 on `io`, an accepted TLS stream whose peer the ingress has
/// already authenticated, calling `handler` for each CONNECT stream in a
/// task of its own. Returns when the connection ends; after `shutdown`
/// resolves it sends GOAWAY, lets open streams finish (at most
/// `config.drain_timeout`) and returns.
///
/// # Errors
///
/// [`TransportError::Serve`] when the HTTP/2 preface or the connection
/// fails.
pub async fn serve_connection<IO, H, F>(
    io: IO,
    config: ServerConfig,
    mut handler: H,
    shutdown: impl Future<Output = ()>,
) -> Result<(), TransportError>
where
    IO: AsyncRead + AsyncWrite + Unpin,
    H: FnMut(Incoming) -> F,
    F: Future<Output = ()> + Send + 'static,
{
    let mut connection = server_builder(&config)
        .handshake::<_, Bytes>(io)
        .await
        .map_err(|source| TransportError::Serve { source })?;
    tokio::pin!(shutdown);
    let mut draining = false;
    let drain_timer = tokio::time::sleep(config.drain_timeout);
    tokio::pin!(drain_timer);
    // Bounded by the connection: accept yields None once it closed.
    loop {
        tokio::select! {
            () = &mut shutdown, if !draining => {
                draining = true;
                drain_timer.as_mut().reset(tokio::time::Instant::now() + config.drain_timeout);
                connection.graceful_shutdown();
            }
            () = &mut drain_timer, if draining => {
                debug!("drain timeout: closing peer connection with streams open");
                connection.abrupt_shutdown(h2::Reason::NO_ERROR);
                // Give h2 a moment to write the final GOAWAY; the streams
                // still open are reset with it.
                let flush = async { while connection.accept().await.is_some() {} };
                let _ = tokio::time::timeout(GOAWAY_FLUSH, flush).await;
                return Ok(());
            }
            next = connection.accept() => match next {
                Some(Ok((request, respond))) => dispatch(request, respond, &mut handler),
                Some(Err(source)) => return Err(TransportError::Serve { source }),
                None => return Ok(()),
            },
        }
    }
}

/// h2 server settings: bounded streams and header lists (RFC 9113 §6.5.2),
/// windows as configured.
fn server_builder(config: &ServerConfig) -> h2::server::Builder {
    let window = &config.window;
    let mut builder = h2::server::Builder::new();
    builder
        .max_concurrent_streams(config.max_concurrent_streams)
        .max_header_list_size(config.max_header_list_size)
        .max_pending_accept_reset_streams(config.max_pending_resets)
        .initial_window_size(window.stream_window)
        .initial_connection_window_size(window.connection_window)
        .max_frame_size(window.max_frame_size)
        .max_send_buffer_size(window.max_send_buffer);
    builder
}

/// Routes one request: CONNECT to the handler's task, anything else 405.
fn dispatch<H, F>(request: Request<RecvStream>, mut respond: SendResponse<Bytes>, handler: &mut H)
where
    H: FnMut(Incoming) -> F,
    F: Future<Output = ()> + Send + 'static,
{
    let (parts, body) = request.into_parts();
    let service = parts
        .headers
        .get(SERVICE_HEADER)
        .and_then(|v| v.to_str().ok());
    if let (false, Some(service)) = (parts.method == Method::CONNECT, service) {
        // An HTTP request stream: authorized by the handler as a CONNECT.
        let incoming = Incoming {
            authority: service.to_owned(),
            request: Some((parts.method, parts.uri)),
            headers: parts.headers,
            body,
            respond,
        };
        tokio::spawn(handler(incoming));
        return;
    }
    if parts.method != Method::CONNECT {
        debug!(method = %parts.method, "non-CONNECT request on the peer transport");
        let mut headers = HeaderMap::new();
        headers.insert(http::header::ALLOW, HeaderValue::from_static("CONNECT"));
        // The client may be gone already; nothing to do then.
        let _ = respond.send_response(answer(StatusCode::METHOD_NOT_ALLOWED, headers), true);
        return;
    }
    let authority = parts
        .uri
        .authority()
        .map(|a| a.as_str().to_owned())
        .unwrap_or_default();
    let incoming = Incoming {
        authority,
        request: None,
        headers: parts.headers,
        body,
        respond,
    };
    tokio::spawn(handler(incoming));
}

fn answer(status: StatusCode, headers: HeaderMap) -> http::Response<()> {
    let mut response = http::Response::new(());
    *response.status_mut() = status;
    *response.headers_mut() = headers;
    response
}

/// `reason` as a header value: visible ASCII and spaces kept, anything else
/// (control characters, non-ASCII) replaced by `?` (RFC 9110 §5.5).
fn reason_value(reason: &str) -> HeaderValue {
    let clean: String = reason
        .chars()
        .map(|c| {
            if c == ' ' || c.is_ascii_graphic() {
                c
            } else {
                '?'
            }
        })
        .collect();
    HeaderValue::from_str(&clean).unwrap_or_else(|_| HeaderValue::from_static("?"))
}
