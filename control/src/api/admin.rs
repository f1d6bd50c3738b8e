//! The admin API: what `fedctl` asks its own control plane. Served on
//! `control.adminListen`, loopback or a unix socket only, so callers are
//! trusted (DESIGN.md, CLI contract).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use fedmesh_proto::identity::inspect_cert;
use fedmesh_proto::v1::{self, admin_server::Admin};
use tonic::{Request, Response, Status};
use tracing::info;

use crate::api::split::effective_split;
use crate::clock;
use crate::drain::DrainSwitch;
use crate::model::{ExportSpec, LocalSnapshot, ServiceKey};
use crate::peering::handles::Dialer;
use crate::peering::info::parse_roots;
use crate::peering::join::join;
use crate::peering::leave::leave;
use crate::peering::{PeerView, role_str};
use crate::store::TokenRecord;
use crate::table::{GlobalService, Refusal, TableSnapshot};
use fedmesh_proto::token::{JoinToken, secret_hash_hex};

mod ca;

pub use ca::{CaAdmin, FleetSource};

/// Largest admin answer `fedctl` accepts: `fedctl services` of tens of
/// thousands of services.
pub const MAX_ADMIN_MESSAGE: usize = 64 << 20;
/// Default token lifetime (`fedctl token create` without `--ttl`).
pub const DEFAULT_TOKEN_TTL: Duration = Duration::from_secs(3600);
/// Longest token lifetime accepted.
pub const MAX_TOKEN_TTL: Duration = Duration::from_secs(30 * 24 * 3600);

/// Runs `fedctl check`'s checks (they read most of the control plane, so
/// the daemon hands them in ready to run).
pub type CheckRunner = Arc<dyn Fn() -> Vec<v1::CheckResult> + Send + Sync>;

/// What join tokens carry: where to dial, and which CA to pin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenIssuer {
    /// The peering address put in tokens (host:port).
    pub address: String,
    /// SHA-256 of this cluster's CA public key.
    pub pin: [u8; 32],
}

/// The `Admin` service.
#[derive(Clone)]
pub struct AdminService {
    /// Join, leave and the peer list.
    dialer: Dialer,
    /// The global services, for `fedctl services` and import counts.
    table: watch::Receiver<Arc<TableSnapshot>>,
    /// `fedctl token create`.
    tokens: TokenIssuer,
    /// `fedctl check`.
    checks: CheckRunner,
    /// This cluster's services: export-to of its own exports.
    local: Option<watch::Receiver<Arc<LocalSnapshot>>>,
    /// `fedctl drain` / `undrain`.
    drain: Option<DrainSwitch>,
    /// `fedctl ca`; tokens pin the CA that signs now.
    ca: Option<CaAdmin>,
}

impl std::fmt::Debug for AdminService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminService").finish_non_exhaustive()
    }
}

impl AdminService {
    /// A service over the handles it uses.
    pub fn new(
        dialer: Dialer,
        table: watch::Receiver<Arc<TableSnapshot>>,
        tokens: TokenIssuer,
        checks: CheckRunner,
    ) -> Self {
        Self {
            dialer,
            table,
            tokens,
            checks,
            local: None,
            drain: None,
            ca: None,
        }
    }

    /// Adds the drain switch (`fedctl drain` / `undrain`).
    #[must_use]
    pub fn with_drain(mut self, drain: DrainSwitch) -> Self {
        self.drain = Some(drain);
        self
    }

    fn me(&self) -> &str {
        &self.dialer.peering.me.name
    }

    /// Adds this cluster's services, so `fedctl services` shows the
    /// export-to of its own exports and which peers it excludes.
    #[must_use]
    pub fn with_local(mut self, local: watch::Receiver<Arc<LocalSnapshot>>) -> Self {
        self.local = Some(local);
        self
    }

    /// Adds the CA rotation (`fedctl ca`); join tokens then pin the root
    /// that signs now.
    #[must_use]
    pub fn with_ca(mut self, ca: CaAdmin) -> Self {
        self.ca = Some(ca);
        self
    }

