//! `fedctl run`: builds the control plane from a validated config and
//! serves until SIGTERM or SIGINT.
//!
//! Stages, in order ([`run`] reads as this list): the identity (state store,
//! CA, gateway bootstrap token, control leaf: `identity.rs`); every
//! listener bound (a bind error names the config field, and nothing is
//! served yet: `listen.rs`); the stored peers; the service flows (registry
//! → exports → table → DNS zone: `services.rs`); the peering tasks
//! (dialers, stale expiry, leaf renewal); then the peering (TLS), admin
//! (loopback or unix socket), gateway API (TLS) and DNS servers, and the
//! web port when `control.webListen` is set (`web_port`), each logging
//! one "listening on ADDR" line.

mod identity;
mod listen;
mod rotation;
mod services;

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use fedmesh_dns::{DnsConfig, DnsServer};
use fedmesh_proto::config::Config;
use fedmesh_proto::v1::gateway_config_server::GatewayConfigServer;
use fedmesh_proto::v1::peering_server::PeeringServer;
use fedmesh_proto::v1::{self, admin_server::AdminServer};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tonic::transport::Server;
use tracing::{info, warn};

use self::identity::Identity;
use self::listen::{Listeners, serve_admin};
use self::services::Flows;
use crate::api::admin::{AdminService, CheckRunner, TokenIssuer};
use crate::api::admin_health;
use crate::api::gateway::{GatewayApi, GatewayIdentity, GatewayInputs};
use crate::api::gateways::GatewayRegistry;
use crate::ca::LEAF_LIFETIME;
use crate::context::Control;
use crate::model::Locality;
use crate::peering::handles::{self, ALPN_H2, DIAL_TIMEOUT, Dialer, PeeringHandles, Timing};
use crate::peering::server::{JoinLimitLayer, MAX_CONCURRENT_JOINS, PeeringService};
use crate::peering::sync::AckedViews;
use crate::peering::{MAX_SYNC_MESSAGE, PeerSet};
use crate::store::{Role, Store};
use crate::web::WebInputs;
use fedmesh_proto::transport::{
    ListenerLimits, Unauthenticated, tls_incoming, tls_incoming_limited,
};

/// How long shutdown waits for servers to finish.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(3);

/// Runs the control plane until a termination signal.
///
/// # Errors
/// When the store, CA, token file or a listener cannot be set up; each
/// error says which and what to do.
pub async fn run(config: Config) -> anyhow::Result<()> {
    raise_open_file_limit();
    let id = Identity::load(&config)?;
    let mut listeners = Listeners::bind(&config).await?;
    let peers = load_peers(&id.store)?;
    let flows = services::start(&config, &id.store, &peers, &id.bootstrap).await?;
    let dialer = Dialer {
        peering: peering_handles(&config, &id, &listeners, &peers, &flows),
        cert: id.cert.clone(),
        timeout: DIAL_TIMEOUT,
    };
    start_peering(&config, &id, &dialer);
    let dns_config = DnsConfig {
        listen: config.dns.listen,
        upstreams: config.dns.upstreams.clone(),
    };
    let dns = DnsServer::start(dns_config, flows.zone.clone())
        .await
        .context("while starting the DNS server")?;
    let (stop_tx, stop_rx) = watch::channel(false);
    let addrs = (listeners.peering_addr, listeners.gateway_addr);
    let admin_text = listeners.admin_text.clone();
    let admin_socket = listeners.admin_socket.clone();
    // The gateway API fills it; `fedctl check` and the web port read it.
    let gateways = GatewayRegistry::new();
    let web = web_port(
        &config,
        &id,
        &dialer,
        &flows,
        &gateways,
        dns.query_counters(),
    )
    .start(listeners.web.take(), &stop_rx);
    let mut tasks = serve(&config, &id, &dialer, &flows, listeners, gateways, &stop_rx).await?;
    info!(cluster = %config.cluster, trust_domain = %config.trust_domain, "control plane started");
    info!("peering listening on {}", addrs.0);
    info!("gateway API listening on {}", addrs.1);
    info!("admin listening on {admin_text}");
    info!("dns listening on {}", dns.local_addr());
    if let Some((addr, task)) = web {
        info!("web listening on {addr}");
        tasks.push(task);
    }
    tasks.extend(embedded_gateway(&config, &stop_rx));

    wait_for_signal().await;
    info!("shutting down");
    dialer.peering.peers.shutdown();
    let _ = stop_tx.send(true);
    let drained = async {
        for task in tasks {
            let _ = task.await;
        }
    };
    let _ = tokio::time::timeout(SHUTDOWN_GRACE, drained).await;
    dns.shutdown().await;
    if let Some(socket) = admin_socket {
        socket.remove_if_ours();
    }
    info!("stopped");
    Ok(())
}

/// The stored peers, all stale until they reconnect.
fn load_peers(store: &Store) -> anyhow::Result<Arc<PeerSet>> {
    let (peers, skipped) = PeerSet::new(store.peers().context("while loading peers")?);
    for problem in skipped {
        warn!(%problem, "stored peer not loaded");
    }
    Ok(Arc::new(peers))
}

