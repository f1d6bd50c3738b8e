//! Which name of the zone a query asks for: a pure parse of the query name
//! relative to the zone, with no knowledge of which services exist.
//!
//! The name tree (DESIGN.md, DNS; the MCS DNS spec, KEP-1645):
//!
//! ```text
//! <zone>                                    apex: SOA, NS
//! svc.<zone>                                empty non-terminal
//! <ns>.svc.<zone>                           empty non-terminal
//! <svc>.<ns>.svc.<zone>                     A → VIP
//! <cluster>.<svc>.<ns>.svc.<zone>           A → pinned VIP
//! <hostname>.<cluster>.<svc>.<ns>.svc.<zone>  A → one endpoint's VIP (headless)
//! _tcp.<svc>.<ns>.svc.<zone>                empty non-terminal
//! _<port>._tcp.<svc>.<ns>.svc.<zone>        SRV
//! ```

use hickory_proto::rr::Name;

/// A query name, classified by its position in the zone's name tree.
///
/// Labels borrow from the (lowercase) query name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ZoneName<'a> {
    /// The zone itself.
    Apex,
    /// `svc.<zone>`.
    SvcEnt,
    /// `<ns>.svc.<zone>`.
    NamespaceEnt {
        /// Namespace label.
        ns: &'a str,
    },
    /// `<svc>.<ns>.svc.<zone>`.
    Service {
        /// Namespace label.
        ns: &'a str,
        /// Service label.
        svc: &'a str,
    },
    /// `<cluster>.<svc>.<ns>.svc.<zone>`.
    Pinned {
        /// Cluster label.
        cluster: &'a str,
        /// Namespace label.
        ns: &'a str,
        /// Service label.
        svc: &'a str,
    },
    /// `<hostname>.<cluster>.<svc>.<ns>.svc.<zone>`: one named endpoint of
    /// a headless service (MCS DNS spec).
    Endpoint {
        /// Hostname label.
        hostname: &'a str,
        /// Cluster label.
        cluster: &'a str,
        /// Namespace label.
        ns: &'a str,
        /// Service label.
        svc: &'a str,
    },
    /// `_tcp.<svc>.<ns>.svc.<zone>`.
    TcpEnt {
        /// Namespace label.
        ns: &'a str,
        /// Service label.
        svc: &'a str,
    },
    /// `_<port>._tcp.<svc>.<ns>.svc.<zone>`.
    Srv {
        /// Port name, without the leading underscore.
        port: &'a str,
        /// Namespace label.
        ns: &'a str,
        /// Service label.
        svc: &'a str,
    },
    /// In the zone, but no name of this shape can exist.
    Unknown,
    /// Not in the zone at all.
    OutOfZone,
}

