//! Headless services (`clusterIP: None`) in the vocabulary: the endpoints
//! that have a hostname (StatefulSet pods), each of which gets its own
//! name `<hostname>.<cluster>.<svc>.<ns>.svc.<zone>` (the MCS DNS spec,
//! KEP-1645) and a VIP pinned to it.
//!
//! Data flows one way: the registry builds [`NamedEndpoints`] from a
//! Service's EndpointSlices ([`NamedEndpoints::from_endpoints`]), the
//! export carries it to peers ([`NamedEndpoints::to_proto`]), and a peer's
//! copy is checked where it is decoded ([`NamedEndpoints::from_proto`]):
//! every hostname a DNS label, at most [`MAX_NAMED_ENDPOINTS`] of them.

use fedmesh_proto::v1;

use super::EndpointSpec;
use super::wire::{WireError, check_count, check_label};

/// The most named endpoints one export carries. A StatefulSet larger than
/// this is exported with its first names only (by name), and the registry
/// reports it; a peer sending more is refused.
pub const MAX_NAMED_ENDPOINTS: usize = 256;

/// One endpoint with a hostname.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NamedEndpoint {
    /// Its hostname: a DNS label, unique within the service in one cluster.
    pub hostname: String,
    /// Whether it is ready (`conditions.ready` not false).
    pub ready: bool,
}

/// The named endpoints of a headless service, sorted by hostname, each
/// hostname once, at most [`MAX_NAMED_ENDPOINTS`]. Empty when the service
/// is headless but no endpoint has a hostname (a Deployment behind a
/// headless Service): only the service name is answered then.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct NamedEndpoints(Vec<NamedEndpoint>);

/// What [`NamedEndpoints::from_endpoints`] left out, for the registry's
/// problem report.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LeftOut {
    /// Hostnames that are not DNS labels.
    pub bad: Vec<String>,
    /// How many valid names were beyond [`MAX_NAMED_ENDPOINTS`].
    pub beyond_limit: usize,
}

impl NamedEndpoints {
    /// The named endpoints among `endpoints`. An endpoint listed twice
    /// under one hostname (two slices, or two addresses of one pod) is
    /// ready if either entry is.
    pub fn from_endpoints(endpoints: &[EndpointSpec]) -> (Self, LeftOut) {
        let mut left = LeftOut::default();
        let mut by_name = std::collections::BTreeMap::<&str, bool>::new();
        for e in endpoints {
            let Some(hostname) = e.hostname.as_deref() else {
                continue;
            };
            if !super::is_dns_label(hostname) {
                left.bad.push(hostname.to_string());
                continue;
            }
            *by_name.entry(hostname).or_default() |= e.ready;
        }
        left.beyond_limit = by_name.len().saturating_sub(MAX_NAMED_ENDPOINTS);
        let named = by_name
            .into_iter()
            .take(MAX_NAMED_ENDPOINTS)
            .map(|(hostname, ready)| NamedEndpoint {
                hostname: hostname.to_string(),
                ready,
            })
            .collect();
        (Self(named), left)
    }

    /// The endpoints, sorted by hostname.
    pub fn iter(&self) -> impl Iterator<Item = &NamedEndpoint> {
        self.0.iter()
    }

    /// How many there are.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The wire form (`ServiceExport.named_endpoints`).
    pub fn to_proto(&self) -> Vec<v1::NamedEndpoint> {
        self.0
            .iter()
            .map(|e| v1::NamedEndpoint {
                hostname: e.hostname.clone(),
                ready: e.ready,
            })
            .collect()
    }

    /// A peer's named endpoints: `None` when the export is not headless
    /// (named endpoints of a non-headless export are ignored, as an
    /// earlier release would).
    ///
    /// # Errors
    /// More than [`MAX_NAMED_ENDPOINTS`], a hostname that is not a DNS
    /// label, or a hostname listed twice.
    pub fn from_proto(
        headless: bool,
        named: &[v1::NamedEndpoint],
    ) -> Result<Option<Self>, WireError> {
        if !headless {
            return Ok(None);
        }
        check_count("named_endpoints", named.len(), MAX_NAMED_ENDPOINTS)?;
        let mut out: Vec<NamedEndpoint> = Vec::with_capacity(named.len());
        for e in named {
            check_label("named_endpoints.hostname", &e.hostname)?;
            out.push(NamedEndpoint {
                hostname: e.hostname.clone(),
                ready: e.ready,
            });
        }
        out.sort();
        if let Some(pair) = out.windows(2).find(|w| w[0].hostname == w[1].hostname) {
            return Err(WireError::Duplicate {
                field: "named_endpoints.hostname",
                value: super::wire::shown(&pair[0].hostname),
            });
        }
        Ok(Some(Self(out)))
    }

