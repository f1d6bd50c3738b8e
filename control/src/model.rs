//! The control plane's vocabulary, free of Kubernetes types: each word
//! ([`ServiceKey`], [`Locality`], [`Affinity`], [`VipName`], [`LinkState`])
//! is defined here once, and every layer above uses it as a value, never as
//! a formatted string to be split again.
//!
//! Registries turn Kubernetes `Service` and `EndpointSlice` objects into a
//! [`LocalSnapshot`]; the export state and the global table read it. The
//! conversions to and from the wire types live in [`wire`], written once.

pub mod headless;
pub mod wire;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

pub use fedmesh_proto::app_protocol::AppProtocol;
use fedmesh_proto::routes::{FaultInjection, HttpRoute};
use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use headless::{MAX_NAMED_ENDPOINTS, NamedEndpoint, NamedEndpoints};

/// A value that is not a word of the vocabulary.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ModelError {
    /// An affinity other than `local`, `remote` or `none`.
    #[error("affinity {0:?} is unknown; use local, remote or none")]
    UnknownAffinity(String),
}

/// Whether `s` is a DNS label as RFC 1123 §2.1 allows it, lowercase: 1 to 63
/// letters, digits and hyphens, neither first nor last a hyphen. Cluster,
/// namespace and service names are all such labels.
pub fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// Where a cluster runs, as its config and its peers say.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
pub struct Locality {
    /// Region.
    pub region: String,
    /// Zone.
    pub zone: String,
}

/// A service's identity across the federation (namespace sameness, as in
/// the Multi-Cluster Services API).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ServiceKey {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
}

impl ServiceKey {
    /// A key.
    pub fn new(namespace: impl Into<String>, name: impl Into<String>) -> Self {
        Self {
            namespace: namespace.into(),
            name: name.into(),
        }
    }
}

impl ServiceKey {
    /// The name of the service's global VIP.
    pub fn global_vip(&self) -> VipName {
        VipName::Global(self.clone())
    }

    /// The name of the VIP pinned to `cluster`'s endpoints of the service.
    pub fn pinned_vip(&self, cluster: &str) -> VipName {
        VipName::Pinned {
            service: self.clone(),
            cluster: cluster.to_string(),
        }
    }

    /// The name of the VIP pinned to the one endpoint `hostname` of the
    /// (headless) service in `cluster`.
    pub fn endpoint_vip(&self, cluster: &str, hostname: &str) -> VipName {
        VipName::Endpoint {
            service: self.clone(),
            cluster: cluster.to_string(),
            hostname: hostname.to_string(),
        }
    }
}

/// `ns/name`, for logs and for the names the on-disk and Kubernetes formats
/// already use; never parsed back into a key.
impl fmt::Display for ServiceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// The name of a VIP: a service's global VIP, or the one pinned to one
/// cluster's endpoints of it. Its stored form (the state store's `vips`
/// table, the `fedmesh.io/import` annotation of an import Service, the log)
/// is `ns/name`, `ns/name@cluster` and `ns/name@cluster/hostname`, written
/// by `Display` and read back only by [`VipName::from_stored`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum VipName {
    /// The global VIP: every cluster, with locality and failover.
    Global(ServiceKey),
    /// The VIP of one cluster's endpoints only.
    Pinned {
        /// The service.
        service: ServiceKey,
        /// The cluster.
        cluster: String,
    },
    /// The VIP of one named endpoint of a headless service (a StatefulSet
    /// pod) in one cluster: no other endpoint, no other cluster.
    Endpoint {
        /// The service.
        service: ServiceKey,
        /// The cluster.
        cluster: String,
        /// The endpoint's hostname.
        hostname: String,
    },
}

impl VipName {
    /// The service the VIP stands for.
    pub fn service(&self) -> &ServiceKey {
        match self {
            VipName::Global(key)
            | VipName::Pinned { service: key, .. }
            | VipName::Endpoint { service: key, .. } => key,
        }
    }

