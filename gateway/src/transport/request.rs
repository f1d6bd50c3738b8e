//! [`RequestStream`]: an ordinary HTTP/2 request stream (not CONNECT) on a
//! pooled connection, as the HTTP-aware egress sends one per client
//! request ([`crate::http`]). The caller sends the body on `send` (with
//! flow control), awaits `response`, and keeps `slot` until the response
//! body ends so that the pool counts the stream as open meanwhile.

use std::sync::Arc;

use bytes::Bytes;
use h2::SendStream;
use h2::client::ResponseFuture;

use super::stream::StreamSlot;

/// One request stream whose head is on its way to the peer.
pub struct RequestStream {
    pub(crate) addr: Arc<str>,
    /// The peer's response head (and then its body).
    pub(crate) response: ResponseFuture,
    /// The request body's side of the stream.
    pub(crate) send: SendStream<Bytes>,
    /// Counts the stream in its pool while it is open.
    pub(crate) slot: StreamSlot,
}

impl std::fmt::Debug for RequestStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RequestStream")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl RequestStream {
    /// The peer gateway address.
    pub fn addr(&self) -> &str {
        &self.addr
    }
}
