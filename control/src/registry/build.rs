//! Kubernetes `Service` and `discovery.k8s.io/v1` `EndpointSlice` objects →
//! a [`LocalSnapshot`]. Both registries (static files and the Kubernetes
//! API) call [`build`], so the same objects give the same table whichever
//! way they arrive.
//!
//! Rules (DESIGN.md, Exporting): slices join services by the
//! `kubernetes.io/service-name` label and ports by name; an endpoint is
//! healthy unless `conditions.ready` is false; only TCP ports are carried,
//! others are reported; a missing namespace means `default`.

use std::collections::BTreeMap;
use std::net::IpAddr;

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;

use super::annotations::parse_export;
use crate::model::wire::shown;
use crate::model::{
    AppProtocol, EndpointSpec, LocalService, LocalSnapshot, MAX_NAMED_ENDPOINTS, NamedEndpoints,
    PortSpec, Problem, ServiceKey, is_dns_label,
};

/// The label that ties an EndpointSlice to its Service.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// An object and where it came from (a file, or the API), for messages.
#[derive(Debug, Clone, PartialEq)]
pub struct Sourced<T> {
    /// Where it came from.
    pub source: String,
    /// The object.
    pub object: T,
}

/// An object that cannot be read at all (reported as a problem, skipped).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ObjectError {
    /// A Service without a name.
    #[error("Service without metadata.name")]
    NoName,
    /// A slice that names no Service.
    #[error("EndpointSlice {slice} has no kubernetes.io/service-name label")]
    NoServiceLabel {
        /// The slice.
        slice: String,
    },
    /// An endpoint address that does not parse.
    #[error("EndpointSlice {slice}: {address:?} is not an IP address")]
    BadAddress {
        /// The slice.
        slice: String,
        /// The address written.
        address: String,
    },
}

/// Builds the local snapshot from every Service and EndpointSlice known.
pub fn build<'a>(
    services: impl IntoIterator<Item = &'a Sourced<Service>>,
    slices: impl IntoIterator<Item = &'a Sourced<EndpointSlice>>,
) -> LocalSnapshot {
    let mut snap = LocalSnapshot::default();
    for s in services {
        match service(&s.object) {
            Ok((svc, problems)) => {
                for message in problems {
                    snap.problems.push(Problem {
                        source: label(&s.source, "Service", &svc.key),
                        message,
                    });
                }
                snap.services.insert(svc.key.clone(), svc);
            }
            Err(error) => snap.problems.push(Problem {
                source: s.source.clone(),
                message: error.to_string(),
            }),
        }
    }
    let mut endpoints: BTreeMap<ServiceKey, BTreeMap<IpAddr, EndpointSpec>> = BTreeMap::new();
    for s in slices {
        if let Err(error) = slice(&s.object, &mut endpoints) {
            snap.problems.push(Problem {
                source: s.source.clone(),
                message: error.to_string(),
            });
        }
    }
    for (key, eps) in endpoints {
        if let Some(svc) = snap.services.get_mut(&key) {
            svc.endpoints = eps.into_values().collect();
        }
    }
    let named_problems: Vec<Problem> = snap
        .services
        .values()
        .filter(|svc| svc.headless && svc.export.is_some())
        .flat_map(named_endpoint_problems)
        .collect();
    snap.problems.extend(named_problems);
    snap
}

/// What an exported headless service's endpoints lose of their names: a
/// hostname that is not a DNS label gets no name, nor do names past the
/// limit an export carries.
fn named_endpoint_problems(svc: &LocalService) -> Vec<Problem> {
    let (_, left) = NamedEndpoints::from_endpoints(&svc.endpoints);
    let source = format!("EndpointSlice of {}", svc.key);
    let mut problems: Vec<Problem> = left
        .bad
        .iter()
        .map(|h| Problem {
            source: source.clone(),
            message: format!(
                "endpoint hostname {} is not a DNS label (lowercase letters, digits and '-', at most 63); it gets no per-endpoint name",
                shown(h)
            ),
        })
        .collect();
    if left.beyond_limit > 0 {
        problems.push(Problem {
            source,
            message: format!(
                "{} named endpoints beyond the first {MAX_NAMED_ENDPOINTS} (by hostname) get no per-endpoint name; an export carries at most {MAX_NAMED_ENDPOINTS}",
                left.beyond_limit
            ),
        });
    }
    problems
}

fn label(source: &str, kind: &str, key: &ServiceKey) -> String {
    if source.is_empty() {
        format!("{kind} {key}")
    } else {
        format!("{source}: {kind} {key}")
    }
}

