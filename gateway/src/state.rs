//! What a gateway knows, decoded from the control plane's snapshot and
//! checked field by field: the trust bundle, the imported global services
//! (VIP, ports, targets) and this cluster's exported services (endpoints,
//! `export-to`). A snapshot that does not decode is refused as a whole and
//! the gateway keeps serving the last good one.

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, Ipv4Addr};

use fedmesh_proto::identity::{PeerTrust, TrustBundle};
use fedmesh_proto::v1;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;

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
    /// Locality order; spill only when a level has nothing healthy.
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
    /// Its gateway ingress (host:port); empty for this cluster.
    pub gateway: String,
    /// This cluster.
    pub local: bool,
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

/// Everything a gateway knows.
#[derive(Debug, Clone, Default)]
pub struct GatewayState {
    /// Snapshot version.
    pub version: u64,
    /// This cluster.
    pub cluster: String,
    /// This cluster's trust domain.
    pub trust_domain: String,
    /// This cluster's locality.
    pub locality: Locality,
    /// Peer roots.
    pub trust: TrustBundle,
    /// Imported services by key.
    pub imports: BTreeMap<ServiceKey, Import>,
    /// Exported services by key.
    pub exports: HashMap<ServiceKey, Export>,
}

impl GatewayState {
    /// Decodes a snapshot.
    ///
    /// # Errors
    /// The first bad field, named.
    pub fn from_proto(s: &v1::GatewaySnapshot) -> Result<Self, String> {
        let mut trust = TrustBundle::default();
        for (i, anchor) in s.trust_bundle.iter().enumerate() {
            let roots = anchor
                .roots_pem
                .iter()
                .map(|pem| {
                    CertificateDer::from_pem_slice(pem.as_bytes()).map(CertificateDer::into_owned)
                })
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| format!("trust_bundle[{i}].roots_pem: {e}"))?;
            trust
                .insert(PeerTrust {
                    cluster: anchor.cluster.clone(),
                    trust_domain: anchor.trust_domain.clone(),
                    roots,
                })
                .map_err(|e| format!("trust_bundle[{i}]: {e}"))?;
        }
        let imports = s
            .imports
            .iter()
            .enumerate()
            .map(|(i, imp)| {
                import(imp)
                    .map_err(|e| format!("imports[{i}] ({}/{}): {e}", imp.namespace, imp.name))
            })
            .collect::<Result<Vec<_>, _>>()?
            .into_iter()
            .map(|imp| (imp.key.clone(), imp))
            .collect();
        let exports = s
            .exports
            .iter()
            .enumerate()
            .map(|(i, e)| {
                export(e)
                    .map(|x| ((e.namespace.clone(), e.name.clone()), x))
                    .map_err(|err| format!("exports[{i}] ({}/{}): {err}", e.namespace, e.name))
            })
            .collect::<Result<HashMap<_, _>, _>>()?;
        Ok(Self {
            version: s.version,
            cluster: s.cluster.clone(),
            trust_domain: s.trust_domain.clone(),
            locality: locality(s.locality.as_ref()),
            trust,
            imports,
            exports,
        })
    }
}

fn locality(l: Option<&v1::Locality>) -> Locality {
    l.map(|l| Locality {
        region: l.region.clone(),
        zone: l.zone.clone(),
    })
    .unwrap_or_default()
}

fn ports(ports: &[v1::ServicePort]) -> Result<Vec<(String, u16)>, String> {
    ports
        .iter()
        .map(|p| {
            let port = u16::try_from(p.port)
                .ok()
                .filter(|p| *p > 0)
                .ok_or_else(|| format!("ports: {} is not a port number", p.port))?;
            Ok((p.name.clone(), port))
        })
        .collect()
}

fn import(i: &v1::ImportedService) -> Result<Import, String> {
    let vip: Ipv4Addr = i
        .vip
        .parse()
        .map_err(|_| format!("vip {:?} is not an IPv4 address", i.vip))?;
    let affinity = match v1::Affinity::try_from(i.affinity) {
        Ok(v1::Affinity::Local) => Affinity::Local,
        Ok(v1::Affinity::Remote) => Affinity::Remote,
        Ok(v1::Affinity::None) => Affinity::None,
        Err(_) => return Err(format!("affinity {} is unknown", i.affinity)),
    };
    let targets = i
        .targets
        .iter()
        .map(|t| {
            if !t.local && t.gateway_address.is_empty() {
                return Err(format!("target {} has no gateway_address", t.cluster));
            }
            Ok(Target {
                cluster: t.cluster.clone(),
                locality: locality(t.locality.as_ref()),
                healthy: t.healthy_endpoints,
                gateway: t.gateway_address.clone(),
                local: t.local,
            })
        })
        .collect::<Result<_, _>>()?;
    Ok(Import {
        key: (i.namespace.clone(), i.name.clone()),
        vip,
        ports: ports(&i.ports)?,
        affinity,
        weights: i
            .weights
            .iter()
            .map(|w| (w.cluster.clone(), w.weight))
            .collect(),
        targets,
    })
}

fn export(e: &v1::LocalService) -> Result<Export, String> {
    let endpoints =
        e.endpoints
            .iter()
            .map(|ep| {
                let address: IpAddr = ep.address.parse().map_err(|_| {
                    format!("endpoint address {:?} is not an IP address", ep.address)
                })?;
                let ports = ep
                    .ports
                    .iter()
                    .map(|(k, v)| {
                        u16::try_from(*v)
                            .map(|p| (k.clone(), p))
                            .map_err(|_| format!("endpoint port {v} is not a port number"))
                    })
                    .collect::<Result<_, _>>()?;
                Ok(Endpoint {
                    address,
                    ready: ep.ready,
                    ports,
                })
            })
            .collect::<Result<_, String>>()?;
    Ok(Export {
        ports: ports(&e.ports)?,
        endpoints,
        export_to: e.export_to.clone(),
    })
}
