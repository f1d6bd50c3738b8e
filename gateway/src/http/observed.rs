//! A response body that tells [`Observe`] when the request is over: after
//! its last frame, or when it is dropped unfinished (the client left, or
//! the stream was reset). Data bytes are counted on the way, so the access
//! log's `bytes` and `duration_ms` and the span's end cover the whole
//! response, not just its head.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::Response;
use hyper::body::{Body as HttpBody, Frame, SizeHint};

use super::body::boxed;
use super::{Body, BodyError};
use crate::observe::{Begun, Observe, RequestDone};

/// `response` with its body observed; when nothing records, it is returned
/// as it is.
pub(crate) fn observed(
    observe: &Arc<Observe>,
    begun: Begun,
    mut done: RequestDone,
    response: Response<Body>,
) -> Response<Body> {
    done.status = response.status().as_u16();
    if !observe.records() {
        return response;
    }
    response.map(|body| {
        boxed(Observed {
            body,
            bytes: 0,
            report: Some((observe.clone(), begun, done)),
        })
    })
}

/// A body counting its data, reporting once at its end.
struct Observed {
    body: Body,
    bytes: u64,
    report: Option<(Arc<Observe>, Begun, RequestDone)>,
}

impl Observed {
    fn report(&mut self) {
        if let Some((observe, begun, mut done)) = self.report.take() {
            done.bytes = self.bytes;
            observe.request_done(begun, done);
        }
    }
}

impl HttpBody for Observed {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.body).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    this.bytes += data.len() as u64;
                }
                if this.body.is_end_stream() {
                    this.report();
                }
            }
            Poll::Ready(None | Some(Err(_))) => this.report(),
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

impl Drop for Observed {
    fn drop(&mut self) {
        self.report();
    }
}
