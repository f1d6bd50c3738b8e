//! The gateway API on `control.gatewayListen`: signs gateways' CSRs and
//! streams configuration snapshots to them. Served over TLS with the
//! control plane's leaf; a gateway checks it against the CA pin in its
//! bootstrap token before sending the token's secret, and every call must
//! carry that token (DESIGN.md, Identity and trust).

use std::pin::Pin;
use std::sync::Arc;

use fedmesh_proto::transport::Unauthenticated;
use fedmesh_proto::v1::{self, gateway_config_server::GatewayConfig};
use rustls_pki_types::CertificateDer;
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::{Stream, StreamExt};
use tonic::{Request, Response, Status, Streaming};
use tracing::{info, warn};

use crate::api::gateways::GatewayRegistry;
use crate::ca::rotation::CaRotation;
use crate::ca::{LEAF_LIFETIME, pem_encode};
use crate::clock;
use crate::import_services::ListenPorts;
use crate::model::{ExportSpec, LocalService, LocalSnapshot, Locality, PortSpec, is_dns_label};
use crate::peering::PeerSet;
use crate::table::headless::HeadlessService;
use crate::table::{GlobalService, TableSnapshot};
use fedmesh_proto::token::{BootstrapToken, secrets_equal};

/// Who this cluster is, as gateways are told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewayIdentity {
    /// Cluster name.
    pub cluster: String,
    /// Trust domain.
    pub trust_domain: String,
    /// Locality.
    pub locality: Locality,
}

/// What the gateway API reads: each snapshot is built from these.
#[derive(Debug, Clone)]
pub struct GatewayInputs {
    /// The global service table.
    pub table: watch::Receiver<Arc<TableSnapshot>>,
    /// This cluster's services, from the registry.
    pub local: watch::Receiver<Arc<LocalSnapshot>>,
    /// Kubernetes mode: the gateway port of each VIP name and service port.
    pub listen_ports: watch::Receiver<Arc<ListenPorts>>,
    /// The peers, for the trust bundle.
    pub peers: Arc<PeerSet>,
    /// What this API learns of the gateways (streams, status, certificate
    /// ends), for `fedctl check`.
    pub gateways: Arc<GatewayRegistry>,
}

/// The `GatewayConfig` service.
#[derive(Debug, Clone)]
pub struct GatewayApi {
    me: GatewayIdentity,
    /// Signs gateway CSRs (the root that signs now); its published roots
    /// are the pins gateways accept this control plane by.
    ca: Arc<CaRotation>,
    /// Every call must carry its secret.
    bootstrap: BootstrapToken,
    inputs: GatewayInputs,
    /// The listener's unauthenticated connections: a watch whose token is
    /// accepted lifts the idle deadline from its connection.
    guard: Option<Unauthenticated>,
}

impl GatewayApi {
    /// A service over the handles it uses.
    pub fn new(
        me: GatewayIdentity,
        ca: Arc<CaRotation>,
        bootstrap: BootstrapToken,
        inputs: GatewayInputs,
    ) -> Self {
        Self {
            me,
            ca,
            bootstrap,
            inputs,
            guard: None,
        }
    }

    /// Reports each connection whose watch presented the right token to
    /// `guard` (the listener's limits on unauthenticated connections), so
    /// that a gateway's long, quiet watch is never closed as idle.
    #[must_use]
    pub fn with_guard(mut self, guard: Unauthenticated) -> Self {
        self.guard = Some(guard);
        self
    }

    fn authorize(&self, token: &str) -> Result<(), Status> {
        let refused = |why: String| {
            Status::unauthenticated(format!(
                "gateway bootstrap token refused ({why}); use the token file that `fedctl run` writes (gateway.bootstrapTokenFile)"
            ))
        };
        let presented = BootstrapToken::decode(token).map_err(|e| refused(e.to_string()))?;
        if secrets_equal(&presented.secret, &self.bootstrap.secret) {
            Ok(())
        } else {
            Err(refused("wrong secret".into()))
        }
    }

