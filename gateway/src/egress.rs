//! Egress: a listener on each imported service's VIP and port. A new client
//! connection gets the ordered targets of [`crate::select`] and is carried
//! to the first that connects — a local endpoint directly, or a peer
//! gateway over mTLS whose ingress confirms (status preface) that it
//! reached an endpoint. A failed attempt moves to the next target; when
//! none is left the client is reset at once, never left hanging.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls_pki_types::ServerName;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsConnector;
use tracing::{Instrument, debug, info, info_span, warn};

use crate::gateway::Gateway;
use crate::ingress::sni;
use crate::select::{Rng, order};
use crate::splice::{TlsSide, splice};
use crate::state::{Listener, ServiceKey, Target};
use crate::status::{self, Status};

/// How often listeners that failed to bind are retried.
const REBIND: Duration = Duration::from_secs(2);

/// Why one attempt failed; every kind lets the next target be tried.
#[derive(Debug)]
pub enum AttemptError {
    /// TCP connect to the endpoint or peer gateway failed or timed out.
    Connect(String),
    /// The TLS handshake with the peer gateway failed.
    Tls(String),
    /// The peer ingress answered with a failure status.
    Refused(Status),
    /// No ready local endpoint.
    NoEndpoint,
}

impl AttemptError {
    /// A metric label.
    pub fn as_str(&self) -> &'static str {
        match self {
            AttemptError::Connect(_) => "connect",
            AttemptError::Tls(_) => "tls",
            AttemptError::Refused(s) => s.as_str(),
            AttemptError::NoEndpoint => "no_endpoint",
        }
    }
}

/// Keeps one listener per (VIP, port) and (pinned VIP, port) of the
/// current imports — or, in Kubernetes mode, per listen port.
pub async fn run(gw: Arc<Gateway>) {
    let mut states = gw.states();
    let mut running: HashMap<SocketAddr, (Listener, tokio::task::AbortHandle)> = HashMap::new();
    let mut tick = tokio::time::interval(REBIND);
    let bind = gw.config.ingress_listen.ip();
    loop {
        let desired = gw.state().listeners(bind);
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
                    match &listener.pinned {
                        None => info!("egress listening on {addr} for {ns}/{name}"),
                        Some(c) => info!("egress listening on {addr} for {ns}/{name} in {c}"),
                    }
                    let task = tokio::spawn(accept(gw.clone(), socket, listener.clone()));
                    running.insert(addr, (listener, task.abort_handle()));
                }
                Err(error) => warn!(%addr, %error, "cannot listen on a VIP; retrying"),
            }
        }
        gw.metrics.egress_listeners(running.len());
        tokio::select! {
            r = states.changed() => if r.is_err() { return },
            _ = tick.tick() => {}
        }
    }
}

