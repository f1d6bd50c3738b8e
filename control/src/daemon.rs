//! `fedctl run`: builds the control plane from a validated config and
//! serves until SIGTERM or SIGINT.
//!
//! Order: open the state store, load or create the CA, write the gateway
//! bootstrap token, issue the control leaf; bind every listener (a bind
//! error names the config field, and nothing is served yet); load peers and
//! start their dialers; then serve peering (TLS), admin (loopback or unix
//! socket) and the gateway API (TLS), and log one "listening on ADDR" line
//! for each.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use fedmesh_dns::{DnsConfig, DnsServer};
use fedmesh_proto::config::{AdminListen, Config, RegistryKind};
use fedmesh_proto::identity::LiveCert;
use fedmesh_proto::v1::admin_server::AdminServer;
use fedmesh_proto::v1::gateway_config_server::GatewayConfigServer;
use fedmesh_proto::v1::peering_server::PeeringServer;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::{TcpListenerStream, UnixListenerStream};
use tonic::transport::Server;
use tracing::{info, warn};

use crate::api::admin::AdminService;
use crate::api::gateway::GatewayApi;
use crate::ca::{ClusterCa, LEAF_LIFETIME};
use crate::context::{ALPN_H2, Control};
use crate::dnsfeed;
use crate::exports::{self, ExportState};
use crate::import_services::{ImportServices, ListenPorts};
use crate::model::LocalSnapshot;
use crate::peering::server::PeeringService;
use crate::peering::sync::AckedViews;
use crate::peering::{MAX_SYNC_MESSAGE, PeerSet, PeerView, dialer};
use crate::registry::Registry;
use crate::registry::kubernetes::Kubernetes;
use crate::registry::static_files::StaticFiles;
use crate::store::{Role, Store};
use crate::table::{self, LocalCluster, TableSnapshot, TableTask, VipMode};
use fedmesh_proto::token::BootstrapToken;
use fedmesh_proto::transport::tls_incoming;

/// How long shutdown waits for servers to finish.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(3);
/// How often the static registry checks its folder for changes.
const STATIC_POLL: Duration = Duration::from_millis(250);

