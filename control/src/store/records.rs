//! The records the state store keeps, apart from the database code: each
//! is a JSON document whose field names are the on-disk format (new fields
//! come with `#[serde(default)]`), plus the one conversion between an
//! import's stored form and the vocabulary, and the one codec of the
//! `imports` table's keys.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::model::{
    Affinity, AppProtocol, ImportedService, Locality, NamedEndpoint, NamedEndpoints, PortSpec,
    ServiceKey,
};

/// Which side dials a peering (DESIGN.md, Joining: the joiner dials).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// This cluster joined the peer and dials it for the peering's life.
    Dialer,
    /// The peer joined this cluster and dials it.
    Acceptor,
}

impl Role {
    /// `"dialer"` or `"acceptor"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Dialer => "dialer",
            Role::Acceptor => "acceptor",
        }
    }
}

/// One peering, as persisted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerRecord {
    /// The peer's cluster name.
    pub name: String,
    /// The peer's trust domain.
    pub trust_domain: String,
    /// The peer's locality.
    pub locality: Locality,
    /// PEM roots of the peer's CA (several during a rotation).
    pub roots_pem: Vec<String>,
    /// Which side dials.
    pub role: Role,
    /// The peer's peering address (host:port): dialed by a dialer; for an
    /// acceptor, what the peer advertised.
    pub endpoint: String,
    /// The peer's gateway ingress address.
    pub gateway_address: String,
    /// Unix ms of the join.
    pub joined_unix_ms: i64,
}

/// A join token, stored by the SHA-256 of its secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenRecord {
    /// Unix ms of creation.
    pub created_unix_ms: i64,
    /// Unix ms after which it is refused.
    pub expires_unix_ms: i64,
    /// Unix ms it was used at, once used.
    pub used_unix_ms: Option<i64>,
    /// The cluster that used it.
    pub used_by: Option<String>,
}

/// Why a join was refused by the token check.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenRefusal {
    /// No such token.
    #[error("the join token is not known here (issued by another cluster, or never issued)")]
    Unknown,
    /// Used before.
    #[error(
        "the join token was already used (by {by} at {at}); tokens are single-use: create a new one with `fedctl token create`"
    )]
    Used {
        /// Who used it.
        by: String,
        /// When (RFC 3339).
        at: String,
    },
    /// Past its expiry.
    #[error("the join token expired at {at}; create a new one with `fedctl token create`")]
    Expired {
        /// When (RFC 3339).
        at: String,
    },
}

/// Where export sync with one peer stands: the peer's export log epoch
/// and the last version of it stored (and so acked) here.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct SyncPos {
    /// The peer's export log epoch.
    pub epoch: u64,
    /// The last version applied.
    pub version: u64,
}

/// One service a peer exports, as stored here.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImportRecord {
    /// TCP ports: (name, port).
    pub ports: Vec<(String, u16)>,
    /// When the peer first exported it.
    pub exported_at_unix_ms: i64,
    /// `local`, `remote` or `none`.
    pub affinity: String,
    /// Cluster → weight.
    #[serde(default)]
    pub weights: BTreeMap<String, u32>,
    /// Healthy endpoints in the peer.
    pub healthy_endpoints: u32,
    /// Every endpoint in the peer, ready or not; 0 (records written before
    /// this field existed) means unknown and is read as `healthy_endpoints`.
    #[serde(default)]
    pub total_endpoints: u32,
    /// The peer's service is headless (records written before this field
    /// existed read false).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub headless: bool,
    /// Its named endpoints: (hostname, ready), when headless.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub named_endpoints: Vec<(String, bool)>,
    /// The peer is drained; false in records written before drains.
    #[serde(default)]
    pub draining: bool,
    /// Service port → its protocol's wire value, for the ports that are not
    /// TCP (records written before this field existed: all TCP).
    #[serde(default)]
    pub app_protocols: BTreeMap<u16, String>,
}

/// Everything stored from one peer's exports.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PeerImports {
    /// Sync position.
    pub pos: SyncPos,
    /// Service → record.
    pub services: BTreeMap<ServiceKey, ImportRecord>,
}

impl From<&ImportedService> for ImportRecord {
    fn from(i: &ImportedService) -> Self {
        ImportRecord {
            ports: i.ports.iter().map(|p| (p.name.clone(), p.port)).collect(),
            exported_at_unix_ms: i.exported_at_ms,
            affinity: i.affinity.as_str().to_string(),
            weights: i.weights.clone(),
            healthy_endpoints: i.healthy,
            total_endpoints: i.total,
            headless: i.headless.is_some(),
            named_endpoints: i
                .headless
                .iter()
                .flat_map(NamedEndpoints::iter)
                .map(|e| (e.hostname.clone(), e.ready))
                .collect(),
            draining: i.draining,
            app_protocols: i
                .ports
                .iter()
                .filter(|p| p.app_protocol.is_http())
                .map(|p| (p.port, p.app_protocol.as_wire().to_string()))
                .collect(),
        }
    }
}

