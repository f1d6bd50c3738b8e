//! The per-endpoint path of headless services: a VIP pinned to one named
//! endpoint (a StatefulSet pod, `<hostname>.<cluster>.<svc>.<ns>.svc.<zone>`
//! in DNS) gets its own egress listener, and its connections reach that
//! endpoint only (DESIGN.md, "Wave 2 contract → Headless services across
//! clusters").
//!
//! Data flow: the control plane's snapshot lists each target cluster's
//! endpoint VIPs ([`decode`] into [`EndpointVip`]s, kept in
//! [`crate::state::GatewayState::endpoint_vips`]); the listeners stage
//! binds them with [`crate::model::Listener::endpoint`] set; the attempt
//! stage sends a route naming the hostname ([`crate::wire::Route`]:
//! `<hostname>.<port>.<svc>.<ns>.fedmesh`) to that cluster only, or dials
//! the endpoint directly when it is local; the ingress dials only the
//! endpoint of that hostname ([`candidates`]) and answers 503 when it is
//! down. Nothing fails over: not to another endpoint, not to another
//! cluster, and a refusal ejects no cluster (the cluster serves its other
//! names).

use std::net::{Ipv4Addr, SocketAddr};

use fedmesh_proto::v1;

use crate::dial;
use crate::model::Export;
use crate::wire::Route;

/// The most endpoint VIPs one target may list (the export's bound).
pub const MAX_ENDPOINT_VIPS: usize = 256;

/// The VIP of one named endpoint in one cluster.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct EndpointVip {
    /// The cluster the endpoint runs in.
    pub cluster: String,
    /// Its hostname.
    pub hostname: String,
    /// The VIP reaching it only.
    pub vip: Ipv4Addr,
}

/// A snapshot's endpoint VIPs that do not decode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EndpointVipError {
    /// A VIP that is not an IPv4 address.
    #[error("target {cluster} endpoint_vips {hostname:?}: vip {vip:?} is not an IPv4 address")]
    BadVip {
        /// The target cluster.
        cluster: String,
        /// The endpoint.
        hostname: String,
        /// What was sent.
        vip: String,
    },
    /// A hostname that is empty or not one label.
    #[error("target {cluster} endpoint_vips: hostname {hostname:?} is not a DNS label")]
    BadHostname {
        /// The target cluster.
        cluster: String,
        /// What was sent.
        hostname: String,
    },
    /// More than [`MAX_ENDPOINT_VIPS`] for one target.
    #[error("target {cluster} has {count} endpoint_vips; at most {MAX_ENDPOINT_VIPS} are accepted")]
    TooMany {
        /// The target cluster.
        cluster: String,
        /// How many were sent.
        count: usize,
    },
}

/// Every target's endpoint VIPs of one imported service.
///
/// # Errors
/// The first bad entry, named.
pub fn decode(i: &v1::ImportedService) -> Result<Vec<EndpointVip>, EndpointVipError> {
    let mut out = Vec::new();
    for t in &i.targets {
        if t.endpoint_vips.len() > MAX_ENDPOINT_VIPS {
            return Err(EndpointVipError::TooMany {
                cluster: t.cluster.clone(),
                count: t.endpoint_vips.len(),
            });
        }
        for e in &t.endpoint_vips {
            if e.hostname.is_empty() || e.hostname.len() > 63 || e.hostname.contains('.') {
                return Err(EndpointVipError::BadHostname {
                    cluster: t.cluster.clone(),
                    hostname: e.hostname.clone(),
                });
            }
            let vip = e.vip.parse().map_err(|_| EndpointVipError::BadVip {
                cluster: t.cluster.clone(),
                hostname: e.hostname.clone(),
                vip: e.vip.clone(),
            })?;
            out.push(EndpointVip {
                cluster: t.cluster.clone(),
                hostname: e.hostname.clone(),
                vip,
            });
        }
    }
    Ok(out)
}

/// The local endpoints `route` may reach: every ready endpoint of the
/// service port, or, for a named endpoint, that one only (if ready).
pub fn candidates(export: &Export, route: &Route) -> Vec<SocketAddr> {
    let Some(hostname) = &route.endpoint else {
        return dial::candidates(export, route.port);
    };
    export
        .endpoints
        .iter()
        .filter(|e| e.ready && e.hostname.as_ref() == Some(hostname))
        .filter_map(|e| {
            export
                .target_port(e, route.port)
                .map(|p| SocketAddr::new(e.address, p))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::model::Endpoint;

    fn export() -> Export {
        let ep = |ip: &str, host: &str, ready| Endpoint {
            address: ip.parse().unwrap(),
            ready,
            ports: BTreeMap::from([("pg".to_string(), 15432)]),
            hostname: Some(host.to_string()),
        };
        Export {
            ports: vec![("pg".into(), 5432)],
            endpoints: vec![
                ep("10.0.0.1", "db-0", true),
                ep("10.0.0.2", "db-1", true),
                ep("10.0.0.3", "db-2", false),
            ],
            export_to: vec![],
        }
    }

    #[test]
    fn a_named_route_reaches_its_endpoint_only_and_a_not_ready_one_none() {
        let route = Route::new("demo", "db", 5432);
        assert_eq!(candidates(&export(), &route).len(), 2);
        let db0 = route.clone().to_endpoint("db-0");
        assert_eq!(
            candidates(&export(), &db0),
            ["10.0.0.1:15432".parse::<SocketAddr>().unwrap()]
        );
        assert!(candidates(&export(), &route.clone().to_endpoint("db-2")).is_empty());
        assert!(candidates(&export(), &route.to_endpoint("db-9")).is_empty());
    }

    #[test]
    fn endpoint_vips_decode_per_target_and_a_bad_one_is_named() {
        let target = |vips: Vec<v1::EndpointVip>| v1::Target {
            cluster: "west".into(),
            endpoint_vips: vips,
            ..Default::default()
        };
        let vip = |hostname: &str, vip: &str| v1::EndpointVip {
            hostname: hostname.into(),
            vip: vip.into(),
        };
        let mut i = v1::ImportedService {
            targets: vec![target(vec![vip("db-2", "127.77.0.9")])],
            ..Default::default()
        };
        assert_eq!(
            decode(&i),
            Ok(vec![EndpointVip {
                cluster: "west".into(),
                hostname: "db-2".into(),
                vip: "127.77.0.9".parse().unwrap(),
            }])
        );
        i.targets[0].endpoint_vips[0].vip = "nope".into();
        let e = decode(&i).unwrap_err().to_string();
        assert!(e.contains("west") && e.contains("nope"), "{e}");
        i.targets[0].endpoint_vips = (0..257)
            .map(|n| vip(&format!("p{n}"), "127.0.0.1"))
            .collect();
        assert!(matches!(
            decode(&i),
            Err(EndpointVipError::TooMany { count: 257, .. })
        ));
    }
}