    fn ca(&self) -> Result<&CaAdmin, Status> {
        self.ca
            .as_ref()
            .ok_or_else(|| Status::unimplemented("this control plane has no CA rotation"))
    }
}

#[tonic::async_trait]
impl Admin for AdminService {
    async fn create_token(
        &self,
        request: Request<v1::CreateTokenRequest>,
    ) -> Result<Response<v1::CreateTokenResponse>, Status> {
        let ttl = match request.into_inner().ttl_seconds {
            0 => DEFAULT_TOKEN_TTL,
            s => Duration::from_secs(s),
        };
        if ttl > MAX_TOKEN_TTL {
            return Err(Status::invalid_argument(format!(
                "--ttl {}s is longer than the 30-day maximum",
                ttl.as_secs()
            )));
        }
        // After a rotation's switch the control leaf chains to the new root.
        let pin = self
            .ca
            .as_ref()
            .map_or(self.tokens.pin, |ca| ca.rotation.signer().pin());
        let token = JoinToken::generate(&self.tokens.address, pin).map_err(Status::internal)?;
        let now = clock::now_unix_ms();
        let expires = now + i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX);
        let record = TokenRecord {
            created_unix_ms: now,
            expires_unix_ms: expires,
            used_unix_ms: None,
            used_by: None,
        };
        let store = self.dialer.peering.store.clone();
        let hash = secret_hash_hex(&token.secret);
        tokio::task::spawn_blocking(move || store.put_token(&hash, &record))
            .await
            .map_err(|e| Status::internal(e.to_string()))?
            .map_err(|e| Status::internal(e.to_string()))?;
        info!(expires = %clock::rfc3339_ms(expires), "join token created");
        Ok(Response::new(v1::CreateTokenResponse {
            token: token.encode(),
            expires_unix_ms: expires,
        }))
    }

    async fn join_peer(
        &self,
        request: Request<v1::JoinPeerRequest>,
    ) -> Result<Response<v1::JoinPeerResponse>, Status> {
        let token = JoinToken::decode(&request.into_inner().token)
            .map_err(|e| Status::invalid_argument(e.to_string()))?;
        let record = join(&self.dialer, &token)
            .await
            .map_err(|e| e.to_status())?;
        let peer = self
            .dialer
            .peering
            .peers
            .view(&record.name)
            .map(|v| peer_status(&v))
            .ok_or_else(|| Status::aborted("the peer was removed while joining"))?;
        Ok(Response::new(v1::JoinPeerResponse { peer: Some(peer) }))
    }

    async fn leave_peer(
        &self,
        request: Request<v1::LeavePeerRequest>,
    ) -> Result<Response<v1::LeavePeerResponse>, Status> {
        let peer = request.into_inner().peer;
        let outcome = leave(&self.dialer.peering, &peer)
            .await
            .map_err(|e| Status::not_found(e.to_string()))?;
        Ok(Response::new(v1::LeavePeerResponse {
            remote_notified: outcome.remote_notified,
            detail: outcome.detail,
        }))
    }

    async fn list_peers(
        &self,
        _request: Request<v1::ListPeersRequest>,
    ) -> Result<Response<v1::ListPeersResponse>, Status> {
        let table = self.table.borrow().clone();
        let peers = self
            .dialer
            .peering
            .peers
            .views()
            .iter()
            .map(|v| {
                let mut status = peer_status(v);
                status.imports =
                    u32::try_from(table.imports_from(&v.record.name)).unwrap_or(u32::MAX);
                status.draining = drain::peer_draining(&table, &v.record.name);
                status
            })
            .collect();
        let self_draining = self.drain.as_ref().is_some_and(|d| d.state().draining);
        Ok(Response::new(v1::ListPeersResponse {
            peers,
            self_draining,
        }))
    }

    async fn set_draining(
        &self,
        request: Request<v1::SetDrainingRequest>,
    ) -> Result<Response<v1::SetDrainingResponse>, Status> {
        drain::set_draining(self.drain.as_ref(), self.me(), request.into_inner())
            .await
            .map(Response::new)
    }

    async fn get_version(
        &self,
        _request: Request<v1::GetVersionRequest>,
    ) -> Result<Response<v1::GetVersionResponse>, Status> {
        Ok(Response::new(drain::version(self.me())))
    }

    async fn ca_rotate(
        &self,
        request: Request<v1::CaRotateRequest>,
    ) -> Result<Response<v1::CaRotateResponse>, Status> {
        let ca = self.ca()?.clone();
        let req = request.into_inner();
        // Makes a key and writes the store: off the async threads.
        tokio::task::spawn_blocking(move || ca.rotate(&req))
            .await
            .map_err(|e| Status::internal(e.to_string()))?
            .map(Response::new)
    }

    async fn ca_status(
        &self,
        _request: Request<v1::CaStatusRequest>,
    ) -> Result<Response<v1::CaStatusResponse>, Status> {
        Ok(Response::new(self.ca()?.status()))
    }

    async fn check(
        &self,
        _request: Request<v1::CheckRequest>,
    ) -> Result<Response<v1::CheckResponse>, Status> {
        Ok(Response::new(v1::CheckResponse {
            results: (self.checks)(),
        }))
    }

    async fn list_services(
        &self,
        _request: Request<v1::ListServicesRequest>,
    ) -> Result<Response<v1::ListServicesResponse>, Status> {
        let table = self.table.borrow().clone();
        let zone = &self.dialer.peering.me.dns_zone;
        let local = self.local.as_ref().map(|l| l.borrow().clone());
        let peers: Vec<String> = self
            .dialer
            .peering
            .peers
            .views()
            .into_iter()
            .map(|v| v.record.name)
            .collect();
        let services: Vec<v1::GlobalServiceStatus> = table
            .services
            .values()
            .map(|s| {
                let mut status = service_status(s, zone);
                let spec = local
                    .as_ref()
                    .and_then(|l| l.services.get(&s.key))
                    .and_then(|svc| svc.export.as_ref());
                if let Some(spec) = spec {
                    let acked = |peer: &str| {
                        let view = self.dialer.peering.acked.get(peer);
                        view.is_some_and(|(_, view)| view.contains_key(&s.key))
                    };
                    add_delivery(&mut status, spec, &peers, acked);
                }
                if let Some(l) = &local {
                    status.routes = l.routes.names_for(&s.key);
                }
                status
            })
            .collect();
        let services = with_refusals(services, &table.refused, zone);
        Ok(Response::new(v1::ListServicesResponse { services }))
    }
}

