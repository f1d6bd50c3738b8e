//! The YAML cluster config read by `fedctl run` and `fedgw`: schema, defaults
//! and validation.
//!
//! [`Config::load`] reads a file and [`Config::from_yaml`] reads text; both
//! return a fully checked [`Config`] in which every default is filled in,
//! every relative path is resolved against the config file's folder and no
//! two listeners collide, or one [`ConfigError`] that names the file, line,
//! field path, the bad value and what to do about it:
//!
//! ```text
//! east.yaml:7: control.peeringListen: invalid address "127.0.0.1:99999": expected IP:PORT such as 127.0.0.1:15017
//! ```
//!
//! How it reads: `config/yaml.rs` parses the text with serde-saphyr into a
//! tree whose keys and values carry their line (`serde_saphyr::Spanned`);
//! `config/build.rs` walks that tree section by section, rejecting unknown
//! keys and converting each value with its path and line at hand;
//! `config/listeners.rs` then checks the listen addresses against each other.
//! Start reading at [`Config::from_yaml`].
//!
//! The value types [`HostPort`], [`AdminListen`], [`Ipv4Net`] and the
//! duration functions [`parse_duration`] / [`format_duration`] are also used
//! on their own by the CLI (`--admin`, `--ttl 1h`).

mod build;
mod duration;
mod imports;
mod listeners;
mod log;
mod names;
mod net;
mod observe;
mod yaml;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_web;

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use duration::{format_duration, parse_duration};
pub use imports::{ImportEntry, ImportsPolicy, Refused};
pub use log::{LogConfig, LogFormat};
pub use net::{AdminListen, HostPort, Ipv4Net};
pub use observe::{AccessLog, SampleRatio, TracingConfig};

/// A cluster's whole config, validated, with defaults filled in and relative
/// paths resolved against the config file's folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// This cluster's name: a DNS label, unique in the federation.
    pub cluster: String,
    /// The SPIFFE trust domain of this cluster's identities (default
    /// `<cluster>.fedmesh`).
    pub trust_domain: String,
    /// Where this cluster runs, for locality-ordered failover.
    pub locality: Locality,
    /// The folder of the state store, the generated CA and the bootstrap token.
    pub data_dir: PathBuf,
    /// An existing CA to use instead of generating one in `data_dir`.
    pub ca: CaFiles,
    /// Control plane listeners and peering timings.
    pub control: ControlConfig,
    /// The DNS server for the federation zone.
    pub dns: DnsConfig,
    /// The east-west gateway.
    pub gateway: GatewayConfig,
    /// Where local services are read from.
    pub registry: RegistryConfig,
    /// Which peers may serve which namespaces here (`imports`; absent:
    /// every peer, every namespace).
    pub imports: ImportsPolicy,
    /// How `fedctl run` and `fedgw` write logs.
    pub log: LogConfig,
    /// The file this config came from (the `origin` given to
    /// [`Config::from_yaml`], such as `<inline>`).
    pub source: PathBuf,
}

/// Where a cluster runs: region and zone, as in Kubernetes topology labels.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Locality {
    /// The region, such as `us-east`.
    pub region: String,
    /// The zone within the region, such as `us-east-1a`.
    pub zone: String,
}

/// A CA brought by the operator: both files, or neither (then `fedctl run`
/// generates a CA in `dataDir`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CaFiles {
    /// The CA certificate (PEM).
    pub cert_file: Option<PathBuf>,
    /// The CA private key (PEM).
    pub key_file: Option<PathBuf>,
}

/// Control plane listeners and peering timings (section `control`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ControlConfig {
    /// Where peers dial in (default `127.0.0.1:15017`).
    pub peering_listen: SocketAddr,
    /// The address put in join tokens (default `peering_listen`; required
    /// when that is a wildcard). Port 0 here comes only from a
    /// `peering_listen` on port 0: use the port actually bound.
    pub peering_advertise: HostPort,
    /// Where the admin API listens for `fedctl` (default `127.0.0.1:15000`);
    /// always loopback or a unix socket.
    pub admin_listen: AdminListen,
    /// Where gateways dial in for config and certificates (default
    /// `127.0.0.1:15012`).
    pub gateway_listen: SocketAddr,
    /// The web port (`/metrics`, `/ready`, `/live`, `/api/topology`,
    /// `/ui/`); not served when unset (the default).
    pub web_listen: Option<SocketAddr>,
    /// How often each side of a peering sends a heartbeat (default 1 s).
    pub heartbeat_interval: Duration,
    /// Silence after which a peer is marked stale (default 3 s); more than
    /// `heartbeat_interval`.
    pub peer_dead_after: Duration,
    /// How long a stale peer's imports are kept before they are withdrawn
    /// (default 30 s).
    pub stale_grace: Duration,
}

