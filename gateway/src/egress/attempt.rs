//! Stage 4, attempt: the targets of stage 3 are tried in order until one
//! connects — a local endpoint ([`crate::dial`]) or a peer gateway
//! ([`super::remote`]) — each under its `maxConnectionsPerTarget` slot.
//! Every failure says whether the next target may be tried
//! ([`AttemptError::may_try_next`]) and feeds health: a cluster is ejected
//! only when its ingress says it has nothing ([`AttemptError::ejects_cluster`]),
//! a peer gateway that cannot be dialed counts as a failed probe of it.
//! [`Forward`] is stages 3–5 as one tower service.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tower::Service;
use tracing::{debug, info, warn};

use super::carry::{Connected, Upstream, carry};
use super::early::Early;
use super::{Accepted, Egress, EgressError, remote, reset, targets};
use crate::error::AttemptError;
use crate::health::Transition;
use crate::observe::ConnectionDone;
use crate::otlp::Side;
use crate::select::Rng;
use crate::splice::Moved;
use crate::state::{GatewayState, Import, ServiceKey, Target};
use crate::wire::Route;
use crate::{dial, endpoint};

/// Stages 3–5 for one connection: choose, attempt, carry.
#[derive(Debug, Clone)]
pub(super) struct Forward {
    egress: Arc<Egress>,
}

impl Forward {
    /// Forwarding with `egress`'s handles.
    pub(super) fn new(egress: Arc<Egress>) -> Self {
        Self { egress }
    }
}

type BoxFuture = Pin<Box<dyn Future<Output = Result<(), EgressError>> + Send>>;

impl Service<Accepted> for Forward {
    type Response = ();
    type Error = EgressError;
    type Future = BoxFuture;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, conn: Accepted) -> Self::Future {
        Box::pin(forward(self.egress.clone(), conn))
    }
}

async fn forward(egress: Arc<Egress>, conn: Accepted) -> Result<(), EgressError> {
    let started = Instant::now();
    let state = egress.state();
    let Accepted {
        mut client,
        listener,
        ..
    } = conn;
    let Some(import) = state.imports.get(&listener.key) else {
        reset(client);
        return Err(EgressError::NotImported);
    };
    let targets = targets::choose(&egress.health, &state, import, &listener, &mut Rng::new());
    let route = Route::new(&import.key.0, &import.key.1, listener.port);
    // A named endpoint's VIP: the route names it, wherever it runs.
    let route = match &listener.endpoint {
        Some(hostname) => route.to_endpoint(hostname),
        None => route,
    };
    let mut early = Early::default();
    let attempts = Attempts {
        egress: &egress,
        state: &state,
        import,
        route: &route,
    };
    match attempts
        .first_that_connects(&targets, &mut client, &mut early)
        .await
    {
        Ok(connected) => {
            egress
                .metrics
                .egress_connected(&import.key, &connected.cluster, started.elapsed());
            let cluster = connected.cluster.clone();
            let moved = carry(&egress, client, connected, &import.key).await;
            let done = connection_done(&import.key, listener.port, cluster, &moved, started);
            egress.observe.connection_done(&done);
            Ok(())
        }
        Err(error) => {
            info!(%error, "no target can serve; resetting the client connection");
            egress.metrics.egress_failed(&import.key);
            reset(client);
            let none = Moved::default();
            let mut done =
                connection_done(&import.key, listener.port, "none".into(), &none, started);
            done.outcome = "no_target";
            egress.observe.connection_done(&done);
            Err(error)
        }
    }
}

/// The access log record of a client connection carried to `cluster`.
fn connection_done(
    service: &ServiceKey,
    port: u16,
    cluster: String,
    moved: &Moved,
    started: Instant,
) -> ConnectionDone {
    ConnectionDone {
        side: Side::Client,
        service: service.clone(),
        port,
        cluster,
        bytes_up: moved.up,
        bytes_down: moved.down,
        duration: started.elapsed(),
        outcome: if moved.idle_timeout {
            "idle_timeout"
        } else {
            "closed"
        },
    }
}

/// What every attempt of one connection shares.
struct Attempts<'a> {
    egress: &'a Egress,
    state: &'a GatewayState,
    import: &'a Import,
    route: &'a Route,
}

impl Attempts<'_> {
    /// Tries `targets` in order; the first that connects, or why none did.
    async fn first_that_connects(
        &self,
        targets: &[&Target],
        client: &mut TcpStream,
        early: &mut Early,
    ) -> Result<Connected, EgressError> {
        let egress = self.egress;
        let remote_clusters = self.import.targets.iter().filter(|t| !t.local).count();
        let mut last = None;
        for target in targets {
            let outcome = match egress.limits.acquire(&target.cluster) {
                None => Err(AttemptError::AtCapacity),
                Some(permit) => self
                    .one(target, client, early)
                    .await
                    .map(|upstream| Connected {
                        upstream,
                        cluster: target.cluster.clone(),
                        permit,
                    }),
            };
            let now = Instant::now();
            match outcome {
                Ok(connected) => {
                    if !target.local {
                        egress
                            .health
                            .connect_result(&target.cluster, true, remote_clusters, now);
                    }
                    return Ok(connected);
                }
                Err(error) => {
                    debug!(cluster = %target.cluster, %error, "attempt failed; trying the next target");
                    egress.metrics.egress_attempt_failed(
                        &self.import.key,
                        &target.cluster,
                        error.label(),
                    );
                    let named = self.route.endpoint.is_some();
                    feedback(egress, target, &error, remote_clusters, named, now);
                    let stop = !error.may_try_next();
                    last = Some(error);
                    if stop {
                        break;
                    }
                }
            }
        }
        Err(last.map_or(EgressError::NoUsableTarget, EgressError::NoTarget))
    }

    /// One attempt on one target.
    async fn one(
        &self,
        target: &Target,
        client: &mut TcpStream,
        early: &mut Early,
    ) -> Result<Upstream, AttemptError> {
        if !target.local {
            return remote::connect(self.egress, target, self.route, client, early).await;
        }
        let route = self.route;
        let export = self
            .state
            .exports
            .get(&(route.namespace.clone(), route.service.clone()))
            .ok_or(AttemptError::NoEndpoint)?;
        let candidates = endpoint::candidates(export, route);
        let (mut stream, addr) = dial::dial(
            &self.egress.health,
            &candidates,
            self.egress.connect_timeout,
        )
        .await?;
        if !early.is_empty() {
            // Bytes a refusing peer never read: this endpoint gets them.
            stream
                .write_all(&early.bytes())
                .await
                .map_err(|source| AttemptError::Connect {
                    addr: addr.to_string(),
                    source,
                })?;
            early.delivered();
        }
        Ok(Upstream::Plain(stream))
    }
}

/// What a failed attempt tells health. A named endpoint that cannot be
/// reached says nothing of its cluster (`named`): the cluster still serves
/// its other endpoints, so it is not ejected.
pub(super) fn feedback(
    egress: &Egress,
    target: &Target,
    error: &AttemptError,
    remote_clusters: usize,
    named: bool,
    now: Instant,
) {
    if target.local {
        return;
    }
    if !named
        && error.ejects_cluster()
        && egress
            .health
            .connect_result(&target.cluster, false, remote_clusters, now)
    {
        warn!(cluster = %target.cluster, "ejecting a cluster: its ingress has nothing to serve with");
        egress.metrics.ejection(&target.cluster);
    }
    if error.gateway_unreachable()
        && egress.health.probed(&target.gateway, false) == Transition::Down
    {
        warn!(gateway = %target.gateway, "peer gateway cannot be reached; routing around it");
    }
}

#[cfg(test)]
mod tests;
