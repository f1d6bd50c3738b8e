//! The gateway process: wires the control link, certificate, snapshot
//! state, ingress, egress, health probes and the admin port together, and
//! drains on shutdown. [`run`] is what `fedgw` (and `fedctl run` with
//! `gateway.embedded: true`) calls. Each task gets the handles it uses
//! ([`Egress`], [`Ingress`]); nothing imports this module but the binaries.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::{Context, anyhow};
use fedmesh_proto::config::Config;
use fedmesh_proto::identity::{LiveCert, SharedTrust};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tracing::info;

use crate::admin::{self, AdminState};
use crate::control::ControlLink;
use crate::egress::{self, Egress};
use crate::health::{Health, probes};
use crate::ingress::{self, Ingress};
use crate::lifecycle;
use crate::limits::Limits;
use crate::metrics::Metrics;
use crate::observe::Observe;
use crate::pools::Pools;
use crate::status::StatusSources;
use crate::tls::GatewayTls;
use crate::wire;

/// How often the pools' counters reach the metrics.
const POOL_REPORT: Duration = Duration::from_secs(1);

/// How long shutdown waits for open connections to finish.
const DRAIN: Duration = Duration::from_secs(5);

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
    // Spans and access log lines: queued by the data path, written by tasks
    // of their own; a file that cannot be opened fails the start.
    let observe = Arc::new(
        Observe::start(config, metrics.clone())
            .context("while starting gateway.tracing and gateway.accessLog")?,
    );
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

    let (life, drain) = lifecycle::new();
    // Egress dials the pooled transport only; ingress also takes the
    // first-wave tunnel, so gateways of the previous release still reach it.
    let dial_tls = GatewayTls::new(cert.clone(), trust.clone(), &[wire::ALPN_H2]);
    let serve_tls = GatewayTls::new(
        cert.clone(),
        trust.clone(),
        &[wire::ALPN_H2, wire::ALPN_TUNNEL],
    );
    let pools = Arc::new(Pools::new(
        dial_tls,
        gw_config.connect_timeout,
        gw_config.max_connections_per_target,
    ));
    let health = Arc::new(Health::new(&gw_config));
    // What `fedctl check` learns of this gateway, sampled and reported.
    let sources = StatusSources {
        admin: admin_state.clone(),
        health: health.clone(),
        states: state_rx.clone(),
        cert: cert.clone(),
    };
    let (status_tx, status_rx) = watch::channel(sources.sample());
    let reporter = link.clone();
    // One endpoint pool: the ingress and the egress reach the same endpoints.
    let endpoints = Arc::new(crate::http::Endpoints::new());
    let egress = Arc::new(Egress {
        states: state_rx.clone(),
        health: health.clone(),
        limits: Arc::new(Limits::new(&gw_config)),
        metrics: metrics.clone(),
        pools: pools.clone(),
        endpoints: endpoints.clone(),
        retry_budgets: Arc::new(crate::http::RetryBudgets::new()),
        connect_timeout: gw_config.connect_timeout,
        idle_timeout: gw_config.idle_timeout,
        bind: gw_config.ingress_listen.ip(),
        observe: observe.clone(),
        life: life.clone(),
    });
    let ingress = Arc::new(Ingress {
        states: state_rx.clone(),
        health: health.clone(),
        metrics: metrics.clone(),
        trust,
        tls: serve_tls.server().context("while building ingress TLS")?,
        connect_timeout: gw_config.connect_timeout,
        idle_timeout: gw_config.idle_timeout,
        drain_timeout: DRAIN,
        endpoints,
        observe: observe.clone(),
        life,
    });
    let tasks = [
        tokio::spawn(ingress::serve(ingress, ingress_listener)),
        tokio::spawn(egress::serve(egress)),
        tokio::spawn(pools.clone().report(metrics.clone(), POOL_REPORT)),
        tokio::spawn(probes::probe_loop(
            health,
            metrics,
            pools.clone(),
            state_rx,
            gw_config.probe_interval,
        )),
        tokio::spawn(async move { link.keep_renewed(cert, issued.not_after).await }),
        tokio::spawn(sources.publish(status_tx)),
        tokio::spawn(async move { reporter.report(status_rx).await }),
    ];
    admin_state.ready.store(true, Ordering::Relaxed);
    info!("gateway ingress listening on {}", bound.ingress);

    shutdown.await;
    info!("gateway draining: no new connections, open ones get {DRAIN:?}");
    admin_state.ready.store(false, Ordering::Relaxed);
    drain.start();
    for t in &tasks {
        t.abort();
    }
    let left = drain.wait_idle(DRAIN).await;
    // What the last requests left for the collector and the access log.
    observe.drain(DRAIN).await;
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