/// Runs the control plane until a termination signal.
///
/// # Errors
/// When the store, CA, token file or a listener cannot be set up; each
/// error says which and what to do.
pub async fn run(config: Config) -> anyhow::Result<()> {
    let store = Arc::new(Store::open(&config.data_dir).context("while opening the state store")?);
    let ca = load_ca(&config, &store)?;
    let bootstrap = load_bootstrap(&config.gateway.bootstrap_token_file, &ca)?;
    let leaf = ca
        .issue_control_leaf(LEAF_LIFETIME)
        .context("while issuing the control plane certificate")?;
    let key = leaf.key.ok_or_else(|| anyhow!("control leaf has no key"))?;
    let cert = LiveCert::new(leaf.chain, key).context("while loading the control certificate")?;

    let peering = bind(config.control.peering_listen, "control.peeringListen").await?;
    let gateway = bind(config.control.gateway_listen, "control.gatewayListen").await?;
    let admin = bind_admin(&config.control.admin_listen).await?;
    let dns_config = DnsConfig {
        listen: config.dns.listen,
        upstreams: config.dns.upstreams.clone(),
    };
    let admin_text = match &admin {
        AdminListener::Tcp(_, addr) => addr.to_string(),
        AdminListener::Unix(_) => config.control.admin_listen.to_string(),
    };
    let peering_addr = peering.local_addr()?;
    let gateway_addr = gateway.local_addr()?;

    let mut peering_advertise = config.control.peering_advertise.clone();
    if peering_advertise.port == 0 {
        peering_advertise.port = peering_addr.port();
    }
    let (peers, skipped) = PeerSet::new(store.peers().context("while loading peers")?);
    for problem in skipped {
        warn!(%problem, "stored peer not loaded");
    }

    // Registry → exports → table, each an owner task publishing on a watch.
    let kube = kube_client(&config).await?;
    let registry = make_registry(&config, kube.clone())?;
    info!(registry = %registry.describe(), "reading services");
    let (local_tx, local_rx) = watch::channel(Arc::new(LocalSnapshot::default()));
    tokio::spawn(registry.run(local_tx));
    let initial_exports = ExportState::new(exports::new_epoch(), 0, Default::default());
    let (exports_tx, exports_rx) = watch::channel(Arc::new(initial_exports));
    tokio::spawn(exports::run(store.clone(), local_rx.clone(), exports_tx));
    let (table_events, table_events_rx) = mpsc::channel(256);
    let (table_tx, table_rx) = watch::channel(Arc::new(TableSnapshot::default()));
    // VIPs: from gateway.vipRange, or in Kubernetes mode the ClusterIPs of
    // the import Services (whose target ports the gateway listens on).
    let (vips, listen_ports, _static_listen) = match kube {
        Some(client) => {
            let namespace = config
                .registry
                .import_namespace
                .clone()
                .unwrap_or_else(|| client.default_namespace().to_string());
            tokio::spawn(crate::import_services::publish_bootstrap_secret(
                client.clone(),
                namespace.clone(),
                bootstrap.encode(),
            ));
            let published = ImportServices {
                client,
                namespace,
                cluster: config.cluster.clone(),
                selector: config.registry.gateway_selector.clone(),
                ports: config.registry.import_ports.clone(),
            }
            .spawn(table_rx.clone());
            (VipMode::External(published.vips), published.listen, None)
        }
        None => {
            let (tx, rx) = watch::channel(Arc::new(ListenPorts::new()));
            (VipMode::Range(config.gateway.vip_range), rx, Some(tx))
        }
    };
    let (zone_tx, zone_rx) = watch::channel(Arc::new(fedmesh_dns::ZoneSnapshot::default()));
    tokio::spawn(dnsfeed::run(
        table_rx.clone(),
        config.dns.zone.clone(),
        config.dns.ttl,
        zone_tx,
    ));

    let ctl = Arc::new(Control {
        gateway_advertise: config.gateway.advertise.to_string(),
        peering_advertise: peering_advertise.to_string(),
        config,
        store,
        ca,
        cert,
        peers,
        bootstrap,
        local: local_rx,
        exports: exports_rx.clone(),
        acked_views: AckedViews::default(),
        table_events,
        table: table_rx,
        listen_ports,
    });
    let dns = DnsServer::start(dns_config, zone_rx)
        .await
        .context("while starting the DNS server")?;
    let viewer = ctl.clone();
    tokio::spawn(table::run(TableTask {
        me: LocalCluster {
            name: ctl.config.cluster.clone(),
            locality: ctl.locality(),
        },
        store: ctl.store.clone(),
        exports: exports_rx,
        events: table_events_rx,
        peer_changes: ctl.peers.subscribe(),
        peers: Box::new(move || viewer.peers.views().iter().map(PeerView::link).collect()),
        vips,
        out: table_tx,
    }));
    for view in ctl.peers.views() {
        if view.record.role == Role::Dialer {
            dialer::spawn(ctl.clone(), view.record.name.clone());
        }
    }
    tokio::spawn(expire_stale_peers(ctl.clone()));
    let renewing = ctl.clone();
    tokio::spawn(async move {
        crate::renewal::keep_renewed(&renewing.ca, renewing.cert.clone(), LEAF_LIFETIME).await;
    });

    let (stop_tx, stop_rx) = watch::channel(false);
    let peering_tls = ctl
        .peering_server_tls()
        .context("while building peering TLS")?;
    let gateway_tls = gateway_api_tls(&ctl)?;
    let servers = [
        tokio::spawn(
            Server::builder()
                .add_service(
                    PeeringServer::new(PeeringService::new(ctl.clone()))
                        .max_decoding_message_size(MAX_SYNC_MESSAGE)
                        .max_encoding_message_size(MAX_SYNC_MESSAGE),
                )
                .serve_with_incoming_shutdown(
                    tls_incoming(peering, peering_tls, "peering"),
                    stopped(stop_rx.clone()),
                ),
        ),
        tokio::spawn(
            Server::builder()
                .add_service(GatewayConfigServer::new(GatewayApi::new(ctl.clone())))
                .serve_with_incoming_shutdown(
                    tls_incoming(gateway, gateway_tls, "gateway API"),
                    stopped(stop_rx.clone()),
                ),
        ),
        serve_admin(
            admin,
            AdminServer::new(AdminService::new(ctl.clone())),
            stopped(stop_rx.clone()),
        ),
    ];
    info!(cluster = %ctl.config.cluster, trust_domain = %ctl.config.trust_domain, "control plane started");
    info!("peering listening on {peering_addr}");
    info!("gateway API listening on {gateway_addr}");
    info!("admin listening on {admin_text}");
    info!("dns listening on {}", dns.local_addr());

    let gateway = ctl.config.gateway.embedded.then(|| {
        // gateway.embedded: this process also runs the gateway, which talks
        // to this control plane over its own gateway API like fedgw does.
        let config = ctl.config.clone();
        let stop = stopped(stop_rx.clone());
        tokio::spawn(async move {
            if let Err(error) = fedmesh_gateway::gateway::run(&config, stop).await {
                tracing::error!(error = %format!("{error:#}"), "embedded gateway stopped");
            }
        })
    });

    wait_for_signal().await;
    info!("shutting down");
    ctl.peers.shutdown();
    let _ = stop_tx.send(true);
    let drained = async {
        futures_join(servers).await;
        futures_join(gateway).await;
    };
    let _ = tokio::time::timeout(SHUTDOWN_GRACE, drained).await;
    dns.shutdown().await;
    if let AdminListen::Unix(path) = &ctl.config.control.admin_listen {
        let _ = std::fs::remove_file(path);
    }
    info!("stopped");
    Ok(())
}