/// A global service as the admin API shows it.
pub fn service_status(s: &GlobalService, zone: &str) -> v1::GlobalServiceStatus {
    let ip = |v: Option<std::net::Ipv4Addr>| v.map(|ip| ip.to_string()).unwrap_or_default();
    v1::GlobalServiceStatus {
        namespace: s.key.namespace.clone(),
        name: s.key.name.clone(),
        dns_name: format!("{}.{}.svc.{zone}", s.key.name, s.key.namespace),
        vip: ip(s.vip),
        ports: s
            .ports
            .iter()
            .map(|p| v1::ServicePort {
                name: p.name.clone(),
                port: u32::from(p.port),
                protocol: "TCP".into(),
                app_protocol: p.app_protocol.as_wire().into(),
            })
            .collect(),
        clusters: s
            .clusters
            .iter()
            .map(|c| v1::ClusterStatus {
                name: c.cluster.clone(),
                locality: Some(c.locality.to_proto()),
                healthy_endpoints: c.healthy,
                stale: c.stale,
                pinned_vip: ip(c.pinned_vip),
                exported_at_unix_ms: c.exported_at_ms,
                local: c.local,
                gateway_address: c.gateway_address.clone(),
                draining: c.draining,
            })
            .collect(),
        conflicts: s.conflicts.clone(),
        affinity: s.affinity.to_proto(),
        effective_weights: effective_split(&s.weights, &s.clusters)
            .into_iter()
            .map(|(cluster, weight)| v1::ClusterWeight { cluster, weight })
            .collect(),
        ..Default::default()
    }
}

