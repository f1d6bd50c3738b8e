//! What the import Services should be, as pure functions: one Service per
//! VIP name of the table (`ns/name` for a global service, `ns/name@cluster`
//! for a pinned one, `ns/name@cluster/hostname` for each named endpoint of
//! a headless one), selecting the gateway pods, each service port
//! targeting a gateway port of its own from `registry.importPorts`.
//!
//! The Services themselves are the record of the allocations: a restarted
//! control plane reads the target ports back from them, so ports (and the
//! ClusterIPs Kubernetes keeps for a Service's life) never move.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::ops::RangeInclusive;

use k8s_openapi::api::core::v1::{Service, ServicePort, ServiceSpec};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::api::ObjectMeta;

use crate::model::{PortSpec, VipName};
use crate::table::TableSnapshot;

pub use crate::registry::kubernetes::MANAGED_BY;
/// The label naming the control plane (cluster) that owns it.
pub const OWNER_LABEL: &str = "fedmesh.io/cluster";
/// The annotation holding the VIP name it stands for.
pub const IMPORT_ANNOTATION: &str = "fedmesh.io/import";

/// The VIP names the table asks for, with their service ports: each
/// service's global and pinned names, and the name of every named endpoint
/// of a headless one (DESIGN.md, Headless services across clusters), which
/// gets a Service (and so a ClusterIP) of its own like any other VIP.
pub fn desired(table: &TableSnapshot) -> BTreeMap<VipName, Vec<PortSpec>> {
    let mut out = BTreeMap::new();
    for s in table.services.values() {
        for c in &s.clusters {
            out.insert(s.key.pinned_vip(&c.cluster), s.ports.clone());
        }
        out.insert(s.key.global_vip(), s.ports.clone());
        let named = table.headless_service(&s.key).into_iter().flat_map(|h| {
            h.clusters.iter().flat_map(|(cluster, endpoints)| {
                endpoints
                    .iter()
                    .map(move |e| s.key.endpoint_vip(cluster, &e.hostname))
            })
        });
        for name in named {
            out.insert(name, s.ports.clone());
        }
    }
    out
}

/// The Kubernetes object name for a VIP name: `fm-` and 20 hex digits of
/// its SHA-256 (a DNS-1035 label whatever the namespace and name lengths).
pub fn object_name(vip_name: &VipName) -> String {
    let stored = vip_name.to_string();
    let digest = ring::digest::digest(&ring::digest::SHA256, stored.as_bytes());
    let hex: String = digest.as_ref()[..10]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("fm-{hex}")
}

/// An import Service as read back from the API.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Observed {
    /// Its ClusterIP, once assigned.
    pub cluster_ip: Option<Ipv4Addr>,
    /// Service port → target (gateway) port.
    pub ports: BTreeMap<u16, u16>,
    /// Its selector.
    pub selector: BTreeMap<String, String>,
}

/// Reads an import Service; `None` when it is not one (no annotation).
pub fn observe(s: &Service) -> Option<(VipName, Observed)> {
    let name = VipName::from_stored(s.metadata.annotations.as_ref()?.get(IMPORT_ANNOTATION)?)?;
    let spec = s.spec.as_ref();
    let cluster_ip = spec
        .and_then(|s| s.cluster_ip.as_deref())
        .and_then(|ip| ip.parse().ok());
    let ports = spec
        .and_then(|s| s.ports.as_ref())
        .into_iter()
        .flatten()
        .filter_map(|p| {
            let port = u16::try_from(p.port).ok()?;
            let target = match p.target_port.as_ref()? {
                IntOrString::Int(n) => u16::try_from(*n).ok()?,
                IntOrString::String(_) => return None,
            };
            Some((port, target))
        })
        .collect();
    let selector = spec.and_then(|s| s.selector.clone()).unwrap_or_default();
    Some((
        name,
        Observed {
            cluster_ip,
            ports,
            selector,
        },
    ))
}

/// Gateway ports by (VIP name, service port), kept stable.
#[derive(Debug, Clone)]
pub struct PortAllocator {
    range: RangeInclusive<u16>,
    by_key: BTreeMap<(VipName, u16), u16>,
    used: BTreeSet<u16>,
}

impl PortAllocator {
    /// An empty allocator over `range`.
    pub fn new(range: RangeInclusive<u16>) -> Self {
        Self {
            range,
            by_key: BTreeMap::new(),
            used: BTreeSet::new(),
        }
    }

