//! The endpoint pool against real hyper servers on loopback.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;

use super::*;
use crate::http::body::full;

fn health() -> Health {
    let c = fedmesh_proto::config::Config::from_yaml(
        "cluster: east\nlocality: { region: r, zone: z }\ndataDir: ./d\n",
        std::path::Path::new("/tmp/x.yaml"),
    )
    .unwrap();
    Health::new(&c.gateway)
}

/// A backend answering `<version> <host>`; counts the connections it
/// accepted.
async fn backend() -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    tokio::spawn(async move {
        while let Ok((conn, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let service = hyper::service::service_fn(|req: Request<Incoming>| async move {
                    let host = req
                        .headers()
                        .get(header::HOST)
                        .and_then(|h| h.to_str().ok())
                        .or_else(|| req.uri().authority().map(|a| a.as_str()))
                        .unwrap_or("")
                        .to_owned();
                    let text = format!("{:?} {host}", req.version());
                    Ok::<_, std::convert::Infallible>(Response::new(Full::new(Bytes::from(text))))
                });
                let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
                let _ = builder.serve_connection(TokioIo::new(conn), service).await;
            });
        }
    });
    (addr, accepted)
}

fn get() -> Request<Body> {
    let mut r = Request::new(full(Bytes::new()));
    *r.uri_mut() = "http://hello.demo:8080/x".parse().unwrap();
    r
}

async fn answer(pool: &Endpoints, h: &Health, to: &[SocketAddr], p: AppProtocol) -> String {
    let response = pool
        .send(h, to, p, get(), Duration::from_secs(2))
        .await
        .expect("an answer");
    let body = response.into_body().collect().await.unwrap().to_bytes();
    String::from_utf8_lossy(&body).into_owned()
}

#[tokio::test]
async fn http1_requests_reuse_one_kept_alive_connection_and_keep_the_host() {
    let (addr, accepted) = backend().await;
    let (pool, h) = (Endpoints::new(), health());
    for _ in 0..5 {
        let got = answer(&pool, &h, &[addr], AppProtocol::Http).await;
        assert_eq!(got, "HTTP/1.1 hello.demo:8080");
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn h2c_and_grpc_ports_speak_http2_to_endpoints_on_one_connection() {
    let (addr, accepted) = backend().await;
    let (pool, h) = (Endpoints::new(), health());
    for protocol in [AppProtocol::H2c, AppProtocol::Grpc] {
        let got = answer(&pool, &h, &[addr], protocol).await;
        assert_eq!(got, "HTTP/2.0 hello.demo:8080");
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_refusing_endpoint_is_passed_over_and_nothing_is_lost() {
    let (good, _) = backend().await;
    let closed = {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        l.local_addr().unwrap()
    };
    let (pool, h) = (Endpoints::new(), health());
    for _ in 0..10 {
        let got = answer(&pool, &h, &[closed, good], AppProtocol::Http).await;
        assert_eq!(got, "HTTP/1.1 hello.demo:8080");
    }
    let err = pool
        .send(
            &h,
            &[closed],
            AppProtocol::Http,
            get(),
            Duration::from_secs(1),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, EndpointError::Unreachable(_)), "{err}");
}

/// A backend answering every request with `status`.
async fn status_backend(status: http::StatusCode) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((conn, _)) = listener.accept().await {
            tokio::spawn(async move {
                let service =
                    hyper::service::service_fn(move |_req: Request<Incoming>| async move {
                        let mut r = Response::new(Full::new(Bytes::from_static(b"failing")));
                        *r.status_mut() = status;
                        Ok::<_, std::convert::Infallible>(r)
                    });
                let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
                let _ = builder.serve_connection(TokioIo::new(conn), service).await;
            });
        }
    });
    addr
}

#[tokio::test]
async fn consecutive_5xx_answers_eject_an_endpoint_and_a_4xx_does_not() {
    let (good, _) = backend().await;
    let bad = status_backend(http::StatusCode::INTERNAL_SERVER_ERROR).await;
    let (pool, h) = (Endpoints::new(), health());
    let group = [bad, good];
    let mut failed = 0;
    for _ in 0..40 {
        let response = pool
            .send(&h, &group, AppProtocol::Http, get(), Duration::from_secs(2))
            .await
            .expect("an answer");
        if response.status().is_server_error() {
            failed += 1;
        }
        drop(response.into_body().collect().await);
    }
    // consecutiveFailures is 3: the third 500 in a row ejects it.
    assert_eq!(failed, 3, "answers from the failing endpoint");
    assert!(h.endpoint_ejected(&bad, Instant::now()));

    let refusing = status_backend(http::StatusCode::NOT_FOUND).await;
    for _ in 0..5 {
        let r = pool
            .send(
                &h,
                &[refusing],
                AppProtocol::Http,
                get(),
                Duration::from_secs(2),
            )
            .await
            .expect("an answer");
        assert_eq!(r.status(), http::StatusCode::NOT_FOUND);
    }
    assert!(
        !h.endpoint_ejected(&refusing, Instant::now()),
        "a 404 is an answer"
    );
}
