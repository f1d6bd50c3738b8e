//! Holding the start of an idempotent request's response before the
//! client sees any of it (DESIGN.md: idempotent requests are retried
//! "after a reset mid-response when nothing was returned to the client").
//!
//! The response head and its first frames are kept until the body ends,
//! [`REPLAY_LIMIT`] bytes have come, or [`RESPONSE_HOLD`] has passed; a
//! body that fails meanwhile fails the attempt, and the request goes to
//! the next target with nothing sent to the client. After that the rest
//! streams through as it comes, and a failure reaches the client.

use std::collections::VecDeque;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::Response;
use http_body_util::BodyExt;
use hyper::body::{Body as HttpBody, Frame};
use tokio::time::Instant;

use super::{Body, BodyError, REPLAY_LIMIT};

/// How long the start of a response is held. Short: a response that
/// streams slowly (server-sent events) waits this much for its first
/// bytes to reach the client.
pub(super) const RESPONSE_HOLD: Duration = Duration::from_millis(250);

/// Holds the start of `response` (module doc).
///
/// # Errors
/// The body failed while held: the client has seen nothing of it.
pub(super) async fn settle(
    response: Response<Body>,
    hold: Duration,
) -> Result<Response<Body>, BodyError> {
    let (parts, mut body) = response.into_parts();
    let deadline = Instant::now() + hold;
    let mut kept = VecDeque::new();
    let mut size = 0;
    let mut ended = body.is_end_stream();
    // Bounded by the size and the deadline.
    while !ended && size <= REPLAY_LIMIT {
        match tokio::time::timeout_at(deadline, body.frame()).await {
            Err(_) => break,
            Ok(None) => ended = true,
            Ok(Some(Err(error))) => return Err(error),
            Ok(Some(Ok(frame))) => {
                size += frame.data_ref().map_or(0, Bytes::len);
                ended = frame.is_trailers();
                kept.push_back(frame);
            }
        }
    }
    let rest = (!ended).then_some(body);
    let settled = Settled { kept, rest };
    Ok(Response::from_parts(parts, settled.boxed_unsync()))
}

/// The held frames, then the rest of the body.
struct Settled {
    kept: VecDeque<Frame<Bytes>>,
    rest: Option<Body>,
}

impl HttpBody for Settled {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let this = self.get_mut();
        if let Some(frame) = this.kept.pop_front() {
            return Poll::Ready(Some(Ok(frame)));
        }
        match this.rest.as_mut() {
            Some(rest) => Pin::new(rest).poll_frame(cx),
            None => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.kept.is_empty() && self.rest.as_ref().is_none_or(HttpBody::is_end_stream)
    }
}

#[cfg(test)]
mod tests {
    use http_body_util::StreamBody;

    use super::*;

    fn response(frames: Vec<Result<Frame<Bytes>, BodyError>>) -> Response<Body> {
        let body = StreamBody::new(tokio_stream::iter(frames));
        Response::new(body.boxed_unsync())
    }

    #[tokio::test]
    async fn a_body_that_fails_while_held_fails_the_attempt() {
        let frames = vec![
            Ok(Frame::data(Bytes::from_static(b"half"))),
            Err(BodyError::from("stream reset")),
        ];
        assert!(settle(response(frames), RESPONSE_HOLD).await.is_err());
    }

    #[tokio::test]
    async fn a_whole_body_passes_unchanged_with_its_trailers() {
        let mut trailers = http::HeaderMap::new();
        trailers.insert("grpc-status", http::HeaderValue::from_static("0"));
        let frames = vec![
            Ok(Frame::data(Bytes::from_static(b"hello "))),
            Ok(Frame::data(Bytes::from_static(b"world"))),
            Ok(Frame::trailers(trailers)),
        ];
        let settled = settle(response(frames), RESPONSE_HOLD).await.unwrap();
        let collected = settled.into_body().collect().await.unwrap();
        assert_eq!(collected.trailers().unwrap()["grpc-status"], "0");
        assert_eq!(collected.to_bytes(), "hello world");
    }

    #[tokio::test]
    async fn a_slow_body_is_released_after_the_hold_and_streams_on() {
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, BodyError>>(4);
        let body = StreamBody::new(tokio_stream::wrappers::ReceiverStream::new(rx));
        let slow = Response::new(body.boxed_unsync());
        tx.send(Ok(Frame::data(Bytes::from_static(b"first"))))
            .await
            .unwrap();
        let hold = Duration::from_millis(30);
        let settled = tokio::time::timeout(Duration::from_secs(5), settle(slow, hold))
            .await
            .expect("released after the hold")
            .unwrap();
        tx.send(Ok(Frame::data(Bytes::from_static(b" then more"))))
            .await
            .unwrap();
        drop(tx);
        let bytes = settled.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(bytes, "first then more");
    }
}