/// The admin listener, bound before anything is served.
enum AdminListener {
    Tcp(TcpListener, SocketAddr),
    Unix(tokio::net::UnixListener),
}

/// The Kubernetes client, in Kubernetes mode: the pod's service account,
/// else KUBECONFIG or ~/.kube/config. Nothing is contacted yet.
async fn kube_client(config: &Config) -> anyhow::Result<Option<kube::Client>> {
    if config.registry.kind != RegistryKind::Kubernetes {
        return Ok(None);
    }
    let client = kube::Client::try_default().await.context(
        "while loading the Kubernetes client config (registry.kind kubernetes): run in a pod with a service account, or set KUBECONFIG",
    )?;
    Ok(Some(client))
}

/// The registry the config asks for.
fn make_registry(config: &Config, kube: Option<kube::Client>) -> anyhow::Result<Box<dyn Registry>> {
    match config.registry.kind {
        RegistryKind::Static => {
            // Like dataDir, the manifest folder is created on first start.
            let path = &config.registry.path;
            std::fs::create_dir_all(path)
                .with_context(|| format!("cannot create registry.path {}", path.display()))?;
            Ok(Box::new(StaticFiles::new(path, STATIC_POLL)))
        }
        RegistryKind::Kubernetes => {
            let client = kube.ok_or_else(|| anyhow!("no Kubernetes client"))?;
            Ok(Box::new(Kubernetes::new(
                client,
                config.registry.namespaces.clone(),
            )))
        }
    }
}

async fn bind(addr: SocketAddr, field: &str) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr).await.with_context(|| {
        format!("cannot listen on {field} {addr}; stop whatever uses it or choose another address")
    })
}

async fn bind_admin(listen: &AdminListen) -> anyhow::Result<AdminListener> {
    if !listen.is_allowed() {
        bail!(
            "control.adminListen {listen} is not loopback; the admin API trusts its callers, so it listens only on loopback or a unix socket"
        );
    }
    match listen {
        AdminListen::Tcp(addr) => {
            let l = bind(*addr, "control.adminListen").await?;
            let local = l.local_addr()?;
            Ok(AdminListener::Tcp(l, local))
        }
        AdminListen::Unix(path) => {
            // A socket file left by a killed process blocks the bind.
            if std::fs::symlink_metadata(path).is_ok_and(|m| {
                use std::os::unix::fs::FileTypeExt;
                m.file_type().is_socket()
            }) {
                let _ = std::fs::remove_file(path);
            }
            let l = tokio::net::UnixListener::bind(path).with_context(|| {
                format!(
                    "cannot listen on control.adminListen unix:{}",
                    path.display()
                )
            })?;
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
            Ok(AdminListener::Unix(l))
        }
    }
}

