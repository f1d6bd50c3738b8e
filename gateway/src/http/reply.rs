//! The gateway's own answers: a short plain-text response that the
//! gateway sends in place of a target's (a refusal, a timeout, an abort).

use http::{HeaderValue, Response, StatusCode, header};

use super::Body;
use super::body::full;

/// A plain-text answer of the gateway itself.
pub(super) fn status(code: StatusCode, text: &'static str) -> Response<Body> {
    let mut response = Response::new(full(bytes::Bytes::from_static(text.as_bytes())));
    *response.status_mut() = code;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}