impl ImportRecord {
    /// The import this record stores; `None` when a later release wrote an
    /// affinity this one does not know (the peer resends it on resync).
    pub fn to_import(&self) -> Option<ImportedService> {
        let affinity = self.affinity.parse::<Affinity>().ok()?;
        Some(ImportedService {
            ports: self
                .ports
                .iter()
                .map(|(name, port)| PortSpec {
                    name: name.clone(),
                    port: *port,
                    app_protocol: self
                        .app_protocols
                        .get(port)
                        .and_then(|w| AppProtocol::from_wire(w).ok())
                        .unwrap_or_default(),
                })
                .collect(),
            exported_at_ms: self.exported_at_unix_ms,
            affinity,
            weights: self.weights.clone(),
            healthy: self.healthy_endpoints,
            // Records written before totals were kept read 0: fully healthy.
            total: self.total_endpoints.max(self.healthy_endpoints),
            headless: self.headless.then(|| {
                NamedEndpoints::from_list(self.named_endpoints.iter().map(|(hostname, ready)| {
                    NamedEndpoint {
                        hostname: hostname.clone(),
                        ready: *ready,
                    }
                }))
            }),
            draining: self.draining,
        })
    }
}

/// The `exports` table key of a service: `ns/name`.
pub(crate) fn export_key(service: &ServiceKey) -> String {
    format!("{}/{}", service.namespace, service.name)
}

/// The service of an `exports` key; `None` for a key this release did not
/// write.
pub(crate) fn parse_export_key(key: &str) -> Option<ServiceKey> {
    let mut parts = key.splitn(2, '/');
    let (namespace, name) = (parts.next()?, parts.next()?);
    if name.contains('/') {
        return None;
    }
    Some(ServiceKey::new(namespace, name))
}

/// The `imports` table key of one peer's service: `peer/ns/name`. Peer,
/// namespace and name are DNS labels, so none holds a `/`.
pub(crate) fn import_key(peer: &str, service: &ServiceKey) -> String {
    format!("{peer}/{}/{}", service.namespace, service.name)
}

/// The prefix of every `imports` key of `peer`.
pub(crate) fn import_prefix(peer: &str) -> String {
    format!("{peer}/")
}

/// The peer and service of an `imports` key; `None` for a key this release
/// did not write.
pub(crate) fn parse_import_key(key: &str) -> Option<(&str, ServiceKey)> {
    let mut parts = key.splitn(3, '/');
    let (peer, namespace, name) = (parts.next()?, parts.next()?, parts.next()?);
    if name.contains('/') {
        return None;
    }
    Some((peer, ServiceKey::new(namespace, name)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_import_key_reads_back_as_peer_and_service() {
        let key = ServiceKey::new("demo", "hello");
        let stored = import_key("west", &key);
        assert_eq!(stored, "west/demo/hello");
        assert_eq!(parse_import_key(&stored), Some(("west", key.clone())));
        assert_eq!(parse_import_key("west/demo"), None);
        assert_eq!(parse_import_key("west/a/b/c"), None);
        assert_eq!(export_key(&key), "demo/hello");
        assert_eq!(parse_export_key("demo/hello"), Some(key));
        assert_eq!(parse_export_key("demo"), None);
    }

    #[test]
    fn a_headless_import_keeps_its_named_endpoints_through_the_store() {
        let named = NamedEndpoints::from_list([
            NamedEndpoint {
                hostname: "db-1".into(),
                ready: false,
            },
            NamedEndpoint {
                hostname: "db-0".into(),
                ready: true,
            },
        ]);
        let import = ImportedService {
            draining: false,
            ports: vec![PortSpec {
                app_protocol: Default::default(),
                name: "pg".into(),
                port: 5432,
            }],
            exported_at_ms: 5,
            affinity: Affinity::Local,
            weights: BTreeMap::new(),
            healthy: 1,
            total: 2,
            headless: Some(named),
        };
        let json = serde_json::to_vec(&ImportRecord::from(&import)).unwrap();
        let back: ImportRecord = serde_json::from_slice(&json).unwrap();
        assert_eq!(back.to_import(), Some(import));
        // A record written before headless services existed reads as not
        // headless.
        let old = br#"{"ports":[["pg",5432]],"exported_at_unix_ms":5,"affinity":"local","healthy_endpoints":1}"#;
        let old: ImportRecord = serde_json::from_slice(old).unwrap();
        assert_eq!(old.to_import().unwrap().headless, None);
    }
}
