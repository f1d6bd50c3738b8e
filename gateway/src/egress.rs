//! Egress: this cluster's clients connecting to imported services' VIPs.
//!
//! A client connection goes down a stack of stages, one concern each,
//! built top to bottom in [`serve`]:
//!
//! 1. **listeners** ([`listeners`]): one per VIP (and pinned VIP) and port
//!    of the current imports; accepts and hands each connection down.
//! 2. **admission** ([`admission`]): the service's rate limit of new
//!    connections (a tower layer).
//!    Then, **protocol** ([`crate::http::Dispatch`]): a connection to an
//!    HTTP port is served per request by [`crate::http`] (each request
//!    chooses its target as 3 does); a TCP port's, or an HTTP port's whose
//!    first request asks for `Upgrade`, goes on below.
//! 3. **target choice** ([`targets`]): the targets to try, best first, by
//!    locality, affinity, weights and capacity ([`crate::select`]).
//! 4. **attempt** ([`attempt`]): the first target that connects — a local
//!    endpoint ([`crate::dial`]) or a peer gateway ([`remote`]) — with
//!    failover to the next and feedback to outlier detection.
//! 5. **carry** ([`carry`]): bytes both ways until either side closes.
//!
//! A connection that no target can take is reset at once (RST, not FIN),
//! never left hanging, and counted. Errors are [`EgressError`]s (why the
//! connection was not carried) and [`AttemptError`]s (why one target was
//! not); both say which side failed.

mod admission;
mod attempt;
mod carry;
mod early;
mod listeners;
mod remote;
mod targets;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::net::TcpStream;
use tokio::sync::watch;
use tower::ServiceBuilder;

use crate::error::AttemptError;
use crate::health::Health;
use crate::http::{Dispatch, Endpoints, RetryBudgets};
use crate::lifecycle::Lifecycle;
use crate::limits::Limits;
use crate::metrics::Metrics;
use crate::pools::Pools;
use crate::state::{GatewayState, Import, Listener, Target};

/// The handles egress uses.
#[derive(Debug)]
pub struct Egress {
    /// Snapshots from the control plane.
    pub states: watch::Receiver<Arc<GatewayState>>,
    /// Target and endpoint health.
    pub health: Arc<Health>,
    /// Rate limits and per-target caps.
    pub limits: Arc<Limits>,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// Pooled connections to peer gateways.
    pub pools: Arc<Pools>,
    /// Pooled HTTP connections to local endpoints (HTTP ports).
    pub endpoints: Arc<Endpoints>,
    /// The retry budget of each service routes retry requests to.
    pub retry_budgets: Arc<RetryBudgets>,
    /// How long reaching one target may take (`gateway.connectTimeout`).
    pub connect_timeout: Duration,
    /// How long a carried connection may stay silent (`gateway.idleTimeout`).
    pub idle_timeout: Duration,
    /// Kubernetes mode's listen address (the ingress's IP).
    pub bind: IpAddr,
    /// Trace context, spans and access log lines.
    pub observe: Arc<crate::observe::Observe>,
    /// Open connections and the drain.
    pub life: Lifecycle,
}

impl Egress {
    /// The latest snapshot.
    pub fn state(&self) -> Arc<GatewayState> {
        self.states.borrow().clone()
    }
}

/// A client connection as a listener accepted it.
#[derive(Debug)]
pub struct Accepted {
    /// The client.
    pub client: TcpStream,
    /// Where the client came from.
    pub remote: SocketAddr,
    /// What the listener stands for.
    pub listener: Listener,
}

/// Why a client connection was not carried (it was reset).
#[derive(Debug, thiserror::Error)]
pub enum EgressError {
    /// The service is no longer imported.
    #[error("the service is no longer imported")]
    NotImported,
    /// Over the service's rate limit of new connections.
    #[error("over the service's rate limit of new connections")]
    RateLimited,
    /// No target could take the connection; the last attempt's error.
    #[error("no target can serve: {0}")]
    NoTarget(#[source] AttemptError),
    /// No target was usable at all.
    #[error("no target is usable")]
    NoUsableTarget,
}

/// Runs egress until the gateway drains: the stack below, then the
/// listeners feeding it.
pub async fn serve(egress: Arc<Egress>) {
    let stack = ServiceBuilder::new()
        // 2. Admission: the service's token bucket of new connections.
        .layer(admission::AdmissionLayer::new(
            egress.limits.clone(),
            egress.metrics.clone(),
        ))
        // 2½. Protocol: HTTP ports per request, the rest as bytes.
        .layer_fn(|tcp| Dispatch::new(egress.clone(), tcp))
        // 3–5. Target choice, attempts with failover, carry.
        .service(attempt::Forward::new(egress.clone()));
    // 1. Listeners: one per VIP and port, each connection down the stack.
    listeners::run(egress, stack).await;
}

/// Stage 3 for one request of an HTTP port: the targets to try, best
/// first, exactly as for a connection.
pub(crate) fn choose_targets<'a>(
    egress: &Egress,
    state: &GatewayState,
    import: &'a Import,
    listener: &Listener,
    rng: &mut crate::select::Rng,
) -> Vec<&'a Target> {
    targets::choose(&egress.health, state, import, listener, rng)
}

/// What a failed attempt of a request tells health, as a connection's does.
pub(crate) fn attempt_feedback(
    egress: &Egress,
    target: &Target,
    error: &AttemptError,
    remote_clusters: usize,
) {
    attempt::feedback(
        egress,
        target,
        error,
        remote_clusters,
        false,
        Instant::now(),
    );
}

/// A RST, not a FIN: the client learns at once that nothing serves.
fn reset(client: TcpStream) {
    let _ = client.set_zero_linger();
    drop(client);
}