    fn snapshot(&self, version: u64) -> v1::GatewaySnapshot {
        let table = self.inputs.table.borrow().clone();
        let local = self.inputs.local.borrow().clone();
        let listen = self.inputs.listen_ports.borrow().clone();
        let trust = self.inputs.peers.trust().snapshot();
        let ca = self.ca.view();
        let trust_bundle = trust
            .iter()
            .map(|p| v1::TrustAnchor {
                cluster: p.cluster.clone(),
                trust_domain: p.trust_domain.clone(),
                roots_pem: p
                    .roots
                    .iter()
                    .map(|r: &CertificateDer<'_>| pem_encode("CERTIFICATE", r))
                    .collect(),
            })
            .collect();
        v1::GatewaySnapshot {
            version,
            cluster: self.me.cluster.clone(),
            trust_domain: self.me.trust_domain.clone(),
            locality: Some(self.me.locality.to_proto()),
            trust_bundle,
            imports: table
                .services
                .values()
                .filter_map(|s| imported(s, &listen, table.headless_service(&s.key)))
                .collect(),
            exports: local
                .services
                .values()
                .filter_map(|svc| svc.export.as_ref().map(|spec| exported(svc, spec)))
                .collect(),
            // CA rotation: which roots the control leaf may chain to, and
            // which one signs (a gateway on another renews now).
            control_ca_pins: ca.pins().iter().map(|p| p.to_vec()).collect(),
            signer_ca_pin: ca.signer.pin().to_vec(),
            // Only valid routes travel; invalid ones are warnings here.
            routes: local.routes.to_proto(),
        }
    }
}

/// A global service for the gateway's egress: its VIP, ports and every
/// cluster able to serve it (and, in Kubernetes mode, its gateway ports).
fn imported(
    s: &GlobalService,
    listen: &ListenPorts,
    headless: Option<&HeadlessService>,
) -> Option<v1::ImportedService> {
    let listen_ports = listen_ports(s, listen, headless);
    Some(v1::ImportedService {
        namespace: s.key.namespace.clone(),
        name: s.key.name.clone(),
        vip: s.vip?.to_string(),
        ports: ports(&s.ports),
        affinity: s.affinity.to_proto(),
        weights: s
            .weights
            .iter()
            .map(|(cluster, weight)| v1::ClusterWeight {
                cluster: cluster.clone(),
                weight: *weight,
            })
            .collect(),
        targets: s
            .clusters
            .iter()
            .map(|c| v1::Target {
                cluster: c.cluster.clone(),
                locality: Some(c.locality.to_proto()),
                healthy_endpoints: c.healthy,
                total_endpoints: c.total,
                gateway_address: c.gateway_address.clone(),
                pinned_vip: c.pinned_vip.map(|ip| ip.to_string()).unwrap_or_default(),
                local: c.local,
                stale: c.stale,
                endpoint_vips: endpoint_vips(headless, &c.cluster),
                draining: c.draining,
            })
            .collect(),
        listen_ports,
    })
}

/// Kubernetes mode: the gateway ports of every VIP name of `s` (global,
/// pinned per cluster, and each named endpoint of a headless service),
/// each with the cluster and hostname it stands for.
fn listen_ports(
    s: &GlobalService,
    listen: &ListenPorts,
    headless: Option<&HeadlessService>,
) -> Vec<v1::ListenPort> {
    let pinned = s.clusters.iter().map(|c| {
        (
            c.cluster.clone(),
            String::new(),
            s.key.pinned_vip(&c.cluster),
        )
    });
    let named = headless.into_iter().flat_map(|h| {
        h.clusters.iter().flat_map(|(cluster, endpoints)| {
            endpoints.iter().map(|e| {
                let name = s.key.endpoint_vip(cluster, &e.hostname);
                (cluster.clone(), e.hostname.clone(), name)
            })
        })
    });
    // Named endpoints before the pinned names: a gateway of the previous
    // release, which knows no `hostname`, keys listen ports by (cluster,
    // port) and keeps the last; so it keeps the pinned port right and
    // serves no per-pod port, rather than sending a pod's port to any pod.
    std::iter::once((String::new(), String::new(), s.key.global_vip()))
        .chain(named)
        .chain(pinned)
        .flat_map(|(cluster, hostname, name)| {
            listen
                .get(&name)
                .into_iter()
                .flatten()
                .map(move |(port, listen_port)| v1::ListenPort {
                    cluster: cluster.clone(),
                    port: u32::from(*port),
                    listen_port: u32::from(*listen_port),
                    hostname: hostname.clone(),
                })
        })
        .collect()
}

/// The VIPs of `cluster`'s named endpoints of a headless service, for the
/// gateway's per-endpoint listeners.
fn endpoint_vips(headless: Option<&HeadlessService>, cluster: &str) -> Vec<v1::EndpointVip> {
    headless
        .and_then(|h| h.clusters.get(cluster))
        .into_iter()
        .flatten()
        .filter_map(|e| {
            Some(v1::EndpointVip {
                hostname: e.hostname.clone(),
                vip: e.vip?.to_string(),
            })
        })
        .collect()
}

/// A local exported service for the gateway's ingress.
fn exported(svc: &LocalService, spec: &ExportSpec) -> v1::LocalService {
    v1::LocalService {
        namespace: svc.key.namespace.clone(),
        name: svc.key.name.clone(),
        ports: ports(&svc.ports),
        endpoints: svc
            .endpoints
            .iter()
            .map(|e| v1::Endpoint {
                address: e.address.to_string(),
                ready: e.ready,
                ports: e
                    .ports
                    .iter()
                    .map(|(k, v)| (k.clone(), u32::from(*v)))
                    .collect(),
                // Only a headless service's endpoints are reached by name.
                hostname: e
                    .hostname
                    .clone()
                    .filter(|h| svc.headless && is_dns_label(h))
                    .unwrap_or_default(),
            })
            .collect(),
        export_to: spec.to.clone(),
    }
}

fn ports(ports: &[PortSpec]) -> Vec<v1::ServicePort> {
    ports
        .iter()
        .map(|p| v1::ServicePort {
            name: p.name.clone(),
            port: u32::from(p.port),
            protocol: "TCP".into(),
            app_protocol: p.app_protocol.as_wire().into(),
        })
        .collect()
}

type SnapshotStream = Pin<Box<dyn Stream<Item = Result<v1::GatewaySnapshot, Status>> + Send>>;

#[tonic::async_trait]
impl GatewayConfig for GatewayApi {
    async fn sign_certificate(
        &self,
        request: Request<v1::SignCertificateRequest>,
    ) -> Result<Response<v1::SignCertificateResponse>, Status> {
        let req = request.into_inner();
        self.authorize(&req.bootstrap_token)?;
        let issued = self
            .ca
            .signer()
            .sign_gateway_csr(&req.gateway_name, &req.csr_der, LEAF_LIFETIME)
            .map_err(|e| {
                warn!(gateway = %req.gateway_name, error = %e, "CSR refused");
                Status::invalid_argument(e.to_string())
            })?;
        self.inputs
            .gateways
            .issued(&req.gateway_name, clock::datetime_unix_ms(issued.not_after));
        info!(gateway = %req.gateway_name, not_after = %clock::rfc3339_ms(clock::datetime_unix_ms(issued.not_after)), "gateway certificate issued");
        Ok(Response::new(v1::SignCertificateResponse {
            cert_chain_pem: issued.chain_pem,
            not_after_unix_ms: clock::datetime_unix_ms(issued.not_after),
        }))
    }

