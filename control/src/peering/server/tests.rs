use std::convert::Infallible;
use std::pin::Pin;

use http_body::Body as _;

use tokio::sync::oneshot;
use tower::{Layer, Service, ServiceExt};

use super::*;

fn request(path: &str, body: Body) -> http::Request<Body> {
    http::Request::builder()
        .uri(format!("http://peer.fedmesh{path}"))
        .body(body)
        .expect("static request parts")
}

fn grpc_status(response: &http::Response<Body>) -> Option<&str> {
    response
        .headers()
        .get("grpc-status")
        .and_then(|v| v.to_str().ok())
}

#[tokio::test]
async fn joins_past_the_concurrency_cap_are_refused_and_sync_still_passes() {
    let (release, released) = oneshot::channel::<()>();
    let released = Arc::new(tokio::sync::Mutex::new(Some(released)));
    let inner = tower::service_fn(move |_: http::Request<Body>| {
        let released = released.clone();
        async move {
            // The first call holds its permit until the test releases it.
            if let Some(rx) = released.lock().await.take() {
                let _ = rx.await;
            }
            Ok::<_, Infallible>(http::Response::new(Body::empty()))
        }
    });
    let mut svc = JoinLimitLayer::new(1).layer(inner);
    let first = svc
        .ready()
        .await
        .unwrap()
        .call(request(JOIN_PATH, Body::empty()));
    let first = tokio::spawn(first);
    // Poll until the first call holds the only permit (bounded).
    for _ in 0..100 {
        if svc.joins.available_permits() == 0 {
            break;
        }
        tokio::task::yield_now().await;
    }
    let second = svc
        .ready()
        .await
        .unwrap()
        .call(request(JOIN_PATH, Body::empty()));
    let second = second.await.unwrap();
    assert_eq!(grpc_status(&second), Some("8"), "RESOURCE_EXHAUSTED");
    let sync = svc.ready().await.unwrap();
    let sync = sync.call(request("/fedmesh.v1.Peering/Sync", Body::empty()));
    let _ = release.send(());
    assert_eq!(grpc_status(&sync.await.unwrap()), None);
    assert_eq!(grpc_status(&first.await.unwrap().unwrap()), None);
    assert_eq!(svc.joins.available_permits(), 1, "the permit came back");
}

#[tokio::test]
async fn a_body_past_the_join_limit_fails_with_resource_exhausted() {
    let big = "x".repeat(MAX_JOIN_MESSAGE + 1);
    let mut body = Capped::new(Body::new(big), MAX_JOIN_MESSAGE);
    let frame = std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await;
    let status = frame.expect("a frame").expect_err("over the limit");
    assert_eq!(status.code(), tonic::Code::ResourceExhausted);
    assert!(status.message().contains("join request larger than"));
}

#[tokio::test]
async fn a_body_within_the_join_limit_passes_whole() {
    let small = "x".repeat(1000);
    let mut body = Capped::new(Body::new(small), MAX_JOIN_MESSAGE);
    let frame = std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await;
    let data = frame.expect("a frame").expect("within the limit");
    assert_eq!(data.data_ref().map(bytes::Bytes::len), Some(1000));
}
