//! Config and manifest texts for a cluster on one loopback address, with
//! the fixed ports every local federation uses: peering 15017, admin 15000,
//! gateway API 15012, DNS 15053, gateway ingress 15443, gateway admin
//! 15090.

use std::net::Ipv4Addr;

/// A cluster's config file, with lines of its own under `control:` and
/// `gateway:`, and anything after (each block ends in a newline, or is
/// empty).
#[derive(Debug, Clone, Default)]
pub struct ConfigText<'a> {
    /// Cluster name.
    pub name: &'a str,
    /// Locality region.
    pub region: &'a str,
    /// Locality zone.
    pub zone: &'a str,
    /// Every listener's address.
    pub ip: Option<Ipv4Addr>,
    /// More lines under `control:`, indented two spaces.
    pub control_extra: &'a str,
    /// More lines under `gateway:`, indented two spaces.
    pub gateway_extra: &'a str,
    /// Top-level sections after `gateway:`.
    pub tail: &'a str,
}

impl ConfigText<'_> {
    /// The YAML text.
    pub fn render(&self) -> String {
        let ip = self.ip.unwrap_or(Ipv4Addr::LOCALHOST);
        format!(
            "cluster: {name}
locality: {{ region: {region}, zone: {zone} }}
dataDir: ./data
control:
  peeringListen: {ip}:15017
  adminListen: {ip}:15000
  gatewayListen: {ip}:15012
{control}dns:
  listen: {ip}:15053
gateway:
{gateway}  ingressListen: {ip}:15443
  adminListen: {ip}:15090
{tail}",
            name = self.name,
            region = self.region,
            zone = self.zone,
            control = self.control_extra,
            gateway = self.gateway_extra,
            tail = self.tail,
        )
    }
}

/// A `Service` in namespace `ns` with one TCP port `port_name:port` and
/// `annotations`, plus an `EndpointSlice` with target port `target` when
/// `endpoints` is not empty (every endpoint ready).
pub fn service_manifest(
    ns: &str,
    name: &str,
    (port_name, port, target): (&str, u16, u16),
    annotations: &[(&str, &str)],
    endpoints: &[&str],
) -> String {
    let ann = annotations
        .iter()
        .map(|(k, v)| format!("{k}: \"{v}\""))
        .collect::<Vec<_>>()
        .join(", ");
    let mut yaml = format!(
        "apiVersion: v1
kind: Service
metadata:
  name: {name}
  namespace: {ns}
  annotations: {{ {ann} }}
spec:
  ports:
    - {{ name: {port_name}, port: {port}, protocol: TCP }}
"
    );
    if !endpoints.is_empty() {
        let eps = endpoints
            .iter()
            .map(|e| format!("  - addresses: [\"{e}\"]\n    conditions: {{ ready: true }}\n"))
            .collect::<String>();
        yaml.push_str(&format!(
            "---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: {name}-1
  namespace: {ns}
  labels: {{ kubernetes.io/service-name: {name} }}
addressType: IPv4
ports: [ {{ name: {port_name}, port: {target}, protocol: TCP }} ]
endpoints:
{eps}"
        ));
    }
    yaml
}

/// The export annotation.
pub const EXPORT: (&str, &str) = ("fedmesh.io/export", "true");

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::build::{Sourced, build};

    #[test]
    fn a_rendered_config_loads() {
        let text = ConfigText {
            name: "east",
            region: "us-east",
            zone: "us-east-1a",
            ip: Some(Ipv4Addr::new(127, 0, 3, 1)),
            control_extra: "  heartbeatInterval: 250ms\n",
            gateway_extra: "  embedded: true\n",
            tail: "registry:\n  path: ./services\n",
        }
        .render();
        let config =
            fedmesh_proto::config::Config::from_yaml(&text, std::path::Path::new("config.yaml"))
                .unwrap_or_else(|e| panic!("{e}\n{text}"));
        assert_eq!(config.cluster, "east");
        assert!(config.gateway.embedded);
        assert_eq!(config.control.peering_listen.to_string(), "127.0.3.1:15017");
    }

    #[test]
    fn a_manifest_builds_one_exported_service_with_its_endpoint() {
        let yaml = service_manifest(
            "demo",
            "hello",
            ("http", 8080, 18080),
            &[EXPORT],
            &["127.0.3.1"],
        );
        let (service, slice) = yaml.split_once("\n---\n").unwrap();
        fn object<T: serde::de::DeserializeOwned>(doc: &str) -> Sourced<T> {
            let value: serde_json::Value = serde_saphyr::from_str(doc).unwrap();
            Sourced {
                source: String::new(),
                object: serde_json::from_value(value).unwrap(),
            }
        }
        let (service, slice) = (object(service), object(slice));
        let snap = build([&service], [&slice]);
        let svc = &snap.services[&crate::model::ServiceKey::new("demo", "hello")];
        assert!(svc.export.is_some(), "{:?}", snap.problems);
        assert_eq!(svc.healthy_endpoints(), 1);
        assert_eq!(svc.endpoints[0].ports["http"], 18080);
    }
}