    type WatchStream = SnapshotStream;

    async fn watch(
        &self,
        request: Request<v1::WatchRequest>,
    ) -> Result<Response<SnapshotStream>, Status> {
        let remote = request.remote_addr();
        let req = request.into_inner();
        self.authorize(&req.bootstrap_token)?;
        if let (Some(guard), Some(remote)) = (&self.guard, remote) {
            guard.mark_authenticated(remote);
        }
        let (tx, rx) = mpsc::channel(4);
        let api = self.clone();
        let mut peers = self.inputs.peers.subscribe();
        let mut table = self.inputs.table.clone();
        let mut local = self.inputs.local.clone();
        let mut listen = self.inputs.listen_ports.clone();
        let mut ca = self.ca.subscribe();
        let guard = self.inputs.gateways.watch_opened(&req.gateway_name);
        tokio::spawn(async move {
            // Held while the stream is open: `fedctl check` counts it.
            let _guard = guard;
            let mut version = 0u64;
            loop {
                peers.borrow_and_update();
                table.borrow_and_update();
                local.borrow_and_update();
                listen.borrow_and_update();
                ca.borrow_and_update();
                version += 1;
                if tx.send(api.snapshot(version)).await.is_err() {
                    return;
                }
                // The next change of the trust bundle, the table or the
                // local endpoints makes the next snapshot.
                let changed = tokio::select! {
                    r = peers.changed() => r.is_ok(),
                    r = table.changed() => r.is_ok(),
                    r = local.changed() => r.is_ok(),
                    r = listen.changed() => r.is_ok(),
                    r = ca.changed() => r.is_ok(),
                    // The gateway went away (a closed connection drops the
                    // response stream): record it now, not at the next change.
                    () = tx.closed() => false,
                };
                if !changed {
                    return;
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx).map(Ok))))
    }