    /// A name in its stored form; `None` for a form this release does not
    /// write (both parts must be DNS labels, as every service key is).
    pub fn from_stored(s: &str) -> Option<Self> {
        let (service, cluster) = match s.split_once('@') {
            Some((service, cluster)) => (service, Some(cluster)),
            None => (s, None),
        };
        let (namespace, name) = service.split_once('/')?;
        if !is_dns_label(namespace) || !is_dns_label(name) {
            return None;
        }
        let service = ServiceKey::new(namespace, name);
        let Some(cluster) = cluster else {
            return Some(VipName::Global(service));
        };
        let (cluster, hostname) = match cluster.split_once('/') {
            Some((cluster, hostname)) => (cluster, Some(hostname)),
            None => (cluster, None),
        };
        if !is_dns_label(cluster) {
            return None;
        }
        let cluster = cluster.to_string();
        match hostname {
            None => Some(VipName::Pinned { service, cluster }),
            Some(h) if is_dns_label(h) => Some(VipName::Endpoint {
                service,
                cluster,
                hostname: h.to_string(),
            }),
            Some(_) => None,
        }
    }

    /// The bytes of the stored form, without building it.
    fn stored_bytes(&self) -> impl Iterator<Item = u8> + '_ {
        let key = self.service();
        let (cluster, hostname) = match self {
            VipName::Global(_) => ("", ""),
            VipName::Pinned { cluster, .. } => (cluster.as_str(), ""),
            VipName::Endpoint {
                cluster, hostname, ..
            } => (cluster.as_str(), hostname.as_str()),
        };
        let at: &[u8] = if cluster.is_empty() { b"" } else { b"@" };
        let slash: &[u8] = if hostname.is_empty() { b"" } else { b"/" };
        key.namespace
            .bytes()
            .chain(std::iter::once(b'/'))
            .chain(key.name.bytes())
            .chain(at.iter().copied())
            .chain(cluster.bytes())
            .chain(slash.iter().copied())
            .chain(hostname.bytes())
    }
}

/// Ordered as the stored forms are, so maps of VIP names iterate (and
/// allocate gateway ports) in the order earlier releases did.
impl Ord for VipName {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.stored_bytes().cmp(other.stored_bytes())
    }
}

impl PartialOrd for VipName {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Display for VipName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            VipName::Global(key) => write!(f, "{key}"),
            VipName::Pinned { service, cluster } => write!(f, "{service}@{cluster}"),
            VipName::Endpoint {
                service,
                cluster,
                hostname,
            } => write!(f, "{service}@{cluster}/{hostname}"),
        }
    }
}

/// A peering's link state as shown by `fedctl peers`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkState {
    /// No stream, and nothing kept from the peer.
    Disconnected,
    /// A stream is up and the peer was heard within `peerDeadAfter`.
    Connected,
    /// The stream broke or the peer went silent; what it sent is kept until
    /// `staleGrace` runs out.
    Stale,
}

impl LinkState {
    /// `"connected"`, `"disconnected"` or `"stale"`.
    pub fn as_str(self) -> &'static str {
        match self {
            LinkState::Disconnected => "disconnected",
            LinkState::Connected => "connected",
            LinkState::Stale => "stale",
        }
    }
}

/// How importing clusters order targets (`fedmesh.io/affinity`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Affinity {
    /// Walk the locality order; a level spills to the next as it loses
    /// capacity (the gateway's spill-over by capacity).
    #[default]
    Local,
    /// Prefer other clusters; local endpoints take what they spill.
    Remote,
    /// Every healthy target in one level.
    None,
}

impl Affinity {
    /// The annotation value.
    pub fn as_str(self) -> &'static str {
        match self {
            Affinity::Local => "local",
            Affinity::Remote => "remote",
            Affinity::None => "none",
        }
    }
}

/// The annotation and stored form: `local`, `remote` or `none`.
impl FromStr for Affinity {
    type Err = ModelError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim() {
            "local" => Ok(Affinity::Local),
            "remote" => Ok(Affinity::Remote),
            "none" => Ok(Affinity::None),
            other => Err(ModelError::UnknownAffinity(other.to_string())),
        }
    }
}

/// A TCP port of a service.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PortSpec {
    /// Port name; empty for an unnamed single port.
    pub name: String,
    /// Service port.
    pub port: u16,
    /// What it speaks, decided once by the exporting cluster's registry
    /// ([`AppProtocol::detect`]).
    pub app_protocol: AppProtocol,
}

impl fmt::Display for PortSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.name.is_empty() {
            write!(f, "{}/TCP", self.port)
        } else {
            write!(f, "{}:{}/TCP", self.name, self.port)
        }
    }
}