/// The handles the peering tasks share, with this cluster's `ClusterInfo`
/// as sent at join and on every stream.
fn peering_handles(
    config: &Config,
    id: &Identity,
    listeners: &Listeners,
    peers: &Arc<PeerSet>,
    flows: &Flows,
) -> PeeringHandles {
    let mut peering_advertise = config.control.peering_advertise.clone();
    if peering_advertise.port == 0 {
        peering_advertise.port = listeners.peering_addr.port();
    }
    let me = v1::ClusterInfo {
        name: config.cluster.clone(),
        trust_domain: config.trust_domain.clone(),
        locality: Some(locality(config).to_proto()),
        gateway_address: config.gateway.advertise.to_string(),
        dns_zone: config.dns.zone.clone(),
        ca_roots_pem: id.rotation.view().roots_pem.clone(),
        peering_endpoint: peering_advertise.to_string(),
    };
    PeeringHandles {
        me: Arc::new(me),
        timing: Timing {
            heartbeat: config.control.heartbeat_interval,
            dead_after: config.control.peer_dead_after,
        },
        peers: peers.clone(),
        store: id.store.clone(),
        exports: flows.exports.clone(),
        acked: Arc::new(AckedViews::default()),
        table: flows.table_events.clone(),
        ca: id.rotation.clone(),
    }
}

fn locality(config: &Config) -> Locality {
    Locality {
        region: config.locality.region.clone(),
        zone: config.locality.zone.clone(),
    }
}

/// Dials every peer this cluster joined, expires stale peers, and keeps
/// the control leaf renewed.
fn start_peering(config: &Config, id: &Identity, dialer: &Dialer) {
    for view in dialer.peering.peers.views() {
        if view.record.role == Role::Dialer {
            dialer.spawn(view.record.name.clone());
        }
    }
    tokio::spawn(expire_stale_peers(
        dialer.peering.peers.clone(),
        config.control.stale_grace,
    ));
    let ca = id.rotation.subscribe();
    tokio::spawn(crate::renewal::keep_renewed(
        ca,
        id.cert.clone(),
        LEAF_LIFETIME,
    ));
    tokio::spawn(identity::follow_signer(
        config.gateway.bootstrap_token_file.clone(),
        id.rotation.subscribe(),
    ));
}

type ServerTask = JoinHandle<Result<(), tonic::transport::Error>>;

/// Serves peering, the gateway API and admin until `stop` turns true; the
/// gateway API and admin ports also answer gRPC health and reflection.
async fn serve(
    config: &Config,
    id: &Identity,
    dialer: &Dialer,
    flows: &Flows,
    listeners: Listeners,
    gateways: Arc<GatewayRegistry>,
    stop: &watch::Receiver<bool>,
) -> anyhow::Result<Vec<ServerTask>> {
    let peers = &dialer.peering.peers;
    let peering_tls =
        handles::server_tls(&id.cert, peers.trust()).context("while building peering TLS")?;
    let peering = Server::builder()
        // Join is served before authentication: small messages, few at once.
        .layer(JoinLimitLayer::new(MAX_CONCURRENT_JOINS))
        .add_service(
            PeeringServer::new(PeeringService::new(dialer.peering.clone()))
                .max_decoding_message_size(MAX_SYNC_MESSAGE)
                .max_encoding_message_size(MAX_SYNC_MESSAGE),
        )
        .serve_with_incoming_shutdown(
            tls_incoming(listeners.peering, peering_tls, "peering"),
            stopped(stop.clone()),
        );
    // Gateways authenticate by token, not certificate: a watch with the
    // right token lifts its connection's idle deadline.
    let gateway_guard = Unauthenticated::new(ListenerLimits::default());
    let gateway_api =
        gateway_api(config, id, dialer, flows, gateways.clone()).with_guard(gateway_guard.clone());
    let gateway_incoming = tls_incoming_limited(
        listeners.gateway,
        gateway_api_tls(id)?,
        "gateway API",
        gateway_guard,
    );
    let gateway = Server::builder()
        .add_service(GatewayConfigServer::new(gateway_api))
        .add_service(admin_health::health_for::<GatewayConfigServer<GatewayApi>>().await)
        .add_service(admin_health::reflection()?)
        .serve_with_incoming_shutdown(gateway_incoming, stopped(stop.clone()));
    let admin = AdminService::new(
        dialer.clone(),
        flows.table.clone(),
        TokenIssuer {
            address: dialer.peering.me.peering_endpoint.clone(),
            pin: id.ca.pin(),
        },
        check_runner(config, id, peers, flows, gateways.clone()),
    )
    .with_local(flows.local.clone())
    .with_drain(flows.drain.clone())
    .with_ca(rotation::start(&id.rotation, peers, &gateways));
    Ok(vec![
        tokio::spawn(peering),
        tokio::spawn(gateway),
        serve_admin(
            listeners.admin,
            tonic::service::Routes::new(AdminServer::new(admin))
                .add_service(admin_health::health_for::<AdminServer<AdminService>>().await)
                .add_service(admin_health::reflection()?),
            stopped(stop.clone()),
        ),
    ])
}

