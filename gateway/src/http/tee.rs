//! [`Tee`]: a streamed request body (unknown length, or larger than can be
//! kept whole) that can still be sent again while little of it has gone.
//!
//! Every frame taken from the client is recorded until [`REPLAY_LIMIT`]
//! bytes have been; a new attempt's [`Tee::reader`] replays the recorded
//! frames and then continues with the client's body where the last reader
//! left it. A reader of an earlier attempt that is still being pumped is
//! cut off (its next poll fails), so frames never split between two
//! attempts. Past the limit, or once the client's body failed, no new
//! reader is given: the request cannot be retried any more.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use http::HeaderMap;
use hyper::body::{Body as HttpBody, Frame};

use super::{Body, BodyError, REPLAY_LIMIT};

/// A frame as recorded.
#[derive(Debug, Clone)]
enum Recorded {
    Data(Bytes),
    Trailers(HeaderMap),
}

impl Recorded {
    fn of(frame: &Frame<Bytes>) -> Option<Recorded> {
        if let Some(data) = frame.data_ref() {
            return Some(Recorded::Data(data.clone()));
        }
        frame.trailers_ref().cloned().map(Recorded::Trailers)
    }

    fn frame(&self) -> Frame<Bytes> {
        match self {
            Recorded::Data(d) => Frame::data(d.clone()),
            Recorded::Trailers(t) => Frame::trailers(t.clone()),
        }
    }

    fn len(&self) -> usize {
        match self {
            Recorded::Data(d) => d.len(),
            Recorded::Trailers(_) => 0,
        }
    }
}

struct Shared {
    body: Body,
    recorded: Vec<Recorded>,
    size: usize,
    /// More than [`REPLAY_LIMIT`] went, or the body failed: no replay.
    spent: bool,
    ended: bool,
    /// The reader that may poll the client's body.
    generation: u64,
}

/// A client's streamed body shared by the attempts of one request.
pub(crate) struct Tee(Arc<Mutex<Shared>>);

impl std::fmt::Debug for Tee {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tee").finish_non_exhaustive()
    }
}

impl Tee {
    /// Records `body` as it is read.
    pub(crate) fn new(body: Body) -> Self {
        Tee(Arc::new(Mutex::new(Shared {
            body,
            recorded: Vec::new(),
            size: 0,
            spent: false,
            ended: false,
            generation: 0,
        })))
    }

    /// Whether a new attempt can be sent the whole body.
    pub(crate) fn can_replay(&self) -> bool {
        !lock(&self.0).spent
    }

    /// The body for a new attempt (earlier readers are cut off), or `None`
    /// when it can no longer be sent whole.
    pub(crate) fn reader(&self) -> Option<Body> {
        let mut shared = lock(&self.0);
        if shared.spent {
            return None;
        }
        shared.generation += 1;
        let reader = Reader {
            shared: self.0.clone(),
            generation: shared.generation,
            pos: 0,
        };
        Some(http_body_util::BodyExt::boxed_unsync(reader))
    }
}

fn lock(shared: &Mutex<Shared>) -> std::sync::MutexGuard<'_, Shared> {
    // Frames and counters: still consistent after a panic elsewhere.
    shared.lock().unwrap_or_else(|p| p.into_inner())
}

/// One attempt's view of the body.
struct Reader {
    shared: Arc<Mutex<Shared>>,
    generation: u64,
    pos: usize,
}

impl HttpBody for Reader {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let this = self.get_mut();
        let mut shared = lock(&this.shared);
        if shared.generation != this.generation {
            return Poll::Ready(Some(Err("the request went to another target".into())));
        }
        if let Some(recorded) = shared.recorded.get(this.pos) {
            this.pos += 1;
            return Poll::Ready(Some(Ok(recorded.frame())));
        }
        if shared.ended {
            return Poll::Ready(None);
        }
        match Pin::new(&mut shared.body).poll_frame(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(None) => {
                shared.ended = true;
                Poll::Ready(None)
            }
            Poll::Ready(Some(Err(error))) => {
                shared.spent = true;
                Poll::Ready(Some(Err(error)))
            }
            Poll::Ready(Some(Ok(frame))) => {
                record(&mut shared, &frame);
                this.pos = shared.recorded.len();
                Poll::Ready(Some(Ok(frame)))
            }
        }
    }
}

/// Keeps `frame` for a replay while the body is within the limit.
fn record(shared: &mut Shared, frame: &Frame<Bytes>) {
    if shared.spent {
        return;
    }
    let Some(recorded) = Recorded::of(frame) else {
        return;
    };
    shared.size += recorded.len();
    if shared.size > REPLAY_LIMIT {
        shared.spent = true;
        shared.recorded.clear();
        return;
    }
    shared.recorded.push(recorded);
}

#[cfg(test)]
mod tests {
    use http_body_util::{BodyExt, StreamBody};

    use super::*;

    fn body(chunks: Vec<&'static [u8]>) -> Body {
        let frames: Vec<Result<Frame<Bytes>, BodyError>> = chunks
            .into_iter()
            .map(|c| Ok(Frame::data(Bytes::from_static(c))))
            .collect();
        StreamBody::new(tokio_stream::iter(frames)).boxed_unsync()
    }

    #[tokio::test]
    async fn a_second_attempt_gets_every_byte_the_first_took_and_the_rest() {
        let tee = Tee::new(body(vec![b"one ", b"two ", b"three"]));
        let mut first = tee.reader().unwrap();
        let taken = first.frame().await.unwrap().unwrap().into_data().unwrap();
        assert_eq!(taken, "one ");
        let second = tee.reader().unwrap();
        assert!(
            first.frame().await.unwrap().is_err(),
            "the first is cut off"
        );
        let all = second.collect().await.unwrap().to_bytes();
        assert_eq!(all, "one two three");
    }

    #[tokio::test]
    async fn past_the_limit_no_new_attempt_is_given_the_body() {
        static BIG: [u8; REPLAY_LIMIT + 1] = [b'x'; REPLAY_LIMIT + 1];
        let tee = Tee::new(body(vec![b"start", &BIG]));
        let mut first = tee.reader().unwrap();
        first.frame().await.unwrap().unwrap();
        assert!(tee.can_replay());
        first.frame().await.unwrap().unwrap();
        assert!(!tee.can_replay());
        assert!(tee.reader().is_none());
        let rest = first.collect().await.unwrap().to_bytes();
        assert!(rest.is_empty(), "the first attempt still ends normally");
    }
}