impl Default for ControlConfig {
    fn default() -> Self {
        let peering_listen = loopback(15017);
        ControlConfig {
            peering_listen,
            peering_advertise: HostPort::from_socket_addr(peering_listen),
            admin_listen: AdminListen::Tcp(loopback(15000)),
            gateway_listen: loopback(15012),
            web_listen: None,
            heartbeat_interval: Duration::from_secs(1),
            peer_dead_after: Duration::from_secs(3),
            stale_grace: Duration::from_secs(30),
        }
    }
}

/// The DNS server for the federation zone (section `dns`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsConfig {
    /// Where it listens, on UDP and TCP (default `127.0.0.1:15053`).
    pub listen: SocketAddr,
    /// The federation zone, lowercase without the trailing dot (default
    /// `clusterset.local`).
    pub zone: String,
    /// TTL of answers and SOA minimum; whole seconds, at least 1 (default 5 s).
    pub ttl: Duration,
    /// Where names outside the zone are forwarded; empty means REFUSED.
    pub upstreams: Vec<SocketAddr>,
}

impl Default for DnsConfig {
    fn default() -> Self {
        DnsConfig {
            listen: loopback(15053),
            zone: "clusterset.local".to_owned(),
            ttl: Duration::from_secs(5),
            upstreams: Vec::new(),
        }
    }
}

/// The east-west gateway (section `gateway`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewayConfig {
    /// Whether `fedctl run` hosts the gateway in-process (default false).
    pub embedded: bool,
    /// The gateway's name, a DNS label, used in its SPIFFE ID (default `gw-1`).
    pub name: String,
    /// The mTLS ingress port other clusters dial (default `127.0.0.1:15443`).
    pub ingress_listen: SocketAddr,
    /// What peers dial to reach the ingress (default `ingress_listen`;
    /// required when that is a wildcard).
    pub advertise: HostPort,
    /// Where a separate gateway (`fedgw`) dials the control plane's gateway
    /// API, such as `fedmesh-control.fedmesh-system.svc:15012` in
    /// Kubernetes (default `control.gatewayListen`, a wildcard meaning this
    /// host).
    pub control: Option<HostPort>,
    /// `/metrics`, `/ready`, `/live` (default `127.0.0.1:15090`).
    pub admin_listen: SocketAddr,
    /// Where standalone-mode VIPs come from (default `127.77.0.0/16`); prefix
    /// 8 to 30.
    pub vip_range: Ipv4Net,
    /// The secret a gateway presents to have its CSR signed (default
    /// `<dataDir>/gateway-bootstrap.token`).
    pub bootstrap_token_file: PathBuf,
    /// Timeout of one upstream connect (default 1 s).
    pub connect_timeout: Duration,
    /// A proxied connection idle this long is closed (default 1 h).
    pub idle_timeout: Duration,
    /// Interval of active probes of peer gateways (default 200 ms).
    pub probe_interval: Duration,
    /// Failed probes in a row before a peer gateway is unhealthy (default 3).
    pub probe_failures: u32,
    /// Connection limit per target (default 10000).
    pub max_connections_per_target: u32,
    /// The most endpoints a peer cluster is believed to have when
    /// balancing (default 1000): a peer's claimed counts are capped here,
    /// so claiming endpoints it does not have wins it no more traffic.
    pub max_claimed_endpoints: u32,
    /// Passive outlier detection.
    pub outlier: OutlierConfig,
    /// New-connection rate limit, applied per service at egress.
    pub rate_limit: RateLimitConfig,
    /// Span export over OTLP (section `gateway.tracing`).
    pub tracing: TracingConfig,
    /// Where JSON access log lines go (`gateway.accessLog`); `None`: none
    /// are written.
    pub access_log: Option<AccessLog>,
}

/// Passive outlier detection: consecutive connect failures eject a target for
/// a growing interval (section `gateway.outlier`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutlierConfig {
    /// Connect failures in a row that eject a target (default 3).
    pub consecutive_failures: u32,
    /// The first ejection's length (default 5 s); at most `max_ejection`.
    pub base_ejection: Duration,
    /// The longest ejection (default 60 s).
    pub max_ejection: Duration,
    /// At most this percentage of a service's targets is ejected at once
    /// (default 50; 0 to 100).
    pub max_ejected_percent: u8,
}

impl Default for OutlierConfig {
    fn default() -> Self {
        OutlierConfig {
            consecutive_failures: 3,
            base_ejection: Duration::from_secs(5),
            max_ejection: Duration::from_secs(60),
            max_ejected_percent: 50,
        }
    }
}

/// A token bucket for new connections, one per imported service, applied by
/// egress (section `gateway.rateLimit`). Connections over the limit are
/// reset and counted.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RateLimitConfig {
    /// Sustained new connections per second per service; 0 = no limit
    /// (the default).
    pub connections_per_second: u32,
    /// How many may arrive at once (default: one second's worth).
    pub burst: u32,
}

