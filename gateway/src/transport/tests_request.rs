//! Request streams (not CONNECT) on the pooled transport: what the
//! HTTP-aware egress sends per client request.

use bytes::Bytes;
use http::StatusCode;

use super::tests::{Peer, STEP, deadline};
use super::{Incoming, PoolConfig, RequestStream};
use crate::wire::SERVICE_HEADER;

/// The test ingress's answer to a request stream: 200 with
/// `<method> <path> <service> <body>`.
pub(super) async fn echo_request(incoming: Incoming) {
    let service = incoming.authority.clone();
    let Some((request, mut respond)) = incoming.into_request() else {
        return;
    };
    let (parts, mut body) = request.into_parts();
    let mut got = Vec::new();
    // Bounded by the body: the client ends it.
    while let Some(Ok(chunk)) = body.data().await {
        let _ = body.flow_control().release_capacity(chunk.len());
        got.extend_from_slice(&chunk);
    }
    let path = parts.uri.path_and_query().map_or("", |p| p.as_str());
    let text = format!(
        "{} {path} {service} {}",
        parts.method,
        String::from_utf8_lossy(&got)
    );
    if let Ok(mut send) = respond.send_response(http::Response::new(()), false) {
        let _ = send.send_data(Bytes::from(text), true);
    }
}

#[tokio::test]
async fn a_request_stream_reaches_the_ingress_as_a_request_and_its_answer_comes_back() {
    let peer = Peer::start().await;
    let pool = peer.pool(PoolConfig::default());
    let mut head = http::Request::post("http://hello.demo:8080/path?q=1")
        .body(())
        .unwrap();
    head.headers_mut()
        .insert(SERVICE_HEADER, "8080.hello.demo.fedmesh".parse().unwrap());
    let RequestStream {
        mut send, response, ..
    } = pool.request(&head, false, deadline()).await.unwrap();
    send.send_data(Bytes::from_static(b"payload"), true)
        .unwrap();
    let response = tokio::time::timeout(STEP, response)
        .await
        .expect("in time")
        .expect("answered");
    assert_eq!(response.status(), StatusCode::OK);
    let mut body = response.into_body();
    let mut got = Vec::new();
    while let Some(chunk) = tokio::time::timeout(STEP, body.data())
        .await
        .expect("in time")
    {
        got.extend_from_slice(&chunk.unwrap());
    }
    assert_eq!(
        String::from_utf8_lossy(&got),
        "POST /path?q=1 8080.hello.demo.fedmesh payload"
    );
}

#[tokio::test]
async fn requests_share_the_pooled_connection() {
    let peer = Peer::start().await;
    let pool = peer.pool(PoolConfig::default());
    let mut head = http::Request::get("http://hello/").body(()).unwrap();
    head.headers_mut()
        .insert(SERVICE_HEADER, "8080.hello.demo.fedmesh".parse().unwrap());
    for _ in 0..5 {
        let stream = pool.request(&head, true, deadline()).await.unwrap();
        let response = tokio::time::timeout(STEP, stream.response)
            .await
            .expect("in time")
            .expect("answered");
        assert_eq!(response.status(), StatusCode::OK);
    }
    assert_eq!(peer.accepts(), 1, "one TCP connection for every request");
}
