//! Stage 1, listeners: one per (VIP, port) and (pinned VIP, port) of the
//! current imports — or, in Kubernetes mode, per listen port — kept in
//! step with every snapshot. Each accepted connection goes down the stack
//! in its own task and span.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tower::{Service, ServiceExt};
use tracing::{Instrument, debug, info, info_span, warn};

use super::{Accepted, Egress, EgressError};
use crate::state::Listener;

/// How often listeners that failed to bind are retried.
const REBIND: Duration = Duration::from_secs(2);

/// Keeps the listeners of the current imports until the gateway drains.
pub(super) async fn run<S>(egress: Arc<Egress>, stack: S)
where
    S: Service<Accepted, Response = (), Error = EgressError> + Clone + Send + 'static,
    S::Future: Send,
{
    let mut states = egress.states.clone();
    let mut running: HashMap<SocketAddr, (Listener, tokio::task::AbortHandle)> = HashMap::new();
    let mut tick = tokio::time::interval(REBIND);
    loop {
        let desired = egress.state().listeners(egress.bind);
        running.retain(|addr, (listener, task)| {
            let keep = desired.get(addr) == Some(listener);
            if !keep {
                // Open connections keep going; only the listener stops.
                task.abort();
                info!(%addr, "egress listener closed");
            }
            keep
        });
        for (addr, listener) in desired {
            if running.contains_key(&addr) {
                continue;
            }
            match TcpListener::bind(addr).await {
                Ok(socket) => {
                    let (ns, name) = &listener.key;
                    match (&listener.pinned, &listener.endpoint) {
                        (None, _) => info!("egress listening on {addr} for {ns}/{name}"),
                        (Some(c), None) => {
                            info!("egress listening on {addr} for {ns}/{name} in {c}")
                        }
                        (Some(c), Some(h)) => {
                            info!("egress listening on {addr} for {ns}/{name} endpoint {h} in {c}")
                        }
                    }
                    let task = tokio::spawn(accept(
                        egress.clone(),
                        socket,
                        listener.clone(),
                        stack.clone(),
                    ));
                    running.insert(addr, (listener, task.abort_handle()));
                }
                Err(error) => warn!(%addr, %error, "cannot listen on a VIP; retrying"),
            }
        }
        egress.metrics.egress_listeners(running.len());
        tokio::select! {
            r = states.changed() => if r.is_err() { return },
            _ = tick.tick() => {}
            () = egress.life.drained() => return,
        }
    }
}

async fn accept<S>(egress: Arc<Egress>, socket: TcpListener, listener: Listener, stack: S)
where
    S: Service<Accepted, Response = (), Error = EgressError> + Clone + Send + 'static,
    S::Future: Send,
{
    loop {
        let accepted = tokio::select! {
            a = socket.accept() => a,
            () = egress.life.drained() => return,
        };
        match accepted {
            Ok((client, remote)) => {
                let _ = client.set_nodelay(true);
                let (ns, name) = &listener.key;
                let span = info_span!("egress", namespace = %ns, service = %name, port = listener.port, %remote);
                let conn = Accepted {
                    client,
                    remote,
                    listener: listener.clone(),
                };
                let stack = stack.clone();
                tokio::spawn(
                    async move {
                        if let Err(error) = stack.oneshot(conn).await {
                            debug!(%error, "client connection reset");
                        }
                    }
                    .instrument(span),
                );
            }
            Err(error) => {
                warn!(%error, "egress accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}