async fn accept(gw: Arc<Gateway>, socket: TcpListener, listener: Listener) {
    let Listener { key, port, pinned } = listener;
    loop {
        let accepted = tokio::select! {
            a = socket.accept() => a,
            () = gw.drained() => return,
        };
        match accepted {
            Ok((client, remote)) => {
                let _ = client.set_nodelay(true);
                let span =
                    info_span!("egress", service = %format!("{}/{}", key.0, key.1), port, %remote);
                let pinned = pinned.clone();
                tokio::spawn(
                    handle(gw.clone(), client, key.clone(), port, pinned).instrument(span),
                );
            }
            Err(error) => {
                warn!(%error, "egress accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// Carries one client connection, or resets it when nothing can serve.
/// A pinned listener tries only its cluster (no failover: DESIGN.md, DNS).
async fn handle(
    gw: Arc<Gateway>,
    client: TcpStream,
    key: ServiceKey,
    port: u16,
    pinned: Option<String>,
) {
    let service = format!("{}/{}", key.0, key.1);
    let started = Instant::now();
    let state = gw.state();
    let Some(import) = state.imports.get(&key) else {
        reset(client);
        return;
    };
    if !gw.limits.admit(&key, Instant::now()) {
        debug!(%service, "over the service's rate limit; resetting");
        gw.metrics.egress_rate_limited(&key);
        reset(client);
        return;
    }
    let mut targets = order(
        import,
        &state.locality,
        |t| gw.health.usable(t),
        &mut Rng::new(),
    );
    if let Some(cluster) = &pinned {
        targets.retain(|t| t.cluster == *cluster);
    }
    let remote_clusters = import.targets.iter().filter(|t| !t.local).count();
    for target in targets {
        let Some(permit) = gw.limits.acquire(&target.cluster) else {
            gw.metrics
                .egress_attempt_failed(&key, &target.cluster, "at_capacity");
            continue;
        };
        let attempt = if target.local {
            connect_local(&gw, &key, port).await.map(Upstream::Plain)
        } else {
            connect_remote(&gw, target, &key, port)
                .await
                .map(Upstream::Tls)
        };
        match attempt {
            Ok(upstream) => {
                gw.health
                    .connect_result(&target.cluster, true, remote_clusters, Instant::now());
                gw.metrics
                    .egress_connected(&key, &target.cluster, started.elapsed());
                carry(&gw, client, upstream, &key, &target.cluster).await;
                drop(permit);
                return;
            }
            Err(error) => {
                debug!(cluster = %target.cluster, ?error, "attempt failed; trying the next target");
                gw.metrics
                    .egress_attempt_failed(&key, &target.cluster, error.as_str());
                if !target.local
                    && gw.health.connect_result(
                        &target.cluster,
                        false,
                        remote_clusters,
                        Instant::now(),
                    )
                {
                    warn!(cluster = %target.cluster, "ejecting a target after consecutive connect failures");
                    gw.metrics.ejection(&target.cluster);
                }
            }
        }
    }
    info!(%service, "no target can serve; resetting the client connection");
    gw.metrics.egress_failed(&key);
    reset(client);
}

/// What a connection is carried to.
enum Upstream {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

async fn carry(
    gw: &Gateway,
    mut client: TcpStream,
    upstream: Upstream,
    service: &ServiceKey,
    cluster: &str,
) {
    let _active = gw.metrics.egress_active(service, cluster);
    let _open = gw.open_connection();
    let idle = gw.config.idle_timeout;
    let meters = gw.metrics.egress_meters(service, cluster);
    match upstream {
        Upstream::Plain(mut s) => {
            splice(&mut client, &mut s, TlsSide::Neither, idle, &meters).await
        }
        Upstream::Tls(mut s) => splice(&mut client, &mut *s, TlsSide::B, idle, &meters).await,
    };
}

/// A RST, not a FIN: the client learns at once that nothing serves.
fn reset(client: TcpStream) {
    let _ = client.set_zero_linger();
    drop(client);
}

async fn connect_local(
    gw: &Gateway,
    key: &ServiceKey,
    port: u16,
) -> Result<TcpStream, AttemptError> {
    let state = gw.state();
    let export = state.exports.get(key).ok_or(AttemptError::NoEndpoint)?;
    let mut rng = Rng::new();
    let mut endpoints: Vec<(SocketAddr, f64)> = export
        .endpoints
        .iter()
        .filter(|e| e.ready)
        .filter_map(|e| {
            export
                .target_port(e, port)
                .map(|p| (SocketAddr::from((e.address, p)), rng.unit()))
        })
        .collect();
    endpoints.sort_by(|a, b| a.1.total_cmp(&b.1));
    let mut last = AttemptError::NoEndpoint;
    for (addr, _) in endpoints {
        match tokio::time::timeout(gw.config.connect_timeout, TcpStream::connect(addr)).await {
            Ok(Ok(stream)) => {
                let _ = stream.set_nodelay(true);
                return Ok(stream);
            }
            Ok(Err(e)) => last = AttemptError::Connect(format!("{addr}: {e}")),
            Err(_) => last = AttemptError::Connect(format!("{addr}: timed out")),
        }
    }
    Err(last)
}

async fn connect_remote(
    gw: &Gateway,
    target: &Target,
    key: &ServiceKey,
    port: u16,
) -> Result<Box<tokio_rustls::client::TlsStream<TcpStream>>, AttemptError> {
    let budget = gw.config.connect_timeout;
    let deadline = tokio::time::Instant::now() + budget;
    let tcp = tokio::time::timeout_at(deadline, TcpStream::connect(&target.gateway))
        .await
        .map_err(|_| AttemptError::Connect(format!("{}: timed out", target.gateway)))?
        .map_err(|e| AttemptError::Connect(format!("{}: {e}", target.gateway)))?;
    let _ = tcp.set_nodelay(true);
    let name = ServerName::try_from(sni(port, &key.1, &key.0))
        .map_err(|e| AttemptError::Tls(e.to_string()))?;
    let connector = TlsConnector::from(gw.client_tls(&target.cluster).map_err(AttemptError::Tls)?);
    let mut tls = tokio::time::timeout_at(deadline, connector.connect(name, tcp))
        .await
        .map_err(|_| AttemptError::Tls("handshake timed out".into()))?
        .map_err(|e| AttemptError::Tls(e.to_string()))?;
    let resumed = matches!(
        tls.get_ref().1.handshake_kind(),
        Some(rustls::HandshakeKind::Resumed)
    );
    gw.metrics.tls_handshake(&target.cluster, resumed);
    match tokio::time::timeout_at(deadline, status::read(&mut tls)).await {
        Ok(Ok(Status::Connected)) => Ok(Box::new(tls)),
        Ok(Ok(refused)) => Err(AttemptError::Refused(refused)),
        Ok(Err(e)) => Err(AttemptError::Tls(format!(
            "no status from the peer ingress: {e}"
        ))),
        Err(_) => Err(AttemptError::Connect(
            "the peer ingress did not answer in time".into(),
        )),
    }
}
