//! The gateway's vocabulary: the services, targets, listeners and exports
//! that every stage speaks of. The snapshot decoder ([`crate::state`])
//! builds them; target choice, dialing, health and the ingress read them.
//! This module imports nothing of the gateway's own, so every stage can
//! use it without a circle.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};

/// A service's identity: (namespace, name).
pub type ServiceKey = (String, String);

/// Where a cluster runs.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Locality {
    /// Region.
    pub region: String,
    /// Zone.
    pub zone: String,
}

/// Target ordering (the `fedmesh.io/affinity` annotation).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Affinity {
    /// Locality order; a level that lost part of its endpoints spills a
    /// share to the next (`select`, spill-over by capacity).
    #[default]
    Local,
    /// Other clusters first; local endpoints last.
    Remote,
    /// Every healthy target in one level.
    None,
}

/// One cluster able to serve an imported service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// Cluster name.
    pub cluster: String,
    /// Where it runs.
    pub locality: Locality,
    /// Healthy endpoints there, from the service table.
    pub healthy: u32,
    /// Every endpoint there, ready or not; never below `healthy` (a peer
    /// on an earlier release sends no total and counts as fully healthy).
    /// `healthy / total` is the cluster's health for spill-over.
    pub total: u32,
    /// Its gateway ingress (host:port); empty for this cluster.
    pub gateway: String,
    /// This cluster.
    pub local: bool,
    /// The cluster is drained (`fedctl drain`): used for new connections
    /// only when no other target can serve ([`crate::select`]).
    pub draining: bool,
}

/// A global service this gateway serves on its VIP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Import {
    /// Identity.
    pub key: ServiceKey,
    /// The VIP egress listens on.
    pub vip: Ipv4Addr,
    /// Service ports: name → port.
    pub ports: Vec<(String, u16)>,
    /// Ordering rule.
    pub affinity: Affinity,
    /// Weighted split by cluster (overrides locality order).
    pub weights: BTreeMap<String, u32>,
    /// Every cluster exporting it.
    pub targets: Vec<Target>,
    /// Cluster → the VIP that reaches only it (DNS
    /// `<cluster>.<svc>.<ns>.svc.<zone>`).
    pub pinned: BTreeMap<String, Ipv4Addr>,
    /// Kubernetes mode: (pinned cluster or `None`, named endpoint's
    /// hostname or `None`, service port) → the gateway port the import's
    /// Service targets. Empty in standalone mode.
    pub listen_ports: BTreeMap<(Option<String>, Option<String>, u16), u16>,
}

/// One egress listener: where it binds and what it stands for.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Listener {
    /// The service.
    pub key: ServiceKey,
    /// The service port.
    pub port: u16,
    /// `Some(cluster)` for a pinned VIP: only that cluster serves it.
    pub pinned: Option<String>,
    /// `Some(hostname)` for a named endpoint's VIP (with `pinned` its
    /// cluster): only that endpoint serves it ([`crate::endpoint`]).
    pub endpoint: Option<String>,
}

/// A local endpoint of an exported service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// Address.
    pub address: IpAddr,
    /// Counted healthy by the registry.
    pub ready: bool,
    /// Port name → target port.
    pub ports: BTreeMap<String, u16>,
    /// Its hostname when its service is headless: a named endpoint's
    /// route reaches it by this name only.
    pub hostname: Option<String>,
}

/// A service this cluster exports: what ingress routes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Export {
    /// Service ports: name → port.
    pub ports: Vec<(String, u16)>,
    /// Endpoints.
    pub endpoints: Vec<Endpoint>,
    /// Peers allowed; empty means all.
    pub export_to: Vec<String>,
}

impl Export {
    /// Whether `peer` may reach this service.
    pub fn allows(&self, peer: &str) -> bool {
        self.export_to.is_empty() || self.export_to.iter().any(|p| p == peer)
    }

    /// The target port of `endpoint` for service port `port`, matched by
    /// port name as Kubernetes does.
    pub fn target_port(&self, endpoint: &Endpoint, port: u16) -> Option<u16> {
        let (name, _) = self.ports.iter().find(|(_, p)| *p == port)?;
        endpoint.ports.get(name).copied()
    }
}