    /// Takes over the ports existing Services already target (inside the
    /// range, first come first kept).
    pub fn adopt(&mut self, observed: &BTreeMap<VipName, Observed>) {
        for (name, o) in observed {
            for (port, target) in &o.ports {
                let key = (name.clone(), *port);
                if self.range.contains(target)
                    && !self.by_key.contains_key(&key)
                    && self.used.insert(*target)
                {
                    self.by_key.insert(key, *target);
                }
            }
        }
    }

    /// Keeps the allocations of `desired` (allocating what is missing) and
    /// frees the rest; the (VIP name → service port → gateway port) map,
    /// without the ports the range had no room for.
    pub fn assign(
        &mut self,
        desired: &BTreeMap<VipName, Vec<PortSpec>>,
    ) -> BTreeMap<VipName, BTreeMap<u16, u16>> {
        let wanted: BTreeSet<(VipName, u16)> = desired
            .iter()
            .flat_map(|(name, ports)| ports.iter().map(|p| (name.clone(), p.port)))
            .collect();
        let used = &mut self.used;
        self.by_key.retain(|key, port| {
            let keep = wanted.contains(key);
            if !keep {
                used.remove(port);
            }
            keep
        });
        let mut out: BTreeMap<VipName, BTreeMap<u16, u16>> = BTreeMap::new();
        for key in wanted {
            let port = match self.by_key.get(&key) {
                Some(p) => Some(*p),
                None => self.free().inspect(|p| {
                    self.used.insert(*p);
                    self.by_key.insert(key.clone(), *p);
                }),
            };
            if let Some(p) = port {
                out.entry(key.0).or_default().insert(key.1, p);
            }
        }
        out
    }

    fn free(&self) -> Option<u16> {
        self.range.clone().find(|p| !self.used.contains(p))
    }
}

/// The import Service for `vip_name`.
pub fn service(
    vip_name: &VipName,
    namespace: &str,
    cluster: &str,
    selector: &BTreeMap<String, String>,
    ports: &[PortSpec],
    targets: &BTreeMap<u16, u16>,
) -> Service {
    let service_ports = ports
        .iter()
        .filter_map(|p| {
            let target = targets.get(&p.port)?;
            Some(ServicePort {
                // Service port names must be unique and non-empty when
                // there are several; the number keeps them so.
                name: Some(format!("tcp-{}", p.port)),
                port: i32::from(p.port),
                target_port: Some(IntOrString::Int(i32::from(*target))),
                protocol: Some("TCP".into()),
                ..Default::default()
            })
        })
        .collect();
    Service {
        metadata: ObjectMeta {
            name: Some(object_name(vip_name)),
            namespace: Some(namespace.into()),
            labels: Some(
                [
                    (MANAGED_BY.0.to_string(), MANAGED_BY.1.to_string()),
                    (OWNER_LABEL.to_string(), cluster.to_string()),
                ]
                .into(),
            ),
            annotations: Some([(IMPORT_ANNOTATION.to_string(), vip_name.to_string())].into()),
            ..Default::default()
        },
        spec: Some(ServiceSpec {
            type_: Some("ClusterIP".into()),
            selector: Some(selector.clone()),
            ports: Some(service_ports),
            ..Default::default()
        }),
        status: None,
    }
}

/// What to change in the API: Services to apply, VIP names to delete.
#[derive(Debug, Default, PartialEq)]
pub struct Plan {
    /// Services to create or update (server-side apply).
    pub apply: Vec<Service>,
    /// VIP names whose Services must go.
    pub delete: Vec<VipName>,
}

/// The changes that make `observed` match `desired`.
pub fn plan(
    desired: &BTreeMap<VipName, Vec<PortSpec>>,
    assigned: &BTreeMap<VipName, BTreeMap<u16, u16>>,
    observed: &BTreeMap<VipName, Observed>,
    make: impl Fn(&VipName, &[PortSpec], &BTreeMap<u16, u16>) -> Service,
    selector: &BTreeMap<String, String>,
) -> Plan {
    let empty = BTreeMap::new();
    let mut out = Plan::default();
    for (name, ports) in desired {
        let targets = assigned.get(name).unwrap_or(&empty);
        if targets.is_empty() {
            continue;
        }
        let current = observed.get(name);
        if current.is_some_and(|o| o.ports == *targets && o.selector == *selector) {
            continue;
        }
        out.apply.push(make(name, ports, targets));
    }
    out.delete = observed
        .keys()
        .filter(|n| !desired.contains_key(*n))
        .cloned()
        .collect();
    out
}