/// Classifies `name` relative to `zone`.
///
/// Both must be lowercase (`Name::to_lowercase`, or a `LowerName`): labels
/// are compared byte for byte and returned as they are. A label that is not
/// UTF-8 cannot name anything the snapshot holds, so such a name is
/// [`ZoneName::Unknown`].
pub(crate) fn parse<'a>(name: &'a Name, zone: &Name) -> ZoneName<'a> {
    if !zone.zone_of(name) {
        return ZoneName::OutOfZone;
    }
    let relative = name.iter().count() - zone.iter().count();
    let labels: Option<Vec<&str>> = name
        .iter()
        .take(relative)
        .map(|label| std::str::from_utf8(label).ok())
        .collect();
    let Some(labels) = labels else {
        return ZoneName::Unknown;
    };
    match labels.as_slice() {
        [] => ZoneName::Apex,
        ["svc"] => ZoneName::SvcEnt,
        [ns, "svc"] => ZoneName::NamespaceEnt { ns },
        [svc, ns, "svc"] => ZoneName::Service { ns, svc },
        // `_tcp` before `<cluster>`: cluster names are DNS labels and never
        // start with an underscore.
        ["_tcp", svc, ns, "svc"] => ZoneName::TcpEnt { ns, svc },
        [cluster, svc, ns, "svc"] => ZoneName::Pinned { cluster, ns, svc },
        // RFC 2782: the service label is the port name prefixed with `_`.
        [port, "_tcp", svc, ns, "svc"] => match port.strip_prefix('_') {
            Some(port) if !port.is_empty() => ZoneName::Srv { port, ns, svc },
            _ => ZoneName::Unknown,
        },
        // After the SRV shape; hostnames and cluster names are DNS labels
        // and never start with an underscore (`_dns._udp` is no endpoint).
        [hostname, cluster, svc, ns, "svc"]
            if !hostname.starts_with('_') && !cluster.starts_with('_') =>
        {
            ZoneName::Endpoint {
                hostname,
                cluster,
                ns,
                svc,
            }
        }
        _ => ZoneName::Unknown,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(s: &str) -> Name {
        Name::from_ascii(s).expect("valid test name").to_lowercase()
    }

    fn zone() -> Name {
        name("clusterset.local.")
    }

    #[track_caller]
    fn assert_parses(s: &str, expected: ZoneName<'_>) {
        let name = name(s);
        assert_eq!(parse(&name, &zone()), expected, "parsing {s}");
    }

    #[test]
    fn the_zone_itself_is_the_apex() {
        assert_parses("clusterset.local.", ZoneName::Apex);
    }

    #[test]
    fn svc_under_the_zone_is_an_empty_non_terminal() {
        assert_parses("svc.clusterset.local.", ZoneName::SvcEnt);
    }

    #[test]
    fn a_namespace_is_an_empty_non_terminal() {
        assert_parses(
            "prod.svc.clusterset.local.",
            ZoneName::NamespaceEnt { ns: "prod" },
        );
    }

    #[test]
    fn three_labels_under_the_zone_name_a_service() {
        assert_parses(
            "web.prod.svc.clusterset.local.",
            ZoneName::Service {
                ns: "prod",
                svc: "web",
            },
        );
    }

    #[test]
    fn a_cluster_label_before_a_service_names_a_pinned_vip() {
        assert_parses(
            "east.web.prod.svc.clusterset.local.",
            ZoneName::Pinned {
                cluster: "east",
                ns: "prod",
                svc: "web",
            },
        );
    }

    #[test]
    fn tcp_under_a_service_is_an_empty_non_terminal_not_a_cluster() {
        assert_parses(
            "_tcp.web.prod.svc.clusterset.local.",
            ZoneName::TcpEnt {
                ns: "prod",
                svc: "web",
            },
        );
    }

    #[test]
    fn an_underscored_port_under_tcp_names_an_srv_record() {
        assert_parses(
            "_http._tcp.web.prod.svc.clusterset.local.",
            ZoneName::Srv {
                port: "http",
                ns: "prod",
                svc: "web",
            },
        );
    }

    #[test]
    fn a_port_label_without_underscore_is_unknown() {
        assert_parses(
            "http._tcp.web.prod.svc.clusterset.local.",
            ZoneName::Unknown,
        );
        assert_parses("_._tcp.web.prod.svc.clusterset.local.", ZoneName::Unknown);
    }

    #[test]
    fn udp_srv_names_are_unknown() {
        assert_parses(
            "_dns._udp.web.prod.svc.clusterset.local.",
            ZoneName::Unknown,
        );
    }

    #[test]
    fn names_not_under_svc_are_unknown() {
        assert_parses("www.clusterset.local.", ZoneName::Unknown);
        assert_parses("web.prod.pod.clusterset.local.", ZoneName::Unknown);
        assert_parses("ns.clusterset.local.", ZoneName::Unknown);
    }

    #[test]
    fn names_deeper_than_srv_are_unknown() {
        assert_parses(
            "a._http._tcp.web.prod.svc.clusterset.local.",
            ZoneName::Unknown,
        );
        assert_parses(
            "a.db-0.east.web.prod.svc.clusterset.local.",
            ZoneName::Unknown,
        );
    }

    #[test]
    fn a_hostname_before_a_cluster_names_one_endpoint() {
        assert_parses(
            "db-0.east.db.prod.svc.clusterset.local.",
            ZoneName::Endpoint {
                hostname: "db-0",
                cluster: "east",
                ns: "prod",
                svc: "db",
            },
        );
    }

    #[test]
    fn names_outside_the_zone_are_out_of_zone() {
        assert_parses("example.com.", ZoneName::OutOfZone);
        assert_parses("local.", ZoneName::OutOfZone);
        assert_parses("clusterset.local.evil.", ZoneName::OutOfZone);
    }

    #[test]
    fn a_non_utf8_label_is_unknown() {
        let odd = Name::from_labels(vec![&b"\xff"[..], b"svc"])
            .expect("raw labels")
            .append_domain(&zone())
            .expect("short name");
        assert_eq!(parse(&odd, &zone()), ZoneName::Unknown);
    }

    #[test]
    fn parsing_needs_a_lowercase_name() {
        // Callers lowercase first; this pins down that parse itself does not.
        let upper = Name::from_ascii("WEB.PROD.SVC.clusterset.local.").expect("valid");
        assert_eq!(parse(&upper, &zone()), ZoneName::Unknown);
        let lower = upper.to_lowercase();
        assert_eq!(
            parse(&lower, &zone()),
            ZoneName::Service {
                ns: "prod",
                svc: "web"
            }
        );
    }
}