/// Adds the refused exports to their services; a service only refused
/// exports name gets an entry of its own (no clusters, no VIP), in key
/// order with the others.
fn with_refusals(
    mut services: Vec<v1::GlobalServiceStatus>,
    refused: &[Refusal],
    zone: &str,
) -> Vec<v1::GlobalServiceStatus> {
    if refused.is_empty() {
        return services;
    }
    let mut by_service: BTreeMap<&ServiceKey, Vec<v1::RefusedExport>> = BTreeMap::new();
    for r in refused {
        by_service
            .entry(&r.service)
            .or_default()
            .push(v1::RefusedExport {
                peer: r.peer.clone(),
                reason: r.reason.to_string(),
                code: r.reason.code().to_owned(),
            });
    }
    for s in &mut services {
        let key = ServiceKey::new(s.namespace.as_str(), s.name.as_str());
        if let Some(list) = by_service.remove(&key) {
            s.refused = list;
        }
    }
    services.extend(by_service.into_iter().map(|(key, list)| {
        let (ns, name) = (&key.namespace, &key.name);
        v1::GlobalServiceStatus {
            namespace: ns.clone(),
            name: name.clone(),
            dns_name: format!("{name}.{ns}.svc.{zone}"),
            refused: list,
            ..Default::default()
        }
    }));
    services.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
    services
}

/// This cluster's export-to of the service, and per peer where its export
/// stands: `excluded` (export-to leaves the peer out), `acked` (the peer
/// acknowledged a sync version that holds it: `acked(peer)`), or `pending`
/// (sent or still to send, not yet acknowledged).
fn add_delivery(
    status: &mut v1::GlobalServiceStatus,
    spec: &ExportSpec,
    peers: &[String],
    acked: impl Fn(&str) -> bool,
) {
    status.export_to = (!spec.to.is_empty()).then(|| v1::ExportTo {
        peers: spec.to.clone(),
    });
    status.delivery = peers
        .iter()
        .map(|peer| v1::PeerDelivery {
            peer: peer.clone(),
            state: if !spec.allows(peer) {
                "excluded"
            } else if acked(peer) {
                "acked"
            } else {
                "pending"
            }
            .into(),
        })
        .collect();
}

/// A peer as the admin API shows it.
pub fn peer_status(v: &PeerView) -> v1::PeerStatus {
    let r = &v.record;
    let roots = parse_roots(&r.roots_pem).unwrap_or_default();
    let root_fingerprints = roots
        .iter()
        .filter_map(|der| fedmesh_proto::identity::spki_sha256(der).ok())
        .map(|pin| fedmesh_proto::token::hex(&pin))
        .collect();
    let root_expires = roots
        .iter()
        .filter_map(|der| inspect_cert(der).ok())
        .map(|info| clock::datetime_unix_ms(info.not_after))
        .max()
        .unwrap_or(0);
    v1::PeerStatus {
        name: r.name.clone(),
        endpoint: r.endpoint.clone(),
        role: role_str(r).to_string(),
        locality: Some(r.locality.to_proto()),
        state: v.state.as_str().to_string(),
        since_unix_ms: v.since_ms,
        last_heartbeat_unix_ms: v.last_heard_ms.unwrap_or(0),
        imports: 0,
        root_expires_unix_ms: root_expires,
        trust_domain: r.trust_domain.clone(),
        gateway_address: r.gateway_address.clone(),
        last_error: v.last_error.clone().unwrap_or_default(),
        draining: false,
        root_fingerprints,
    }
}

mod drain;

#[cfg(test)]
mod tests;