/// Which registry reads local services.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RegistryKind {
    /// YAML files in a folder (`registry.path`).
    Static,
    /// The Kubernetes API (`registry.namespaces`).
    Kubernetes,
}

impl std::fmt::Display for RegistryKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            RegistryKind::Static => "static",
            RegistryKind::Kubernetes => "kubernetes",
        })
    }
}

/// Where local services are read from (section `registry`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistryConfig {
    /// `static` (default) or `kubernetes`.
    pub kind: RegistryKind,
    /// The folder the static registry watches (default
    /// `<config file folder>/services`); unused by `kubernetes`.
    pub path: PathBuf,
    /// The namespaces the Kubernetes registry watches; empty means all.
    pub namespaces: Vec<String>,
    /// Kubernetes only: where the Services standing for imports are made
    /// (default: the control plane's own namespace, from its client).
    pub import_namespace: Option<String>,
    /// Kubernetes only: the labels of the gateway pods those Services
    /// select (default `app.kubernetes.io/name: fedgw`).
    pub gateway_selector: std::collections::BTreeMap<String, String>,
    /// Kubernetes only: the gateway ports those Services target, one per
    /// import port (default 20000–29999).
    pub import_ports: std::ops::RangeInclusive<u16>,
}

/// The default `registry.gatewaySelector`.
pub fn default_gateway_selector() -> std::collections::BTreeMap<String, String> {
    [("app.kubernetes.io/name".to_string(), "fedgw".to_string())].into()
}

/// The default `registry.importPorts`.
pub const DEFAULT_IMPORT_PORTS: std::ops::RangeInclusive<u16> = 20000..=29999;

/// Why a config could not be read or is invalid. Displays as
/// `FILE:LINE: FIELD: message`, leaving out the line or field when unknown.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}{}: {}{message}", line_suffix(.line), field_prefix(.field))]
pub struct ConfigError {
    /// The config file as given (or the `origin` passed to
    /// [`Config::from_yaml`]).
    pub file: String,
    /// The 1-based line the problem is on, when it is in the file.
    pub line: Option<usize>,
    /// The field path, such as `gateway.outlier.maxEjection` or
    /// `dns.upstreams[0]`; empty for YAML syntax and I/O errors.
    pub field: String,
    /// What is wrong, with the bad value and what to do.
    pub message: String,
}

fn line_suffix(line: &Option<usize>) -> String {
    line.map_or(String::new(), |line| format!(":{line}"))
}

fn field_prefix(field: &str) -> String {
    if field.is_empty() {
        String::new()
    } else {
        format!("{field}: ")
    }
}

impl ConfigError {
    /// The error for a config file that could not be read.
    pub fn io(path: &Path, error: &std::io::Error) -> Self {
        ConfigError {
            file: path.display().to_string(),
            line: None,
            field: String::new(),
            message: format!("cannot read config file: {error}; check the path given to --config"),
        }
    }
}

impl Config {
    /// Reads and validates the config file at `path`. Relative paths in it
    /// resolve against the folder of `path`.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] when the file cannot be read (see
    /// [`ConfigError::io`]) or [`Config::from_yaml`] rejects it.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|error| ConfigError::io(path, &error))?;
        Config::from_yaml(&text, path)
    }

    /// Parses and validates config text. `origin` names the text in errors
    /// and in [`Config::source`], and relative paths resolve against its
    /// parent folder (left relative to the working directory when it has
    /// none, as for `Path::new("<inline>")`). No path is made absolute and
    /// nothing on disk is touched.
    ///
    /// # Errors
    ///
    /// The first problem found, as a [`ConfigError`]: YAML syntax, an empty
    /// document, an unknown or duplicate key, a missing required field, a
    /// value of the wrong type or form, a rule between fields (such as
    /// `peerDeadAfter` > `heartbeatInterval`), or two listeners on the same
    /// address, port and protocol.
    pub fn from_yaml(text: &str, origin: &Path) -> Result<Config, ConfigError> {
        let into_error = |issue: yaml::Issue| ConfigError {
            file: origin.display().to_string(),
            line: issue.line,
            field: issue.field,
            message: issue.message,
        };
        let doc = yaml::parse_document(text).map_err(into_error)?;
        build::config(&doc, text, origin).map_err(into_error)
    }
}

impl Config {
    /// Every field path the config accepts, sections included, in schema
    /// order: `cluster`, `locality`, `locality.region`, …,
    /// `gateway.outlier.maxEjection`. What the reference in docs/config.md
    /// is checked against.
    pub fn field_paths() -> Vec<String> {
        let mut paths = Vec::new();
        for (section, fields) in build::SECTIONS {
            for field in *fields {
                if section.is_empty() {
                    paths.push((*field).to_owned());
                } else {
                    paths.push(format!("{section}.{field}"));
                }
            }
        }
        paths
    }
}

fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from((Ipv4Addr::LOCALHOST, port))
}
