//! What a gateway knows, decoded from the control plane's snapshot and
//! checked field by field: the trust bundle, the imported global services
//! (VIP, ports, targets) and this cluster's exported services (endpoints,
//! `export-to`). A snapshot that does not decode is refused as a whole and
//! the gateway keeps serving the last good one.

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, Ipv4Addr};

use fedmesh_proto::app_protocol::AppProtocol;
use fedmesh_proto::identity::{PeerTrust, TrustBundle};
use fedmesh_proto::v1;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;

use crate::endpoint::{self, EndpointVip};
pub use crate::model::{
    Affinity, Endpoint, Export, Import, Listener, Locality, ServiceKey, Target,
};

impl GatewayState {
    /// Every egress listener of the current imports: each VIP and pinned
    /// VIP on each service port (standalone mode), or the import's listen
    /// ports on `bind` (Kubernetes mode, where the VIPs are ClusterIPs that
    /// kube-proxy forwards to these ports).
    pub fn listeners(&self, bind: IpAddr) -> HashMap<std::net::SocketAddr, Listener> {
        let mut out = HashMap::new();
        for i in self.imports.values() {
            let listener = |pinned: Option<&String>, port: u16| Listener {
                key: i.key.clone(),
                port,
                pinned: pinned.cloned(),
                endpoint: None,
            };
            if !i.listen_ports.is_empty() {
                for ((pinned, hostname, port), listen) in &i.listen_ports {
                    let mut l = listener(pinned.as_ref(), *port);
                    l.endpoint = hostname.clone();
                    out.insert((bind, *listen).into(), l);
                }
                continue;
            }
            for (_, port) in &i.ports {
                out.insert((i.vip, *port).into(), listener(None, *port));
                for (cluster, vip) in &i.pinned {
                    out.insert((*vip, *port).into(), listener(Some(cluster), *port));
                }
                for e in self.endpoint_vips.get(&i.key).into_iter().flatten() {
                    let mut named = listener(Some(&e.cluster), *port);
                    named.endpoint = Some(e.hostname.clone());
                    out.insert((e.vip, *port).into(), named);
                }
            }
        }
        out
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
    /// Headless imports: every named endpoint's VIP, by service.
    pub endpoint_vips: BTreeMap<ServiceKey, Vec<EndpointVip>>,
    /// What each imported service port speaks, for the ones that are not
    /// TCP (egress handles those per request); absent means TCP.
    pub import_protocols: HashMap<(ServiceKey, u16), AppProtocol>,
    /// What each exported service port speaks, for the ones that are not
    /// TCP (ingress forwards those per request); absent means TCP.
    pub export_protocols: HashMap<(ServiceKey, u16), AppProtocol>,
    /// HTTP routes compiled per service (read by the HTTP path).
    pub routes: crate::routes::Routes,
}

impl GatewayState {
    /// What `port` of imported `key` speaks.
    pub fn import_protocol(&self, key: &ServiceKey, port: u16) -> AppProtocol {
        let found = self.import_protocols.get(&(key.clone(), port));
        found.copied().unwrap_or_default()
    }

    /// What `port` of exported `key` speaks.
    pub fn export_protocol(&self, key: &ServiceKey, port: u16) -> AppProtocol {
        let found = self.export_protocols.get(&(key.clone(), port));
        found.copied().unwrap_or_default()
    }
}

/// A service port's protocol, keyed as in [`GatewayState`]'s maps.
type PortProtocol = ((ServiceKey, u16), AppProtocol);

/// The non-TCP ports of one service, keyed for [`GatewayState`]'s maps.
fn protocols(key: &ServiceKey, ports: &[v1::ServicePort]) -> Result<Vec<PortProtocol>, String> {
    let mut out = Vec::new();
    for p in ports {
        let protocol = AppProtocol::from_wire(&p.app_protocol)
            .map_err(|e| format!("ports: port {}: {e}", p.port))?;
        if let (true, Ok(port)) = (protocol.is_http(), u16::try_from(p.port)) {
            out.push(((key.clone(), port), protocol));
        }
    }
    Ok(out)
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
        let mut endpoint_vips = BTreeMap::new();
        for (i, imp) in s.imports.iter().enumerate() {
            let vips = endpoint::decode(imp)
                .map_err(|e| format!("imports[{i}] ({}/{}): {e}", imp.namespace, imp.name))?;
            if !vips.is_empty() {
                endpoint_vips.insert((imp.namespace.clone(), imp.name.clone()), vips);
            }
        }
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
        let mut import_protocols = HashMap::new();
        for (i, imp) in s.imports.iter().enumerate() {
            let key = (imp.namespace.clone(), imp.name.clone());
            let found = protocols(&key, &imp.ports).map_err(|e| format!("imports[{i}]: {e}"))?;
            import_protocols.extend(found);
        }
        let mut export_protocols = HashMap::new();
        for (i, e) in s.exports.iter().enumerate() {
            let key = (e.namespace.clone(), e.name.clone());
            let found = protocols(&key, &e.ports).map_err(|e| format!("exports[{i}]: {e}"))?;
            export_protocols.extend(found);
        }
        Ok(Self {
            version: s.version,
            cluster: s.cluster.clone(),
            trust_domain: s.trust_domain.clone(),
            locality: locality(s.locality.as_ref()),
            trust,
            imports,
            exports,
            endpoint_vips,
            import_protocols,
            export_protocols,
            routes: crate::routes::Routes::from_proto(&s.routes),
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
    let mut pinned = BTreeMap::new();
    for t in &i.targets {
        if t.pinned_vip.is_empty() {
            continue;
        }
        let ip: Ipv4Addr = t.pinned_vip.parse().map_err(|_| {
            format!(
                "target {} pinned_vip {:?} is not an IPv4 address",
                t.cluster, t.pinned_vip
            )
        })?;
        pinned.insert(t.cluster.clone(), ip);
    }
    let mut listen_ports = BTreeMap::new();
    for l in &i.listen_ports {
        let port = u16::try_from(l.port).ok().filter(|p| *p > 0);
        let listen = u16::try_from(l.listen_port).ok().filter(|p| *p > 0);
        let (Some(port), Some(listen)) = (port, listen) else {
            return Err(format!(
                "listen_ports: {} -> {} is not a pair of port numbers",
                l.port, l.listen_port
            ));
        };
        let cluster = (!l.cluster.is_empty()).then(|| l.cluster.clone());
        let hostname = (!l.hostname.is_empty()).then(|| l.hostname.clone());
        // The hostname becomes a label of the peer authority
        // (`<hostname>.<port>.<svc>.<ns>.fedmesh`): one label, named cluster.
        let bad_label = l.hostname.len() > 63 || l.hostname.contains('.');
        if hostname.is_some() && (cluster.is_none() || bad_label) {
            return Err(format!(
                "listen_ports: hostname {:?} must be one DNS label with the cluster of its endpoint",
                l.hostname
            ));
        }
        listen_ports.insert((cluster, hostname, port), listen);
    }
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
                // 0 is "unknown": take it as fully healthy.
                total: t.total_endpoints.max(t.healthy_endpoints),
                gateway: t.gateway_address.clone(),
                local: t.local,
                draining: t.draining,
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
        pinned,
        listen_ports,
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
                    hostname: (!ep.hostname.is_empty()).then(|| ep.hostname.clone()),
                })
            })
            .collect::<Result<_, String>>()?;
    Ok(Export {
        ports: ports(&e.ports)?,
        endpoints,
        export_to: e.export_to.clone(),
    })
}

#[cfg(test)]
mod tests;
