//! The gateway process: wires the control link, certificate, snapshot
//! state, ingress, egress, health probes and the admin port together, and
//! drains on shutdown. [`run`] is what `fedgw` (and `fedctl run` with
//! `gateway.embedded: true`) calls.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, anyhow};
use fedmesh_proto::config::{Config, GatewayConfig};
use fedmesh_proto::identity::{
    self, LiveCert, PathRule, PeerClientVerifier, PeerServerVerifier, SharedTrust,
};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tracing::info;

use crate::admin::{self, AdminState};
use crate::control::ControlLink;
use crate::health::{self, Health};
use crate::metrics::Metrics;
use crate::state::GatewayState;
use crate::{egress, ingress};

/// ALPN of the gateway-to-gateway tunnel.
pub const ALPN: &[u8] = b"fedmesh-gw/1";

/// How long shutdown waits for open connections to finish.
const DRAIN: Duration = Duration::from_secs(5);

/// Everything the gateway's tasks share.
#[derive(Debug)]
pub struct Gateway {
    /// The `gateway` config section.
    pub config: GatewayConfig,
    /// This gateway's certificate, renewed in place.
    pub cert: LiveCert,
    /// Peer roots, from the latest snapshot.
    pub trust: SharedTrust,
    /// Remote target health.
    pub health: Arc<Health>,
    /// Rate limits and per-target caps.
    pub limits: crate::limits::Limits,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// TLS for ingress: a peer gateway's client certificate is required.
    pub ingress_tls: Arc<rustls::ServerConfig>,
    states: watch::Receiver<Arc<GatewayState>>,
    client_tls: Mutex<HashMap<String, Arc<rustls::ClientConfig>>>,
    open: Arc<AtomicUsize>,
    draining: watch::Receiver<bool>,
}

/// Counts one open connection (ingress or egress) until dropped.
#[derive(Debug)]
pub struct OpenGuard(Arc<AtomicUsize>);

impl Drop for OpenGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Gateway {
    /// Counts a connection as open until the guard drops (drain waits for
    /// them).
    pub fn open_connection(&self) -> OpenGuard {
        self.open.fetch_add(1, Ordering::AcqRel);
        OpenGuard(self.open.clone())
    }

    /// Resolves when the gateway starts draining: listeners stop accepting.
    pub async fn drained(&self) {
        let mut rx = self.draining.clone();
        let _ = rx.wait_for(|d| *d).await;
    }

    /// The latest snapshot.
    pub fn state(&self) -> Arc<GatewayState> {
        self.states.borrow().clone()
    }

    /// A receiver of snapshots.
    pub fn states(&self) -> watch::Receiver<Arc<GatewayState>> {
        self.states.clone()
    }

    /// TLS for dialing `cluster`'s gateways: our certificate, and theirs
    /// must be a gateway identity of that cluster. One config per cluster,
    /// kept, so TLS sessions resume.
    ///
    /// # Errors
    /// When rustls refuses the configuration.
    pub fn client_tls(&self, cluster: &str) -> Result<Arc<rustls::ClientConfig>, String> {
        let mut cache = self.client_tls.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(c) = cache.get(cluster) {
            return Ok(c.clone());
        }
        let verifier = PeerServerVerifier::new(
            self.trust.clone(),
            cluster,
            PathRule::Prefix("/gateway/".into()),
        );
        let tls = Arc::new(
            identity::client_config(Some(&self.cert), verifier, &[ALPN])
                .map_err(|e| e.to_string())?,
        );
        cache.insert(cluster.to_string(), tls.clone());
        Ok(tls)
    }
}

/// Where a running gateway listens.
#[derive(Debug, Clone, Copy)]
pub struct Bound {
    /// Ingress.
    pub ingress: SocketAddr,
    /// Admin port.
    pub admin: SocketAddr,
}

