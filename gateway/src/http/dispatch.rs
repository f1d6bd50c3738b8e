//! [`Dispatch`]: stage 2½ of egress. A connection to a TCP port goes on
//! to the byte path (the inner stage); one to an HTTP port is sniffed
//! ([`super::sniff`]) and then served by hyper — HTTP/1.1 with keep-alive
//! or HTTP/2 with prior knowledge, told apart by the preface — each
//! request down [`super::egress`]. On drain, hyper closes the connection
//! gracefully (HTTP/1.1: after the request in flight; HTTP/2: GOAWAY,
//! RFC 9113 §6.8).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tower::{Service, ServiceExt};
use tracing::debug;

use super::egress::{ClientConn, handle};
use super::sniff::{FIRST_BYTES, Sniffed, first_request};
use crate::egress::{Accepted, Egress, EgressError};

/// How long open requests may take to finish once the gateway drains.
const DRAIN_GRACE: Duration = Duration::from_secs(30);

/// Stage 2½: HTTP ports per request, the rest to `S`.
#[derive(Debug, Clone)]
pub struct Dispatch<S> {
    egress: Arc<Egress>,
    tcp: S,
}

impl<S> Dispatch<S> {
    /// Dispatches with `egress`'s handles; `tcp` carries bytes.
    pub fn new(egress: Arc<Egress>, tcp: S) -> Self {
        Self { egress, tcp }
    }
}

type BoxFuture = Pin<Box<dyn Future<Output = Result<(), EgressError>> + Send>>;

impl<S> Service<Accepted> for Dispatch<S>
where
    S: Service<Accepted, Response = (), Error = EgressError> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = ();
    type Error = EgressError;
    type Future = BoxFuture;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.tcp.poll_ready(cx)
    }

    fn call(&mut self, conn: Accepted) -> Self::Future {
        let listener = &conn.listener;
        let protocol = self
            .egress
            .state()
            .import_protocol(&listener.key, listener.port);
        // A pod's own VIP (headless services) reaches that one endpoint: no
        // per-request choice to make, so it is carried as TCP.
        if !protocol.is_http() || listener.endpoint.is_some() {
            return Box::pin(self.tcp.call(conn));
        }
        let egress = self.egress.clone();
        let tcp = self.tcp.clone();
        Box::pin(async move {
            match first_request(&conn.client, FIRST_BYTES, egress.idle_timeout).await {
                Sniffed::Tunnel => tcp.oneshot(conn).await,
                Sniffed::Http => {
                    serve(egress, conn).await;
                    Ok(())
                }
                Sniffed::Gone => Ok(()),
            }
        })
    }
}

/// Serves one client connection's requests until it closes or the
/// gateway drains.
async fn serve(egress: Arc<Egress>, conn: Accepted) {
    let _open = egress.life.open_connection();
    let client = Arc::new(ClientConn {
        egress: egress.clone(),
        listener: conn.listener,
    });
    let service = hyper::service::service_fn(move |request| handle(client.clone(), request));
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder.http1().timer(TokioTimer::new());
    builder.http2().timer(TokioTimer::new());
    let connection = builder.serve_connection(TokioIo::new(conn.client), service);
    tokio::pin!(connection);
    tokio::select! {
        result = connection.as_mut() => {
            if let Err(error) = result {
                debug!(%error, "client HTTP connection ended");
            }
        }
        () = egress.life.drained() => {
            connection.as_mut().graceful_shutdown();
            let _ = tokio::time::timeout(DRAIN_GRACE, connection).await;
        }
    }
}