fn serve_admin(
    listener: AdminListener,
    service: AdminServer<AdminService>,
    stop: impl std::future::Future<Output = ()> + Send + 'static,
) -> tokio::task::JoinHandle<Result<(), tonic::transport::Error>> {
    let router = Server::builder().add_service(service);
    match listener {
        AdminListener::Tcp(l, _) => {
            tokio::spawn(router.serve_with_incoming_shutdown(TcpListenerStream::new(l), stop))
        }
        AdminListener::Unix(l) => {
            tokio::spawn(router.serve_with_incoming_shutdown(UnixListenerStream::new(l), stop))
        }
    }
}

fn load_ca(config: &Config, store: &Store) -> anyhow::Result<ClusterCa> {
    let td = &config.trust_domain;
    if let (Some(cert_file), Some(key_file)) = (&config.ca.cert_file, &config.ca.key_file) {
        let cert = std::fs::read_to_string(cert_file)
            .with_context(|| format!("cannot read ca.certFile {}", cert_file.display()))?;
        let key = std::fs::read_to_string(key_file)
            .with_context(|| format!("cannot read ca.keyFile {}", key_file.display()))?;
        return ClusterCa::from_pem(&cert, &key, td).with_context(|| {
            format!(
                "while loading the CA from ca.certFile {}",
                cert_file.display()
            )
        });
    }
    if let Some((cert, key)) = store.ca()? {
        return ClusterCa::from_pem(&cert, &key, td)
            .context("while loading the CA from the state store");
    }
    let ca = ClusterCa::generate(&config.cluster, td).context("while generating the cluster CA")?;
    store.put_ca(ca.cert_pem(), ca.key_pem())?;
    info!(pin = %fedmesh_proto::token::hex(&ca.pin()), "generated a new cluster CA");
    Ok(ca)
}

/// Reads the bootstrap token file, or writes a new one (mode 0600). A file
/// from before a CA change keeps its secret and gets the new CA pin.
fn load_bootstrap(path: &Path, ca: &ClusterCa) -> anyhow::Result<BootstrapToken> {
    let existing = match std::fs::read_to_string(path) {
        Ok(text) => Some(BootstrapToken::decode(&text).with_context(|| {
            format!("gateway.bootstrapTokenFile {} does not hold a bootstrap token; delete it and a new one is written", path.display())
        })?),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(e).with_context(|| format!("cannot read gateway.bootstrapTokenFile {}", path.display())),
    };
    let token = match existing {
        Some(t) if t.pin == ca.pin() => return Ok(t),
        Some(t) => BootstrapToken { pin: ca.pin(), ..t },
        None => BootstrapToken::generate(ca.pin()).map_err(|e| anyhow!(e))?,
    };
    write_private(path, &token.encode())
        .with_context(|| format!("cannot write gateway.bootstrapTokenFile {}", path.display()))?;
    info!(path = %path.display(), "wrote the gateway bootstrap token");
    Ok(token)
}

/// Writes a file readable only by its owner, atomically (temp + rename).
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    f.write_all(text.as_bytes())?;
    f.write_all(b"\n")?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}

fn gateway_api_tls(ctl: &Control) -> anyhow::Result<Arc<rustls::ServerConfig>> {
    // Gateways authenticate with the bootstrap token, not a certificate.
    let no_client_auth = rustls::server::WebPkiClientVerifier::no_client_auth();
    let tls = fedmesh_proto::identity::server_config(&ctl.cert, no_client_auth, &[ALPN_H2])
        .context("while building gateway API TLS")?;
    Ok(Arc::new(tls))
}

/// Turns peers stale for longer than `staleGrace` into disconnected ones.
async fn expire_stale_peers(ctl: Arc<Control>) {
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    loop {
        tick.tick().await;
        for peer in ctl.peers.expire_stale(ctl.config.control.stale_grace) {
            info!(%peer, "peer stale for longer than staleGrace; now disconnected");
        }
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

async fn futures_join<T>(handles: impl IntoIterator<Item = tokio::task::JoinHandle<T>>) {
    for h in handles {
        let _ = h.await;
    }
}