/// One endpoint (pod or host) behind a local service.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct EndpointSpec {
    /// Its address.
    pub address: IpAddr,
    /// Counted healthy unless `conditions.ready` is false.
    pub ready: bool,
    /// Port name → target port on this endpoint.
    pub ports: BTreeMap<String, u16>,
    /// The EndpointSlice endpoint's `hostname` (StatefulSet pods set it);
    /// names the endpoint when its service is headless.
    pub hostname: Option<String>,
}

/// How a service is exported (the `fedmesh.io/*` annotations).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ExportSpec {
    /// Peers allowed to import it; empty means every peer.
    pub to: Vec<String>,
    /// Target ordering on the importing side.
    pub affinity: Affinity,
    /// Split among clusters by weight (cluster → weight).
    pub weights: BTreeMap<String, u32>,
}

impl ExportSpec {
    /// Whether `peer` may import the service.
    pub fn allows(&self, peer: &str) -> bool {
        self.to.is_empty() || self.to.iter().any(|p| p == peer)
    }
}

/// A service of this cluster, as a registry sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalService {
    /// Identity.
    pub key: ServiceKey,
    /// TCP ports (others are reported as problems, not carried).
    pub ports: Vec<PortSpec>,
    /// `Some` when the service is exported.
    pub export: Option<ExportSpec>,
    /// Endpoints from the service's EndpointSlices.
    pub endpoints: Vec<EndpointSpec>,
    /// `spec.clusterIP: None`: each endpoint with a hostname gets its own
    /// name and VIP across the federation ([`headless`]).
    pub headless: bool,
}

impl LocalService {
    /// Endpoints counted as healthy.
    pub fn healthy_endpoints(&self) -> u32 {
        u32::try_from(self.endpoints.iter().filter(|e| e.ready).count()).unwrap_or(u32::MAX)
    }

    /// Every endpoint, ready or not: the capacity the healthy ones are a
    /// share of (spill-over by capacity on the importing side).
    pub fn total_endpoints(&self) -> u32 {
        u32::try_from(self.endpoints.len()).unwrap_or(u32::MAX)
    }
}

/// Something a registry could not use, reported by `fedctl check`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Problem {
    /// Where: a file, or a `kind ns/name` object.
    pub source: String,
    /// What is wrong and what to do.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.source, self.message)
    }
}

/// Everything a registry knows about this cluster's services.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LocalSnapshot {
    /// Services by key.
    pub services: BTreeMap<ServiceKey, LocalService>,
    /// What was skipped and why.
    pub problems: Vec<Problem>,
    /// True while the registry has not finished its first full read (the
    /// Kubernetes API not listed yet): `services` is not known, so nothing
    /// may be withdrawn on its account; `problems` says what is wrong.
    pub pending: bool,
    /// HTTP routes and faults, with their own problems (warnings).
    pub routes: RouteView,
}

/// A service a peer exports, as imported here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportedService {
    /// TCP ports.
    pub ports: Vec<PortSpec>,
    /// When the peer first exported it (unix ms).
    pub exported_at_ms: i64,
    /// The peer's affinity annotation.
    pub affinity: Affinity,
    /// The peer's weights annotation.
    pub weights: BTreeMap<String, u32>,
    /// Healthy endpoints in the peer.
    pub healthy: u32,
    /// Every endpoint in the peer, ready or not; never below `healthy`
    /// (a peer on an earlier release sends none, and then counts as fully
    /// healthy).
    pub total: u32,
    /// `Some` when the peer's service is headless: its named endpoints.
    pub headless: Option<NamedEndpoints>,
    /// The peer is drained (`fedctl drain`): a last resort for new
    /// connections.
    pub draining: bool,
}

/// A valid route and the document it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalRoute {
    /// The file (or API object) it came from.
    pub source: String,
    /// The document as read.
    pub document: Value,
    /// The validated route.
    pub route: HttpRoute,
}

/// A valid fault and the document it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalFault {
    /// The file (or API object) it came from.
    pub source: String,
    /// The document as read.
    pub document: Value,
    /// The validated fault.
    pub fault: FaultInjection,
}

/// The routes and faults of one registry view, checked by
/// [`crate::routes`] (`RouteView::build`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RouteView {
    /// Valid routes, in the registry's order.
    pub routes: Vec<LocalRoute>,
    /// Valid faults, in the registry's order.
    pub faults: Vec<LocalFault>,
    /// Invalid and duplicate documents (warnings: they are ignored).
    pub problems: Vec<Problem>,
}
