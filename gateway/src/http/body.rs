//! Bodies between hyper (clients, endpoints) and h2 streams (the pooled
//! transport between gateways), frame by frame with flow control.
//!
//! - [`H2Body`] reads an h2 `RecvStream` as an HTTP body, giving the window
//!   back only as frames are taken (RFC 9113 §5.2), so a slow reader
//!   stalls its sender instead of growing a buffer; trailers follow the
//!   data (gRPC's status travels in them).
//! - [`send_body`] writes an HTTP body to an h2 `SendStream`, asking for
//!   send capacity before every chunk.
//! - [`RequestBody`] is a client's request body as egress holds it: kept
//!   whole for a replay on the next target when it is empty or of a known
//!   length up to [`super::REPLAY_LIMIT`]; otherwise streamed through a
//!   [`Tee`], which can replay it while at most that much has gone.
//! - [`Held`] keeps a guard (a target permit, a pool slot) alive until the
//!   body it wraps is dropped.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use h2::{RecvStream, SendStream};
use http_body_util::{BodyExt, Full};
use hyper::body::{Body as HttpBody, Frame, Incoming, SizeHint};

use super::tee::Tee;
use super::{Body, BodyError, REPLAY_LIMIT};

/// An h2 receive stream as an HTTP body.
#[derive(Debug)]
pub(crate) struct H2Body {
    recv: RecvStream,
    data_done: bool,
}

impl H2Body {
    /// The body of `recv`.
    pub(crate) fn new(recv: RecvStream) -> Self {
        Self {
            recv,
            data_done: false,
        }
    }
}

impl HttpBody for H2Body {
    type Data = Bytes;
    type Error = h2::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, h2::Error>>> {
        let this = self.get_mut();
        if !this.data_done {
            match this.recv.poll_data(cx) {
                Poll::Ready(Some(Ok(data))) => {
                    // The reader has it: the peer may send as much again.
                    let _ = this.recv.flow_control().release_capacity(data.len());
                    return Poll::Ready(Some(Ok(Frame::data(data))));
                }
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Some(Err(e))),
                Poll::Ready(None) => this.data_done = true,
                Poll::Pending => return Poll::Pending,
            }
        }
        match this.recv.poll_trailers(cx) {
            Poll::Ready(Ok(Some(trailers))) => Poll::Ready(Some(Ok(Frame::trailers(trailers)))),
            Poll::Ready(Ok(None)) => Poll::Ready(None),
            Poll::Ready(Err(e)) => Poll::Ready(Some(Err(e))),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.recv.is_end_stream()
    }
}

/// Why a body could not be written to an h2 stream.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SendBodyError {
    /// The body being read failed (its sender went away).
    #[error("reading the body to send: {0}")]
    Source(#[source] BodyError),
    /// The h2 stream was reset or its connection lost.
    #[error("sending the body: {0}")]
    Stream(#[source] h2::Error),
}

/// Writes `body` to `send`, then END_STREAM (with the trailers if any).
/// A body that fails resets the stream (CANCEL), so the other side never
/// takes a truncated body for a whole one.
///
/// # Errors
/// Which side failed.
pub(crate) async fn send_body(
    mut body: Body,
    send: &mut SendStream<Bytes>,
) -> Result<(), SendBodyError> {
    // Bounded by the body: each round takes one frame or ends.
    loop {
        let frame = match body.frame().await {
            None => {
                return send
                    .send_data(Bytes::new(), true)
                    .map_err(SendBodyError::Stream);
            }
            Some(Err(e)) => {
                send.send_reset(h2::Reason::CANCEL);
                return Err(SendBodyError::Source(e));
            }
            Some(Ok(frame)) => frame,
        };
        match frame.into_data() {
            Ok(data) => send_data(send, data).await?,
            Err(frame) => {
                if let Ok(trailers) = frame.into_trailers() {
                    return send.send_trailers(trailers).map_err(SendBodyError::Stream);
                }
            }
        }
    }
}

/// Sends `data` in chunks of the capacity h2 grants (RFC 9113 §6.9).
async fn send_data(send: &mut SendStream<Bytes>, mut data: Bytes) -> Result<(), SendBodyError> {
    while !data.is_empty() {
        send.reserve_capacity(data.len());
        let granted = std::future::poll_fn(|cx| send.poll_capacity(cx)).await;
        let n = match granted {
            Some(Ok(n)) => n,
            Some(Err(e)) => return Err(SendBodyError::Stream(e)),
            None => return Err(SendBodyError::Stream(h2::Reason::STREAM_CLOSED.into())),
        };
        if n == 0 {
            continue;
        }
        let chunk = data.split_to(n.min(data.len()));
        send.send_data(chunk, false)
            .map_err(SendBodyError::Stream)?;
    }
    Ok(())
}

/// A client's request body as egress holds it across attempts.
#[derive(Debug)]
pub(crate) enum RequestBody {
    /// Complete and small: sent to as many targets as it takes.
    Kept(Bytes),
    /// Streamed, and recorded while it stays within the limit.
    Streamed(Tee),
}

impl RequestBody {
    /// Takes `body` whole when it is empty or of a known length within
    /// [`REPLAY_LIMIT`] (RFC 9110 §8.6 Content-Length; an HTTP/2 request
    /// with END_STREAM on its headers is empty); otherwise leaves it to
    /// stream.
    ///
    /// # Errors
    /// The client's body failed while it was read.
    pub(crate) async fn read(body: Incoming) -> Result<Self, hyper::Error> {
        if body.is_end_stream() {
            return Ok(RequestBody::Kept(Bytes::new()));
        }
        let known = body.size_hint().exact();
        match known.and_then(|n| usize::try_from(n).ok()) {
            Some(n) if n <= REPLAY_LIMIT => Ok(RequestBody::Kept(body.collect().await?.to_bytes())),
            _ => Ok(RequestBody::Streamed(Tee::new(boxed(body)))),
        }
    }

    /// Whether another target can still be sent the body.
    pub(crate) fn can_replay(&self) -> bool {
        match self {
            RequestBody::Kept(_) => true,
            RequestBody::Streamed(tee) => tee.can_replay(),
        }
    }

    /// Whether there is no body at all.
    pub(crate) fn is_empty(&self) -> bool {
        matches!(self, RequestBody::Kept(b) if b.is_empty())
    }

    /// The body for one attempt; `None` once a streamed body went past
    /// the limit (or failed).
    pub(crate) fn take(&mut self) -> Option<Body> {
        match self {
            RequestBody::Kept(bytes) => Some(full(bytes.clone())),
            RequestBody::Streamed(tee) => tee.reader(),
        }
    }
}

/// `bytes` as a body.
pub(crate) fn full(bytes: Bytes) -> Body {
    Full::new(bytes)
        .map_err(|never| match never {})
        .boxed_unsync()
}

/// Any body as the gateway's [`Body`].
pub(crate) fn boxed<B>(body: B) -> Body
where
    B: HttpBody<Data = Bytes> + Send + 'static,
    B::Error: Into<BodyError>,
{
    body.map_err(Into::into).boxed_unsync()
}

/// A body that holds `guard` until it is dropped.
pub(crate) struct Held<B, G> {
    body: B,
    _guard: G,
}

impl<B, G> Held<B, G> {
    /// `body`, keeping `guard` alive with it.
    pub(crate) fn new(body: B, guard: G) -> Self {
        Self {
            body,
            _guard: guard,
        }
    }
}

impl<B: HttpBody + Unpin, G: Unpin> HttpBody for Held<B, G> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<B::Data>, B::Error>>> {
        Pin::new(&mut self.get_mut().body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}
