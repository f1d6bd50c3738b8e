//! A route's `timeouts.request` after the response head: the body keeps
//! the request's deadline, and a body still streaming when it passes ends
//! with an error, so the client's connection (HTTP/1.1) or stream (HTTP/2)
//! is cut rather than left to run past the timeout. Gateway API: the
//! request timeout covers the whole request, up to the end of the
//! response.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use hyper::body::{Body as HttpBody, Frame, SizeHint};
use tokio::time::{Instant, Sleep};

use super::{Body, BodyError};

/// Why a response body ended early.
#[derive(Debug, thiserror::Error)]
#[error("the route's request timeout expired while the response was streaming")]
pub(super) struct Expired;

/// A response body that fails once `deadline` passes.
pub(super) struct Deadline {
    inner: Body,
    sleep: Pin<Box<Sleep>>,
}

impl Deadline {
    /// `inner`, ending at `deadline`.
    pub(super) fn new(inner: Body, deadline: Instant) -> Self {
        Self {
            inner,
            sleep: Box::pin(tokio::time::sleep_until(deadline)),
        }
    }
}

impl HttpBody for Deadline {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        // A frame that is ready goes first: the deadline cuts waiting, not
        // data already here.
        if let Poll::Ready(frame) = Pin::new(&mut self.inner).poll_frame(cx) {
            return Poll::Ready(frame);
        }
        match self.sleep.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Some(Err(Box::new(Expired)))),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use http_body_util::BodyExt;

    use super::*;
    use crate::http::body::{boxed, full};

    /// A body that sends one frame and then never ends.
    struct Endless {
        sent: bool,
    }

    impl HttpBody for Endless {
        type Data = Bytes;
        type Error = BodyError;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            _cx: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
            if self.sent {
                return Poll::Pending;
            }
            self.sent = true;
            Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(b"start")))))
        }
    }

    fn endless() -> Body {
        boxed(Endless { sent: false })
    }

    #[tokio::test]
    async fn a_body_still_streaming_at_the_deadline_fails() {
        let started = Instant::now();
        let mut body = Deadline::new(endless(), started + Duration::from_millis(50));
        let first = body.frame().await.expect("a frame").expect("data");
        assert_eq!(first.into_data().ok(), Some(Bytes::from_static(b"start")));
        let end = tokio::time::timeout(Duration::from_secs(5), body.frame())
            .await
            .expect("the deadline ends the body");
        let error = end.expect("an error, not the end").unwrap_err();
        assert!(error.is::<Expired>(), "{error}");
        assert!(started.elapsed() >= Duration::from_millis(50));
    }

    #[tokio::test]
    async fn a_body_that_ends_in_time_is_untouched() {
        let body = Deadline::new(
            full(Bytes::from_static(b"whole")),
            Instant::now() + Duration::from_secs(5),
        );
        let got = body.collect().await.expect("complete").to_bytes();
        assert_eq!(got, Bytes::from_static(b"whole"));
    }
}
