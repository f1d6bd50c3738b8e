//! [`Opening`]: a CONNECT stream between its HEADERS and its answer.
//!
//! The egress queues early data with [`Opening::send`], waits for
//! [`Opening::response`] (cancel-safe, so it can race reading the client),
//! and turns a 200 into a [`Tunnel`]. On any other answer it drops the
//! `Opening`, which resets the stream (RST_STREAM CANCEL) and frees its slot.

use std::sync::Arc;

use bytes::Bytes;
use h2::client::ResponseFuture;
use h2::{RecvStream, SendStream};
use http::{HeaderMap, StatusCode};
use tokio::time::Instant;

use super::stream::{StreamSlot, Tunnel};
use super::{REASON_HEADER, TransportError};

/// The answer to a CONNECT: the status preface of the tunnel.
#[derive(Debug, Clone)]
pub struct Response {
    /// 200 once the peer's ingress reached an endpoint; 503 when it could
    /// not (see [`Response::reason`]).
    pub status: StatusCode,
    /// All response headers.
    pub headers: HeaderMap,
}

impl Response {
    /// The ingress's reason for a refusal ([`REASON_HEADER`]), if given.
    pub fn reason(&self) -> Option<&str> {
        self.headers.get(REASON_HEADER)?.to_str().ok()
    }
}

/// A CONNECT stream whose answer has not been consumed yet.
pub struct Opening {
    addr: Arc<str>,
    send: Option<SendStream<Bytes>>,
    pending: Option<ResponseFuture>,
    body: Option<RecvStream>,
    answer: Option<Response>,
    slot: Option<StreamSlot>,
    deadline: Instant,
}

impl std::fmt::Debug for Opening {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Opening")
            .field("addr", &self.addr)
            .field("answer", &self.answer)
            .finish_non_exhaustive()
    }
}

impl Opening {
    pub(crate) fn new(
        addr: Arc<str>,
        send: SendStream<Bytes>,
        pending: ResponseFuture,
        slot: StreamSlot,
        deadline: Instant,
    ) -> Opening {
        Opening {
            addr,
            send: Some(send),
            pending: Some(pending),
            body: None,
            answer: None,
            slot: Some(slot),
            deadline,
        }
    }

    /// Queues early data on the stream before the answer. The peer's ingress
    /// reads it only after it accepted the stream, so it reaches at most the
    /// one endpoint chosen; the caller keeps a copy to replay elsewhere on a
    /// refusal and bounds how much it sends.
    ///
    /// # Errors
    ///
    /// The stream was reset or its connection lost
    /// ([`TransportError::Refused`] when the peer never processed it).
    pub fn send(&mut self, data: Bytes) -> Result<(), TransportError> {
        let Some(send) = self.send.as_mut() else {
            return Err(TransportError::NotEstablished { status: None });
        };
        send.send_data(data, false)
            .map_err(|source| TransportError::from_stream(&self.addr, source))
    }

    /// Waits for the CONNECT answer, at most until the deadline given to
    /// `open`. Cancel-safe: dropping the future keeps the wait in `self`;
    /// once answered, later calls return the same answer.
    ///
    /// # Errors
    ///
    /// [`TransportError::ResponseTimeout`] at the deadline,
    /// [`TransportError::Refused`] when the peer refused the stream
    /// unprocessed (GOAWAY, REFUSED_STREAM), otherwise a reset or lost
    /// connection.
    pub async fn response(&mut self) -> Result<Response, TransportError> {
        if let Some(answer) = &self.answer {
            return Ok(answer.clone());
        }
        let Some(pending) = self.pending.as_mut() else {
            return Err(TransportError::NotEstablished { status: None });
        };
        let result = match tokio::time::timeout_at(self.deadline, pending).await {
            Ok(result) => result,
            Err(_) => {
                return Err(TransportError::ResponseTimeout {
                    addr: self.addr.to_string(),
                });
            }
        };
        self.pending = None;
        let (parts, body) = result
            .map_err(|source| TransportError::from_stream(&self.addr, source))?
            .into_parts();
        self.body = Some(body);
        let answer = Response {
            status: parts.status,
            headers: parts.headers,
        };
        self.answer = Some(answer.clone());
        Ok(answer)
    }

    /// The tunnel of a stream answered 200.
    ///
    /// # Errors
    ///
    /// [`TransportError::NotEstablished`] before the answer or after any
    /// other status (the stream is reset).
    pub fn into_tunnel(mut self) -> Result<Tunnel, TransportError> {
        let status = self.answer.as_ref().map(|a| a.status);
        if status != Some(StatusCode::OK) {
            return Err(TransportError::NotEstablished { status });
        }
        match (self.send.take(), self.body.take()) {
            (Some(send), Some(body)) => Ok(Tunnel::new(send, body, self.slot.take())),
            _ => Err(TransportError::NotEstablished { status }),
        }
    }
}

impl Drop for Opening {
    fn drop(&mut self) {
        if let Some(send) = self.send.as_mut() {
            // RFC 9113 §8.7: CANCEL says the stream is no longer needed; the
            // ingress drops its endpoint dial.
            send.send_reset(h2::Reason::CANCEL);
        }
    }
}