/// Runs a gateway until `shutdown` resolves, then drains.
///
/// # Errors
/// When the token file cannot be read or a listener cannot bind.
pub async fn run(
    config: &Config,
    shutdown: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    let gw_config = config.gateway.clone();
    let token_file = &gw_config.bootstrap_token_file;
    let token = std::fs::read_to_string(token_file).with_context(|| {
        format!(
            "cannot read gateway.bootstrapTokenFile {}; `fedctl run` writes it at start",
            token_file.display()
        )
    })?;
    let control_addr = gw_config.control.as_ref().map_or_else(
        || dialable(config.control.gateway_listen).to_string(),
        ToString::to_string,
    );
    let link = ControlLink::new(control_addr.clone(), &token, &gw_config.name)
        .map_err(|e| anyhow!("gateway.bootstrapTokenFile {}: {e}", token_file.display()))?;

    let ingress_listener = TcpListener::bind(gw_config.ingress_listen)
        .await
        .with_context(|| {
            format!(
                "cannot listen on gateway.ingressListen {}",
                gw_config.ingress_listen
            )
        })?;
    let admin_listener = TcpListener::bind(gw_config.admin_listen)
        .await
        .with_context(|| {
            format!(
                "cannot listen on gateway.adminListen {}",
                gw_config.admin_listen
            )
        })?;
    let bound = Bound {
        ingress: ingress_listener.local_addr()?,
        admin: admin_listener.local_addr()?,
    };
    let metrics = Arc::new(Metrics::new());
    let admin_state = Arc::new(AdminState::default());
    tokio::spawn(admin::serve(
        admin_listener,
        metrics.clone(),
        admin_state.clone(),
    ));
    info!("gateway admin listening on {}", bound.admin);

    tokio::pin!(shutdown);
    info!(control = %control_addr, gateway = %gw_config.name, "getting a certificate from the control plane");
    let issued = tokio::select! {
        issued = link.issue_until_ok() => issued,
        () = &mut shutdown => return Ok(()),
    };
    let cert =
        LiveCert::new(issued.chain, issued.key).context("while loading the gateway certificate")?;
    let (snap_tx, mut snap_rx) = watch::channel(None);
    let watcher = link.clone();
    tokio::spawn(async move { watcher.watch(snap_tx).await });
    let first = tokio::select! {
        r = snap_rx.wait_for(Option::is_some) => r.map_err(|_| anyhow!("snapshot stream stopped"))?.clone(),
        () = &mut shutdown => return Ok(()),
    };
    let first = first.ok_or_else(|| anyhow!("no snapshot"))?;
    let trust = SharedTrust::new(first.trust.clone());
    metrics.prepare(&first);
    let (state_tx, state_rx) = watch::channel(first);
    let forward_trust = trust.clone();
    let forward_metrics = metrics.clone();
    tokio::spawn(async move {
        while snap_rx.changed().await.is_ok() {
            let next = snap_rx.borrow_and_update().clone();
            if let Some(state) = next {
                forward_trust.replace(state.trust.clone());
                forward_metrics.prepare(&state);
                state_tx.send_replace(state);
            }
        }
    });

    let (drain_tx, drain_rx) = watch::channel(false);
    let verifier = PeerClientVerifier::new(trust.clone(), true);
    let ingress_tls = Arc::new(
        identity::server_config(&cert, verifier, &[ALPN]).context("while building ingress TLS")?,
    );
    let gw = Arc::new(Gateway {
        health: Arc::new(Health::new(&gw_config)),
        limits: crate::limits::Limits::new(&gw_config),
        config: gw_config.clone(),
        cert: cert.clone(),
        trust,
        metrics,
        ingress_tls,
        states: state_rx,
        client_tls: Mutex::new(HashMap::new()),
        open: Arc::new(AtomicUsize::new(0)),
        draining: drain_rx,
    });
    let tasks = [
        tokio::spawn(ingress::serve(gw.clone(), ingress_listener)),
        tokio::spawn(egress::run(gw.clone())),
        tokio::spawn(health::probe_loop(
            gw.health.clone(),
            gw.metrics.clone(),
            gw.states(),
            gw_config.probe_interval,
        )),
        tokio::spawn(async move { link.keep_renewed(cert, issued.not_after).await }),
    ];
    admin_state.ready.store(true, Ordering::Relaxed);
    info!("gateway ingress listening on {}", bound.ingress);

    shutdown.await;
    info!("gateway draining: no new connections, open ones get {DRAIN:?}");
    admin_state.ready.store(false, Ordering::Relaxed);
    let _ = drain_tx.send(true);
    for t in &tasks {
        t.abort();
    }
    let deadline = tokio::time::Instant::now() + DRAIN;
    while gw.open.load(Ordering::Acquire) > 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let left = gw.open.load(Ordering::Acquire);
    info!(cut = left, "gateway stopped");
    Ok(())
}

/// The address to dial for a listen address: a wildcard means this host.
fn dialable(listen: SocketAddr) -> SocketAddr {
    if listen.ip().is_unspecified() {
        SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), listen.port())
    } else {
        listen
    }
}