    /// Named endpoints as stored or tested: sorted, the first of a
    /// repeated hostname kept, invalid ones dropped.
    pub fn from_list(list: impl IntoIterator<Item = NamedEndpoint>) -> Self {
        let mut v: Vec<NamedEndpoint> = list
            .into_iter()
            .filter(|e| super::is_dns_label(&e.hostname))
            .collect();
        v.sort();
        v.dedup_by(|b, a| a.hostname == b.hostname);
        v.truncate(MAX_NAMED_ENDPOINTS);
        Self(v)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn ep(ip: &str, hostname: Option<&str>, ready: bool) -> EndpointSpec {
        EndpointSpec {
            address: ip.parse().unwrap(),
            ready,
            ports: BTreeMap::new(),
            hostname: hostname.map(str::to_string),
        }
    }

    fn named(hostname: &str, ready: bool) -> v1::NamedEndpoint {
        v1::NamedEndpoint {
            hostname: hostname.into(),
            ready,
        }
    }

    #[test]
    fn only_endpoints_with_a_valid_hostname_are_named_and_sorted() {
        let (n, left) = NamedEndpoints::from_endpoints(&[
            ep("10.0.0.2", Some("db-1"), false),
            ep("10.0.0.1", Some("db-0"), true),
            ep("10.0.0.3", None, true),
            ep("10.0.0.4", Some("Bad_Name"), true),
            ep("fd00::1", Some("db-1"), true),
        ]);
        let got: Vec<_> = n.iter().map(|e| (e.hostname.as_str(), e.ready)).collect();
        assert_eq!(got, [("db-0", true), ("db-1", true)], "db-1 ready via IPv6");
        assert_eq!(left.bad, ["Bad_Name"]);
        assert_eq!(left.beyond_limit, 0);
    }

    #[test]
    fn a_statefulset_larger_than_the_limit_is_cut_and_says_so() {
        let eps: Vec<_> = (0..300)
            .map(|i| ep("10.0.0.1", Some(&format!("db-{i:03}")), true))
            .collect();
        let (n, left) = NamedEndpoints::from_endpoints(&eps);
        assert_eq!(n.len(), MAX_NAMED_ENDPOINTS);
        assert_eq!(left.beyond_limit, 300 - MAX_NAMED_ENDPOINTS);
    }

    #[test]
    fn named_endpoints_survive_the_wire() {
        let (n, _) = NamedEndpoints::from_endpoints(&[
            ep("10.0.0.1", Some("db-0"), true),
            ep("10.0.0.2", Some("db-1"), false),
        ]);
        assert_eq!(NamedEndpoints::from_proto(true, &n.to_proto()), Ok(Some(n)));
        assert_eq!(
            NamedEndpoints::from_proto(false, &[named("db-0", true)]),
            Ok(None)
        );
    }

    #[test]
    fn a_peer_sending_a_bad_hostname_too_many_or_a_repeat_is_refused_by_field() {
        let err = NamedEndpoints::from_proto(true, &[named("db_0", true)]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "field named_endpoints.hostname \"db_0\" is not a DNS label"
        );
        let many: Vec<_> = (0..257).map(|i| named(&format!("p{i}"), true)).collect();
        let err = NamedEndpoints::from_proto(true, &many).unwrap_err();
        assert_eq!(
            err.to_string(),
            "field named_endpoints has 257 entries; at most 256 are accepted"
        );
        let twice = [named("db-0", true), named("db-0", false)];
        let err = NamedEndpoints::from_proto(true, &twice).unwrap_err();
        assert!(err.to_string().contains("\"db-0\" appears twice"), "{err}");
    }
}
