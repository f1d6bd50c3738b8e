//! What the in-process test backends share: a one-worker runtime of their
//! own, so that dropping a backend ends its connections as a killed
//! process would, and a hyper server (HTTP/1.1 and h2c, by what the
//! client speaks) that answers every request with one function.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;

use hyper::body::{Body, Incoming};
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tokio::runtime::Runtime;

/// A runtime for one backend and its listener on `addr`.
///
/// # Panics
/// When the runtime cannot be built or the address cannot be bound (a test
/// cannot go on), naming `what` and `addr`.
pub fn bind(addr: SocketAddr, what: &str) -> (Runtime, TcpListener) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("a runtime for the {what}: {e}"));
    let listener = runtime
        .block_on(TcpListener::bind(addr))
        .unwrap_or_else(|e| panic!("{what} bind {addr}: {e}"));
    (runtime, listener)
}

/// Serves every connection of `listener` with `answer`, HTTP/1.1 or h2c.
/// Bounded by its runtime: it ends when the backend is dropped.
pub async fn serve_http<F, Fut, B>(listener: TcpListener, answer: F)
where
    F: Fn(Request<Incoming>) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Response<B>> + Send + 'static,
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    loop {
        let Ok((conn, _)) = listener.accept().await else {
            continue;
        };
        let answer = answer.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let answered = answer(req);
                async move { Ok::<_, Infallible>(answered.await) }
            });
            let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
            let _ = builder.serve_connection(TokioIo::new(conn), service).await;
        });
    }
}
