//! What a global service's ports speak when its exporters disagree: a port
//! is HTTP only when every exporting cluster says so (DESIGN.md,
//! HTTP-aware services). A cluster on an earlier release sends no protocol
//! (TCP) and its ingress takes only CONNECT streams, so until every
//! exporter is upgraded the port stays TCP, which every gateway carries.
//! A protocol difference alone is therefore not a conflict: ports conflict
//! when their names or numbers differ.

use crate::model::{AppProtocol, PortSpec};

/// Whether two exports have the same ports, protocols aside.
pub(super) fn same_ports(a: &[PortSpec], b: &[PortSpec]) -> bool {
    a.len() == b.len()
        && a.iter()
            .zip(b)
            .all(|(x, y)| x.name == y.name && x.port == y.port)
}

/// `chosen`'s ports, each HTTP only when every export in `all` has the
/// same port as HTTP too.
pub(super) fn agreed<'a>(
    chosen: &[PortSpec],
    all: impl Iterator<Item = &'a [PortSpec]> + Clone,
) -> Vec<PortSpec> {
    chosen
        .iter()
        .map(|p| {
            let everywhere = all.clone().all(|ports| {
                ports
                    .iter()
                    .any(|q| q.port == p.port && q.app_protocol.is_http())
            });
            let mut p = p.clone();
            if !everywhere {
                p.app_protocol = AppProtocol::Tcp;
            }
            p
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn port(name: &str, port: u16, app_protocol: AppProtocol) -> PortSpec {
        PortSpec {
            name: name.into(),
            port,
            app_protocol,
        }
    }

    #[test]
    fn a_port_is_http_only_when_every_exporter_says_so() {
        let new = vec![port("http", 8080, AppProtocol::Http)];
        let old = vec![port("http", 8080, AppProtocol::Tcp)];
        let upgraded = [new.as_slice(), new.as_slice()];
        assert_eq!(agreed(&new, upgraded.iter().copied()), new);
        let mixed = [new.as_slice(), old.as_slice()];
        assert_eq!(agreed(&new, mixed.iter().copied()), old);
        assert!(
            same_ports(&new, &old),
            "a protocol difference is no conflict"
        );
        assert!(!same_ports(&new, &[port("http", 8081, AppProtocol::Http)]));
    }
}