/// One Service; a service that cannot be exported as asked is kept but not
/// exported, with the reason among the problems.
fn service(s: &Service) -> Result<(LocalService, Vec<String>), ObjectError> {
    let name = s
        .metadata
        .name
        .clone()
        .filter(|n| !n.is_empty())
        .ok_or(ObjectError::NoName)?;
    let namespace = s
        .metadata
        .namespace
        .clone()
        .unwrap_or_else(|| "default".into());
    let key = ServiceKey::new(namespace, name);
    let mut problems = Vec::new();
    let empty = BTreeMap::new();
    let annotations = s.metadata.annotations.as_ref().unwrap_or(&empty);
    let mut export = match parse_export(annotations) {
        Ok(e) => e,
        Err(message) => {
            problems.push(format!("not exported: {message}"));
            None
        }
    };
    if export.is_some()
        && let Some(message) = unexportable_name(&key)
    {
        problems.push(message);
        export = None;
    }
    let spec = s.spec.as_ref();
    let ports = tcp_ports(spec, export.is_some(), &mut problems);
    if export.is_some() {
        if let Some(message) = unexportable_port_name(&ports) {
            problems.push(message);
            export = None;
        } else if spec.and_then(|s| s.type_.as_deref()) == Some("ExternalName") {
            problems
                .push("not exported: an ExternalName Service has no endpoints to export".into());
            export = None;
        } else if ports.is_empty() {
            problems.push("not exported: it has no TCP port".into());
            export = None;
        }
    }
    Ok((
        LocalService {
            key,
            ports,
            export,
            endpoints: Vec::new(),
            // Kubernetes: `clusterIP: None` makes a Service headless.
            headless: spec.and_then(|s| s.cluster_ip.as_deref()) == Some("None"),
        },
        problems,
    ))
}

/// The TCP ports of a Service, sorted; the others are problems when the
/// service is exported.
/// Why a service with this key cannot be exported: every peer refuses a
/// namespace or name that is not a DNS label (RFC 1123 §2.1, as
/// Kubernetes names are), so the exporter says so instead of showing it
/// exported while no peer imports it.
fn unexportable_name(key: &ServiceKey) -> Option<String> {
    [("namespace", &key.namespace), ("name", &key.name)]
        .into_iter()
        .find(|(_, v)| !is_dns_label(v))
        .map(|(field, v)| {
            format!(
                "not exported: its {field} {} is not a DNS label (lowercase letters, digits and '-', at most 63), which peers refuse",
                shown(v)
            )
        })
}

/// Why the ports keep a service from being exported: a port name that is
/// not a DNS label is refused by every peer.
fn unexportable_port_name(ports: &[PortSpec]) -> Option<String> {
    ports
        .iter()
        .find(|p| !p.name.is_empty() && !is_dns_label(&p.name))
        .map(|p| {
            format!(
                "not exported: port name {} is not a DNS label (lowercase letters, digits and '-', at most 63), which peers refuse",
                shown(&p.name)
            )
        })
}

fn tcp_ports(
    spec: Option<&k8s_openapi::api::core::v1::ServiceSpec>,
    exported: bool,
    problems: &mut Vec<String>,
) -> Vec<PortSpec> {
    let mut ports = Vec::new();
    for p in spec.and_then(|s| s.ports.as_ref()).into_iter().flatten() {
        let protocol = p.protocol.as_deref().unwrap_or("TCP");
        let name = p.name.clone().unwrap_or_default();
        match (protocol, u16::try_from(p.port)) {
            ("TCP", Ok(port)) if port > 0 => {
                // Decided here once; peers and gateways take it as sent.
                let app_protocol = AppProtocol::detect(p.app_protocol.as_deref(), &name);
                ports.push(PortSpec {
                    name,
                    port,
                    app_protocol,
                });
            }
            ("TCP", _) => problems.push(format!("port {name:?} has invalid number {}", p.port)),
            (other, _) if exported => problems.push(format!(
                "port {} ({other}) is not exported: only TCP ports are carried in this version",
                if name.is_empty() {
                    p.port.to_string()
                } else {
                    name.clone()
                }
            )),
            _ => {}
        }
    }
    ports.sort();
    ports.dedup();
    ports
}

/// Adds one slice's endpoints under its service's key.
fn slice(
    s: &EndpointSlice,
    into: &mut BTreeMap<ServiceKey, BTreeMap<IpAddr, EndpointSpec>>,
) -> Result<(), ObjectError> {
    let name = s.metadata.name.as_deref().unwrap_or("(unnamed)");
    let service = s
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(SERVICE_NAME_LABEL))
        .ok_or_else(|| ObjectError::NoServiceLabel {
            slice: name.to_string(),
        })?;
    if s.address_type != "IPv4" && s.address_type != "IPv6" {
        // FQDN slices name hosts, not addresses; nothing to route to.
        return Ok(());
    }
    let namespace = s
        .metadata
        .namespace
        .clone()
        .unwrap_or_else(|| "default".into());
    let ports: BTreeMap<String, u16> = s
        .ports
        .iter()
        .flatten()
        .filter(|p| p.protocol.as_deref().unwrap_or("TCP") == "TCP")
        .filter_map(|p| {
            let port = u16::try_from(p.port?).ok().filter(|p| *p > 0)?;
            Some((p.name.clone().unwrap_or_default(), port))
        })
        .collect();
    let eps = into
        .entry(ServiceKey::new(namespace, service.clone()))
        .or_default();
    for e in &s.endpoints {
        let ready = e.conditions.as_ref().and_then(|c| c.ready) != Some(false);
        for addr in &e.addresses {
            let address: IpAddr = addr.parse().map_err(|_| ObjectError::BadAddress {
                slice: name.to_string(),
                address: addr.clone(),
            })?;
            let entry = eps.entry(address).or_insert_with(|| EndpointSpec {
                address,
                ready,
                ports: BTreeMap::new(),
                hostname: None,
            });
            // The same address in two slices: ready if either says so.
            entry.ready |= ready;
            if entry.hostname.is_none() {
                entry.hostname.clone_from(&e.hostname);
            }
            entry
                .ports
                .extend(ports.iter().map(|(k, v)| (k.clone(), *v)));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
