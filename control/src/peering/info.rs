//! What a cluster says about itself (`ClusterInfo` on the wire), checked
//! field by field when it arrives from a peer.

use fedmesh_proto::identity::{self, validate_trust_domain};
use fedmesh_proto::v1;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;

use crate::model::{Locality, is_dns_label};

/// A `ClusterInfo` field that failed validation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("field {field} {problem}")]
pub struct InfoError {
    /// The field path, e.g. `joiner.trust_domain`.
    pub field: String,
    /// What is wrong with it.
    pub problem: String,
}

/// A peer's validated `ClusterInfo`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerInfo {
    /// Cluster name (a DNS label).
    pub name: String,
    /// Trust domain.
    pub trust_domain: String,
    /// Locality.
    pub locality: Locality,
    /// Gateway ingress address (host:port).
    pub gateway_address: String,
    /// DNS zone.
    pub dns_zone: String,
    /// CA roots, PEM, each checked to be a CA certificate.
    pub roots_pem: Vec<String>,
    /// Peering address (host:port).
    pub peering_endpoint: String,
}

impl PeerInfo {
    /// Validates a `ClusterInfo` received under `prefix` (for messages).
    ///
    /// # Errors
    /// The first bad field, named.
    pub fn from_proto(info: &v1::ClusterInfo, prefix: &str) -> Result<Self, InfoError> {
        let bad = |field: &str, problem: String| InfoError {
            field: format!("{prefix}.{field}"),
            problem,
        };
        if !is_dns_label(&info.name) {
            return Err(bad("name", format!("{:?} is not a DNS label", info.name)));
        }
        validate_trust_domain(&info.trust_domain)
            .map_err(|e| bad("trust_domain", e.to_string()))?;
        let locality = Locality::from_proto(info.locality.as_ref(), "locality")
            .map_err(|e| bad("locality", format!("is refused: {e}")))?;
        check_host_port(&info.gateway_address)
            .map_err(|p| bad("gateway_address", p.to_string()))?;
        check_host_port(&info.peering_endpoint)
            .map_err(|p| bad("peering_endpoint", p.to_string()))?;
        if info.dns_zone.is_empty() {
            return Err(bad("dns_zone", "is empty".into()));
        }
        if info.ca_roots_pem.is_empty() {
            return Err(bad("ca_roots_pem", "is empty".into()));
        }
        parse_roots(&info.ca_roots_pem).map_err(|e| bad("ca_roots_pem", e.to_string()))?;
        Ok(Self {
            name: info.name.clone(),
            trust_domain: info.trust_domain.clone(),
            locality,
            gateway_address: info.gateway_address.clone(),
            dns_zone: info.dns_zone.to_ascii_lowercase(),
            roots_pem: info.ca_roots_pem.clone(),
            peering_endpoint: info.peering_endpoint.clone(),
        })
    }
}

/// A CA root a peer sent that cannot be trusted.
#[derive(Debug, thiserror::Error)]
pub enum RootError {
    /// Not PEM.
    #[error("root {index} is not a PEM certificate: {source}")]
    NotPem {
        /// Its position in the list.
        index: usize,
        /// The PEM decoder's error.
        #[source]
        source: rustls_pki_types::pem::Error,
    },
    /// PEM, but not a certificate that parses.
    #[error("root {index}: {source}")]
    Unreadable {
        /// Its position in the list.
        index: usize,
        /// Why it does not parse.
        #[source]
        source: identity::IdentityError,
    },
    /// A leaf, not a CA.
    #[error("root {index} ({subject}) is not a CA certificate")]
    NotCa {
        /// Its position in the list.
        index: usize,
        /// Its subject.
        subject: String,
    },
}

/// Parses PEM roots, each of which must be a CA certificate.
///
/// # Errors
/// Which root is bad and why.
pub fn parse_roots(roots_pem: &[String]) -> Result<Vec<CertificateDer<'static>>, RootError> {
    roots_pem
        .iter()
        .enumerate()
        .map(|(index, pem)| {
            let der = CertificateDer::from_pem_slice(pem.as_bytes())
                .map_err(|source| RootError::NotPem { index, source })?;
            let info = identity::inspect_cert(&der)
                .map_err(|source| RootError::Unreadable { index, source })?;
            if !info.is_ca {
                return Err(RootError::NotCa {
                    index,
                    subject: info.subject,
                });
            }
            Ok(der.into_owned())
        })
        .collect()
}

/// A `host:port` string that is not one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HostPortError {
    /// No colon.
    #[error("{0:?} is not host:port")]
    NoPort(String),
    /// Nothing (or blanks) before the colon.
    #[error("{0:?} has no host")]
    NoHost(String),
    /// Port 0 or not a number.
    #[error("{0:?} has no valid port")]
    BadPort(String),
}

/// Checks a `host:port` string (IPv6 as `[addr]:port`).
///
/// # Errors
/// What is wrong.
pub fn check_host_port(s: &str) -> Result<(), HostPortError> {
    let (host, port) = s
        .rsplit_once(':')
        .ok_or_else(|| HostPortError::NoPort(s.to_string()))?;
    if host.is_empty() || host.contains(char::is_whitespace) {
        return Err(HostPortError::NoHost(s.to_string()));
    }
    match port.parse::<u16>() {
        Ok(p) if p > 0 => Ok(()),
        _ => Err(HostPortError::BadPort(s.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn good() -> v1::ClusterInfo {
        let ca = crate::ca::ClusterCa::generate("west", "west.fedmesh").unwrap();
        v1::ClusterInfo {
            name: "west".into(),
            trust_domain: "west.fedmesh".into(),
            locality: Some(v1::Locality {
                region: "us-west".into(),
                zone: "us-west-2a".into(),
            }),
            gateway_address: "127.0.2.1:15443".into(),
            dns_zone: "clusterset.local".into(),
            ca_roots_pem: vec![ca.cert_pem().to_string()],
            peering_endpoint: "127.0.2.1:15017".into(),
        }
    }

    #[test]
    fn a_complete_info_is_accepted() {
        let info = PeerInfo::from_proto(&good(), "joiner").unwrap();
        assert_eq!(info.name, "west");
        assert_eq!(info.locality.zone, "us-west-2a");
    }

    type Mutation = Box<dyn Fn(&mut v1::ClusterInfo)>;

    #[test]
    fn each_bad_field_is_named() {
        let cases: Vec<(&str, Mutation)> = vec![
            ("joiner.name", Box::new(|i| i.name = "West!".into())),
            (
                "joiner.trust_domain",
                Box::new(|i| i.trust_domain = "".into()),
            ),
            ("joiner.locality", Box::new(|i| i.locality = None)),
            (
                "joiner.gateway_address",
                Box::new(|i| i.gateway_address = "nope".into()),
            ),
            (
                "joiner.peering_endpoint",
                Box::new(|i| i.peering_endpoint = "h:0".into()),
            ),
            ("joiner.dns_zone", Box::new(|i| i.dns_zone = "".into())),
            (
                "joiner.ca_roots_pem",
                Box::new(|i| i.ca_roots_pem = vec!["junk".into()]),
            ),
            ("joiner.ca_roots_pem", Box::new(|i| i.ca_roots_pem.clear())),
        ];
        for (field, mutate) in cases {
            let mut info = good();
            mutate(&mut info);
            let err = PeerInfo::from_proto(&info, "joiner").unwrap_err();
            assert_eq!(err.field, field, "{err}");
        }
    }
}
