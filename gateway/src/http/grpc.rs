//! The gRPC status of each gRPC request, counted as the response passes
//! (`fedmesh_gateway_grpc_requests_total{grpc_status}`).
//!
//! gRPC over HTTP/2 puts `grpc-status` in the trailers, or in the headers
//! of a trailers-only response (an error with no message, gRPC's
//! PROTOCOL-HTTP2 spec). A response whose headers carry it is counted at
//! once; any other gRPC response's body is wrapped so that its trailers are
//! read on their way to the client. A response that ends without a status
//! (reset, or a body without trailers) counts as [`GRPC_UNKNOWN`].

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{HeaderMap, Response};
use hyper::body::{Body as HttpBody, Frame, SizeHint};

use super::retry::is_grpc;
use super::{Body, BodyError, body::boxed};
use crate::metrics::{GRPC_UNKNOWN, Metrics};
use crate::state::ServiceKey;

/// Counts `response`'s gRPC status for `service` and `cluster` (now, or
/// when its trailers pass); other responses pass untouched.
pub(super) fn observe(
    metrics: &Arc<Metrics>,
    service: &ServiceKey,
    cluster: &str,
    response: Response<Body>,
) -> Response<Body> {
    if !is_grpc(response.headers()) {
        return response;
    }
    let tally = Tally {
        metrics: metrics.clone(),
        service: service.clone(),
        cluster: cluster.to_string(),
    };
    if let Some(status) = status_of(response.headers()) {
        tally.count(status);
        return response;
    }
    response.map(|body| {
        boxed(Watched {
            inner: body,
            tally: Some(tally),
        })
    })
}

/// The metric label of a `grpc-status` in `headers`: its code when it is
/// one of gRPC's 0–16, else [`GRPC_UNKNOWN`]; `None` when absent.
fn status_of(headers: &HeaderMap) -> Option<&'static str> {
    const CODES: [&str; 17] = [
        "0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "11", "12", "13", "14", "15", "16",
    ];
    let value = headers.get("grpc-status")?;
    Some(
        CODES
            .iter()
            .find(|c| c.as_bytes() == value.as_bytes())
            .copied()
            .unwrap_or(GRPC_UNKNOWN),
    )
}

/// Where one request's status is counted.
struct Tally {
    metrics: Arc<Metrics>,
    service: ServiceKey,
    cluster: String,
}

impl Tally {
    fn count(&self, status: &str) {
        self.metrics
            .grpc_request(&self.service, &self.cluster, status);
    }
}

/// A gRPC response body that counts the status of its trailers, once.
struct Watched {
    inner: Body,
    /// `None` once counted.
    tally: Option<Tally>,
}

impl HttpBody for Watched {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &polled
            && let Some(trailers) = frame.trailers_ref()
            && let Some(tally) = self.tally.take()
        {
            tally.count(status_of(trailers).unwrap_or(GRPC_UNKNOWN));
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for Watched {
    fn drop(&mut self) {
        // Ended (or was dropped) without trailers: no status arrived.
        if let Some(tally) = self.tally.take() {
            tally.count(GRPC_UNKNOWN);
        }
    }
}

#[cfg(test)]
mod tests {
    use http::{HeaderValue, header};
    use http_body_util::BodyExt;

    use super::*;
    use crate::http::body::full;
    use crate::metrics::Format;

    fn grpc_response(status: Option<&'static str>) -> Response<Body> {
        let mut r = Response::new(full(Bytes::from_static(b"x")));
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/grpc"),
        );
        if let Some(s) = status {
            r.headers_mut()
                .insert("grpc-status", HeaderValue::from_static(s));
        }
        r
    }

    fn count(metrics: &Metrics, status: &str) -> String {
        let text = metrics.encode(Format::Classic);
        let prefix = format!(
            "fedmesh_gateway_grpc_requests_total{{namespace=\"demo\",service=\"hello\",cluster=\"east\",grpc_status=\"{status}\"}} "
        );
        text.lines()
            .find_map(|l| l.strip_prefix(&prefix))
            .unwrap_or("absent")
            .to_string()
    }

    #[tokio::test]
    async fn statuses_in_headers_and_trailers_are_counted_once_each() {
        let metrics = Arc::new(Metrics::new());
        let key = ("demo".to_string(), "hello".to_string());
        drop(observe(&metrics, &key, "east", grpc_response(Some("14"))));
        assert_eq!(count(&metrics, "14"), "1", "a trailers-only response");
        drop(observe(&metrics, &key, "east", grpc_response(Some("99"))));
        assert_eq!(count(&metrics, GRPC_UNKNOWN), "1", "not a gRPC code");

        let mut trailers = HeaderMap::new();
        trailers.insert("grpc-status", HeaderValue::from_static("0"));
        let body = full(Bytes::from_static(b"x"))
            .with_trailers(std::future::ready(Some(Ok(trailers))))
            .boxed_unsync();
        let mut r = grpc_response(None);
        *r.body_mut() = body;
        let watched = observe(&metrics, &key, "east", r);
        let collected = watched.into_body().collect().await.expect("body");
        assert!(collected.trailers().is_some(), "trailers pass on");
        assert_eq!(count(&metrics, "0"), "1");
        assert_eq!(count(&metrics, GRPC_UNKNOWN), "1", "no second count");

        // A body that ends without trailers.
        let watched = observe(&metrics, &key, "east", grpc_response(None));
        drop(watched.into_body().collect().await);
        assert_eq!(count(&metrics, GRPC_UNKNOWN), "2");
    }

    #[test]
    fn other_responses_are_not_counted() {
        let metrics = Arc::new(Metrics::new());
        let key = ("demo".to_string(), "hello".to_string());
        let mut plain = Response::new(full(Bytes::new()));
        plain
            .headers_mut()
            .insert("grpc-status", HeaderValue::from_static("0"));
        drop(observe(&metrics, &key, "east", plain));
        assert_eq!(count(&metrics, "0"), "absent");
    }
}