/// The web port's handles (`control.webListen`): read-only views of the
/// peers, exports, table, gateways, DNS counters and certificates.
fn web_port(
    config: &Config,
    id: &Identity,
    dialer: &Dialer,
    flows: &Flows,
    gateways: &Arc<GatewayRegistry>,
    dns: Arc<fedmesh_dns::QueryCounters>,
) -> WebPort {
    WebPort(WebInputs {
        cluster: config.cluster.clone(),
        locality: locality(config),
        peers: dialer.peering.peers.clone(),
        acked: dialer.peering.acked.clone(),
        exports: flows.exports.clone(),
        table: flows.table.clone(),
        gateways: gateways.clone(),
        gateway_name: config.gateway.name.clone(),
        dns,
        root_not_after: id.ca.not_after(),
        control_cert: id.cert.clone(),
    })
}

/// The web port stage: serves when `control.webListen` bound a listener.
struct WebPort(WebInputs);

impl WebPort {
    fn start(
        self,
        listener: Option<(tokio::net::TcpListener, std::net::SocketAddr)>,
        stop: &watch::Receiver<bool>,
    ) -> Option<(std::net::SocketAddr, ServerTask)> {
        let (listener, addr) = listener?;
        let stop = stopped(stop.clone());
        let task = tokio::spawn(async move {
            crate::web::serve(listener, self.0, stop).await;
            Ok(())
        });
        Some((addr, task))
    }
}

fn gateway_api(
    config: &Config,
    id: &Identity,
    dialer: &Dialer,
    flows: &Flows,
    gateways: Arc<GatewayRegistry>,
) -> GatewayApi {
    let me = GatewayIdentity {
        cluster: config.cluster.clone(),
        trust_domain: config.trust_domain.clone(),
        locality: locality(config),
    };
    let inputs = GatewayInputs {
        table: flows.table.clone(),
        local: flows.local.clone(),
        listen_ports: flows.listen_ports.clone(),
        peers: dialer.peering.peers.clone(),
        gateways,
    };
    GatewayApi::new(me, id.rotation.clone(), id.bootstrap.clone(), inputs)
}

/// `fedctl check` over the state it reads.
fn check_runner(
    config: &Config,
    id: &Identity,
    peers: &Arc<PeerSet>,
    flows: &Flows,
    gateways: Arc<GatewayRegistry>,
) -> CheckRunner {
    let ctl = Control {
        config: config.clone(),
        ca: id.ca.clone(),
        rotation: id.rotation.clone(),
        cert: id.cert.clone(),
        peers: peers.clone(),
        bootstrap: id.bootstrap.clone(),
        local: flows.local.clone(),
        table: flows.table.clone(),
        gateways,
        store: id.store.clone(),
    };
    Arc::new(move || crate::checks::run(&ctl))
}

fn gateway_api_tls(id: &Identity) -> anyhow::Result<Arc<rustls::ServerConfig>> {
    // Gateways authenticate with the bootstrap token, not a certificate.
    let no_client_auth = rustls::server::WebPkiClientVerifier::no_client_auth();
    let tls = fedmesh_proto::identity::server_config(&id.cert, no_client_auth, &[ALPN_H2])
        .context("while building gateway API TLS")?;
    Ok(Arc::new(tls))
}

/// gateway.embedded: this process also runs the gateway, which talks to
/// this control plane over its own gateway API like fedgw does.
fn embedded_gateway(config: &Config, stop: &watch::Receiver<bool>) -> Option<ServerTask> {
    config.gateway.embedded.then(|| {
        let config = config.clone();
        let stop = stopped(stop.clone());
        tokio::spawn(async move {
            if let Err(error) = fedmesh_gateway::gateway::run(&config, stop).await {
                let error = fedmesh_proto::chain::chain_text(error.as_ref());
                tracing::error!(%error, "embedded gateway stopped");
            }
            Ok(())
        })
    })
}

/// Turns peers stale for longer than `staleGrace` into disconnected ones.
async fn expire_stale_peers(peers: Arc<PeerSet>, grace: Duration) {
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    loop {
        tick.tick().await;
        for peer in peers.expire_stale(grace) {
            info!(%peer, "peer stale for longer than staleGrace; now disconnected");
        }
    }
}

/// One socket per peer, gateway and (embedded gateway) VIP listener: raise
/// the soft open-file limit to the hard limit, and say what it is.
fn raise_open_file_limit() {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => info!(limit, "open-file limit"),
        Err(error) => warn!(%error, "cannot raise the open-file limit"),
    }
}

async fn stopped(mut rx: watch::Receiver<bool>) {
    let _ = rx.wait_for(|stop| *stop).await;
}

async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(error) => {
            warn!(%error, "cannot watch SIGTERM; only Ctrl-C stops this process");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}
