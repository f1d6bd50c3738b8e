//! Stage 2, admission: a new connection to a service over its rate limit
//! (`gateway.rateLimit`, a token bucket per service, off by default) is
//! reset before any target is chosen.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use tower::{Layer, Service};
use tracing::debug;

use super::{Accepted, EgressError, reset};
use crate::limits::Limits;
use crate::metrics::Metrics;

/// Wraps a connection handler in the rate limit.
#[derive(Debug, Clone)]
pub(super) struct AdmissionLayer {
    limits: Arc<Limits>,
    metrics: Arc<Metrics>,
}

impl AdmissionLayer {
    /// The layer over `limits`, counting refusals in `metrics`.
    pub(super) fn new(limits: Arc<Limits>, metrics: Arc<Metrics>) -> Self {
        Self { limits, metrics }
    }
}

impl<S> Layer<S> for AdmissionLayer {
    type Service = Admission<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Admission {
            limits: self.limits.clone(),
            metrics: self.metrics.clone(),
            inner,
        }
    }
}

/// The rate limit in front of `S`.
#[derive(Debug, Clone)]
pub(super) struct Admission<S> {
    limits: Arc<Limits>,
    metrics: Arc<Metrics>,
    inner: S,
}

type BoxFuture = Pin<Box<dyn Future<Output = Result<(), EgressError>> + Send>>;

impl<S> Service<Accepted> for Admission<S>
where
    S: Service<Accepted, Response = (), Error = EgressError>,
    S::Future: Send + 'static,
{
    type Response = ();
    type Error = EgressError;
    type Future = BoxFuture;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, conn: Accepted) -> Self::Future {
        let key = &conn.listener.key;
        if !self.limits.admit(key, Instant::now()) {
            debug!("over the service's rate limit; resetting");
            self.metrics.egress_rate_limited(key);
            reset(conn.client);
            return Box::pin(async { Err(EgressError::RateLimited) });
        }
        Box::pin(self.inner.call(conn))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use tokio::io::AsyncReadExt;
    use tokio::net::{TcpListener, TcpStream};
    use tower::ServiceExt;

    use super::*;
    use crate::state::Listener;

    /// An inner stage that only counts what reaches it.
    #[derive(Clone, Default)]
    struct Count(Arc<AtomicUsize>);

    impl Service<Accepted> for Count {
        type Response = ();
        type Error = EgressError;
        type Future = std::future::Ready<Result<(), EgressError>>;

        fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), EgressError>> {
            Poll::Ready(Ok(()))
        }

        fn call(&mut self, _: Accepted) -> Self::Future {
            self.0.fetch_add(1, Ordering::Relaxed);
            std::future::ready(Ok(()))
        }
    }

    async fn accepted(server: &TcpListener) -> (Accepted, TcpStream) {
        let client = TcpStream::connect(server.local_addr().unwrap())
            .await
            .unwrap();
        let (conn, remote) = server.accept().await.unwrap();
        let listener = Listener {
            key: ("demo".into(), "hello".into()),
            port: 8080,
            pinned: None,
            endpoint: None,
        };
        (
            Accepted {
                client: conn,
                remote,
                listener,
            },
            client,
        )
    }

    #[tokio::test]
    async fn connections_over_the_rate_are_reset_before_the_next_stage() {
        let config = fedmesh_proto::config::Config::from_yaml(
            "cluster: east\nlocality: { region: r, zone: z }\ndataDir: ./d\ngateway:\n  rateLimit: { connectionsPerSecond: 1, burst: 2 }\n",
            std::path::Path::new("/tmp/x.yaml"),
        )
        .unwrap();
        let limits = Arc::new(Limits::new(&config.gateway));
        let inner = Count::default();
        let layer = AdmissionLayer::new(limits, Arc::new(Metrics::new()));
        let server = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut clients = Vec::new();
        let mut refused = 0;
        for _ in 0..3 {
            let (conn, client) = accepted(&server).await;
            clients.push(client);
            if let Err(EgressError::RateLimited) = layer.layer(inner.clone()).oneshot(conn).await {
                refused += 1;
            }
        }
        assert_eq!(inner.0.load(Ordering::Relaxed), 2, "the burst passes");
        assert_eq!(refused, 1);
        // The refused client sees a reset, not a hang.
        let mut buf = [0u8; 1];
        let last = clients.last_mut().unwrap();
        let read = tokio::time::timeout(std::time::Duration::from_secs(5), last.read(&mut buf))
            .await
            .expect("not left hanging");
        assert!(read.is_err() || read.unwrap() == 0);
    }
}