    async fn report_status(
        &self,
        request: Request<Streaming<v1::GatewayStatus>>,
    ) -> Result<Response<v1::ReportStatusResponse>, Status> {
        let mut stream = request.into_inner();
        let mut name: Option<String> = None;
        let end = loop {
            match stream.message().await {
                Ok(Some(status)) => {
                    if let Err(refused) = self.authorize(&status.bootstrap_token) {
                        break Err(refused);
                    }
                    name.get_or_insert_with(|| status.gateway_name.clone());
                    self.inputs.gateways.reported(status);
                }
                Ok(None) => break Ok(Response::new(v1::ReportStatusResponse {})),
                Err(status) => break Err(status),
            }
        };
        if let Some(name) = name {
            self.inputs.gateways.report_closed(&name);
        }
        end
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ca::ClusterCa;
    use crate::model::Locality;
    use crate::model::{Affinity, ServiceKey};
    use crate::table::ClusterEntry;
    use prost::Message;

    #[test]
    fn endpoint_totals_reach_the_gateway_snapshot() {
        let west = ClusterEntry {
            cluster: "west".into(),
            local: false,
            locality: Locality::default(),
            healthy: 4,
            total: 10,
            stale: false,
            pinned_vip: None,
            exported_at_ms: 0,
            gateway_address: "127.0.2.1:15443".into(),
            ports: vec![],
            draining: false,
        };
        let service = GlobalService {
            key: ServiceKey::new("demo", "hello"),
            vip: Some("127.77.0.1".parse().unwrap()),
            ports: vec![],
            affinity: Affinity::Local,
            weights: Default::default(),
            clusters: vec![west],
            conflicts: vec![],
        };
        let sent = imported(&service, &ListenPorts::new(), None).unwrap();
        let got = v1::ImportedService::decode(sent.encode_to_vec().as_slice()).unwrap();
        let t = &got.targets[0];
        assert_eq!((t.healthy_endpoints, t.total_endpoints), (4, 10));
        assert!(t.endpoint_vips.is_empty());

        use crate::table::headless::EndpointEntry;
        let ep = |hostname: &str, vip: Option<&str>| EndpointEntry {
            hostname: hostname.into(),
            ready: true,
            vip: vip.map(|v| v.parse().unwrap()),
        };
        let headless = HeadlessService {
            clusters: [(
                "west".to_string(),
                vec![ep("db-0", Some("127.77.0.5")), ep("db-1", None)],
            )]
            .into(),
        };
        let sent = imported(&service, &ListenPorts::new(), Some(&headless)).unwrap();
        let vips: Vec<_> = sent.targets[0]
            .endpoint_vips
            .iter()
            .map(|e| (e.hostname.as_str(), e.vip.as_str()))
            .collect();
        assert_eq!(
            vips,
            [("db-0", "127.77.0.5")],
            "a VIP-less endpoint is left out"
        );
    }

    /// The senders behind a test API's inputs: a closed one would end
    /// every watch.
    struct Inputs {
        table: watch::Sender<Arc<TableSnapshot>>,
        _local: watch::Sender<Arc<LocalSnapshot>>,
        _listen: watch::Sender<Arc<ListenPorts>>,
    }

    /// A gateway API of `east` with `west` as its one peer.
    fn api() -> (GatewayApi, Inputs, BootstrapToken) {
        let ca = ClusterCa::generate("east", "east.fedmesh").unwrap();
        let west = ClusterCa::generate("west", "west.fedmesh").unwrap();
        let record = crate::store::PeerRecord {
            name: "west".into(),
            trust_domain: "west.fedmesh".into(),
            locality: Locality::default(),
            roots_pem: vec![west.cert_pem().to_string()],
            role: crate::store::Role::Dialer,
            endpoint: "127.0.0.1:1".into(),
            gateway_address: "127.0.0.1:2".into(),
            joined_unix_ms: 0,
        };
        let (peers, errors) = PeerSet::new(vec![record]);
        assert!(errors.is_empty());
        let bootstrap = BootstrapToken::generate(ca.pin()).unwrap();
        let (table_tx, table) = watch::channel(Arc::new(TableSnapshot::default()));
        let (local_tx, local) = watch::channel(Arc::new(LocalSnapshot::default()));
        let (listen_tx, listen_ports) = watch::channel(Arc::new(ListenPorts::new()));
        let inputs = GatewayInputs {
            table,
            local,
            listen_ports,
            peers: Arc::new(peers),
            gateways: GatewayRegistry::new(),
        };
        let senders = Inputs {
            table: table_tx,
            _local: local_tx,
            _listen: listen_tx,
        };
        let me = GatewayIdentity {
            cluster: "east".into(),
            trust_domain: "east.fedmesh".into(),
            locality: Locality {
                region: "us-east".into(),
                zone: "us-east-1a".into(),
            },
        };
        let api = GatewayApi::new(
            me,
            Arc::new(CaRotation::fixed(ca)),
            bootstrap.clone(),
            inputs,
        );
        (api, senders, bootstrap)
    }

    #[tokio::test]
    async fn a_call_without_the_bootstrap_secret_is_refused_and_names_the_file() {
        let (api, _table, bootstrap) = api();
        let other = BootstrapToken::generate(bootstrap.pin).unwrap();
        let request = v1::WatchRequest {
            bootstrap_token: other.encode(),
            gateway_name: "gw-1".into(),
        };
        let status = api.watch(Request::new(request)).await.err().unwrap();
        assert_eq!(status.code(), tonic::Code::Unauthenticated);
        assert!(
            status.message().contains("wrong secret"),
            "{}",
            status.message()
        );
        assert!(status.message().contains("gateway.bootstrapTokenFile"));
    }

    #[tokio::test]
    async fn a_watch_sends_a_snapshot_now_and_another_on_each_table_change() {
        let (api, inputs, bootstrap) = api();
        let request = v1::WatchRequest {
            bootstrap_token: bootstrap.encode(),
            gateway_name: "gw-1".into(),
        };
        let mut stream = api.watch(Request::new(request)).await.unwrap().into_inner();
        let deadline = std::time::Duration::from_secs(10);
        let first = tokio::time::timeout(deadline, stream.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!((first.version, first.cluster.as_str()), (1, "east"));
        assert_eq!(first.locality.unwrap().zone, "us-east-1a");
        let anchors: Vec<_> = first
            .trust_bundle
            .iter()
            .map(|a| a.cluster.as_str())
            .collect();
        assert_eq!(
            anchors,
            ["west"],
            "the peers' roots are the gateway's trust bundle"
        );
        inputs.table.send_modify(|t| Arc::make_mut(t).version += 1);
        let second = tokio::time::timeout(deadline, stream.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(second.version, 2);
    }
}
