//! The service flows of `fedctl run`, each an owner task publishing on a
//! `watch`: registry (and the drain switch) → exports → table → DNS zone. In Kubernetes mode the
//! VIPs are the ClusterIPs of the import Services the control plane
//! publishes (whose target ports the gateway listens on); otherwise they
//! come from `gateway.vipRange`.

use std::sync::Arc;

use anyhow::{Context, anyhow};
use fedmesh_dns::ZoneSnapshot;
use fedmesh_proto::config::{Config, RegistryKind};
use fedmesh_proto::token::BootstrapToken;
use tokio::sync::{mpsc, watch};
use tracing::info;

use crate::dnsfeed;
use crate::drain::DrainSwitch;
use crate::exports::{self, ExportState};
use crate::import_services::{self, ImportServices, ListenPorts};
use crate::model::{LocalSnapshot, Locality};
use crate::peering::{PeerSet, PeerView};
use crate::registry::Registry;
use crate::registry::kubernetes::Kubernetes;
use crate::registry::static_files::StaticFiles;
use crate::store::Store;
use crate::table::{self, LocalCluster, TableEvent, TableSnapshot, TableTask, VipMode};

/// The outputs of the service flows, for the servers to read.
pub(super) struct Flows {
    /// This cluster's services.
    pub local: watch::Receiver<Arc<LocalSnapshot>>,
    /// This cluster's exports.
    pub exports: watch::Receiver<Arc<ExportState>>,
    /// Import changes into the table.
    pub table_events: mpsc::Sender<TableEvent>,
    /// The global service table.
    pub table: watch::Receiver<Arc<TableSnapshot>>,
    /// Gateway ports per VIP name (empty in standalone mode).
    pub listen_ports: watch::Receiver<Arc<ListenPorts>>,
    /// The DNS zone built from the table.
    pub zone: watch::Receiver<Arc<ZoneSnapshot>>,
    /// Whether this cluster is drained (`fedctl drain`).
    pub drain: DrainSwitch,
    /// Standalone mode: nothing publishes listen ports, but the channel
    /// stays open for the life of the process (a closed one would end
    /// every gateway watch).
    _listen_ports_tx: Option<watch::Sender<Arc<ListenPorts>>>,
}

/// Starts the registry, the export state, the table and the DNS feed.
pub(super) async fn start(
    config: &Config,
    store: &Arc<Store>,
    peers: &Arc<PeerSet>,
    bootstrap: &BootstrapToken,
) -> anyhow::Result<Flows> {
    let kube = kube_client(config).await?;
    let registry = make_registry(config, kube.clone())?;
    info!(registry = %registry.describe(), "reading services");
    let (local_tx, local) = watch::channel(Arc::new(LocalSnapshot::default()));
    tokio::spawn(registry.run(local_tx));
    let initial_exports = ExportState::new(exports::new_epoch(), 0, Default::default());
    let (exports_tx, exports) = watch::channel(Arc::new(initial_exports));
    let drain = DrainSwitch::load(store.clone());
    tokio::spawn(exports::run(
        store.clone(),
        local.clone(),
        drain.subscribe(),
        exports_tx,
    ));
    let (table_events, events) = mpsc::channel(256);
    let (table_tx, table) = watch::channel(Arc::new(TableSnapshot::default()));
    let (vips, listen_ports, listen_ports_tx) = vip_mode(config, kube, &table, bootstrap);
    let (zone_tx, zone) = watch::channel(Arc::new(ZoneSnapshot::default()));
    tokio::spawn(dnsfeed::run(
        table.clone(),
        config.dns.zone.clone(),
        config.dns.ttl,
        zone_tx,
    ));
    let viewer = peers.clone();
    tokio::spawn(table::run(TableTask {
        me: LocalCluster {
            name: config.cluster.clone(),
            locality: Locality {
                region: config.locality.region.clone(),
                zone: config.locality.zone.clone(),
            },
        },
        store: store.clone(),
        exports: exports.clone(),
        events,
        peer_changes: peers.subscribe(),
        peers: Box::new(move || viewer.views().iter().map(PeerView::link).collect()),
        vips,
        imports_policy: config.imports.clone(),
        out: table_tx,
    }));
    Ok(Flows {
        local,
        exports,
        table_events,
        table,
        listen_ports,
        zone,
        drain,
        _listen_ports_tx: listen_ports_tx,
    })
}

/// The VIP source, the listen ports, and (standalone) their idle sender.
type VipSetup = (
    VipMode,
    watch::Receiver<Arc<ListenPorts>>,
    Option<watch::Sender<Arc<ListenPorts>>>,
);

/// Where VIPs come from: `gateway.vipRange`, or in Kubernetes mode the
/// ClusterIPs of the import Services (which this also starts publishing,
/// with the bootstrap token Secret beside them).
fn vip_mode(
    config: &Config,
    kube: Option<kube::Client>,
    table: &watch::Receiver<Arc<TableSnapshot>>,
    bootstrap: &BootstrapToken,
) -> VipSetup {
    let Some(client) = kube else {
        let (tx, rx) = watch::channel(Arc::new(ListenPorts::new()));
        return (VipMode::Range(config.gateway.vip_range), rx, Some(tx));
    };
    let namespace = config
        .registry
        .import_namespace
        .clone()
        .unwrap_or_else(|| client.default_namespace().to_string());
    tokio::spawn(import_services::publish_bootstrap_secret(
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
        namespaces: config.registry.namespaces.clone(),
    }
    .spawn(table.clone());
    (VipMode::External(published.vips), published.listen, None)
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
            Ok(Box::new(StaticFiles::new(path, StaticFiles::RESCAN)))
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
