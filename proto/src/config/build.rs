//! Turns the YAML tree into a [`Config`]: one function per section, each
//! filling in defaults and checking the rules of its fields.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_saphyr::Spanned;

use super::listeners::{Listener, Protocol, check_conflicts};
use super::log::LOG;
use super::names::{dns_name_problem, label_problem};
use super::net::{DEFAULT_VIP_RANGE, parse_upstream};
use super::observe::{TRACING, access_log, tracing};
use super::yaml::{Field, Issue, Node, Section};
use super::{
    AdminListen, CaFiles, Config, ControlConfig, DnsConfig, GatewayConfig, HostPort, Ipv4Net,
    Locality, OutlierConfig, RateLimitConfig, RegistryConfig, RegistryKind,
};

mod fields;
use fields::*;

const ROOT: &[&str] = &[
    "cluster",
    "trustDomain",
    "locality",
    "dataDir",
    "ca",
    "control",
    "dns",
    "gateway",
    "registry",
    "imports",
    "log",
];
const LOCALITY: &[&str] = &["region", "zone"];
const CA: &[&str] = &["certFile", "keyFile"];
const CONTROL: &[&str] = &[
    "peeringListen",
    "peeringAdvertise",
    "adminListen",
    "gatewayListen",
    "webListen",
    "heartbeatInterval",
    "peerDeadAfter",
    "staleGrace",
];
const DNS: &[&str] = &["listen", "zone", "ttl", "upstreams"];
const GATEWAY: &[&str] = &[
    "embedded",
    "name",
    "ingressListen",
    "advertise",
    "control",
    "adminListen",
    "vipRange",
    "bootstrapTokenFile",
    "connectTimeout",
    "idleTimeout",
    "probeInterval",
    "probeFailures",
    "maxConnectionsPerTarget",
    "maxClaimedEndpoints",
    "outlier",
    "rateLimit",
    "tracing",
    "accessLog",
];
const RATE_LIMIT: &[&str] = &["connectionsPerSecond", "burst"];
const OUTLIER: &[&str] = &[
    "consecutiveFailures",
    "baseEjection",
    "maxEjection",
    "maxEjectedPercent",
];
const REGISTRY: &[&str] = &[
    "kind",
    "path",
    "namespaces",
    "importNamespace",
    "gatewaySelector",
    "importPorts",
];

/// Every section and its known fields, by section path ("" is the top
/// level), for [`super::Config::field_paths`].
pub(super) const SECTIONS: &[(&str, &[&str])] = &[
    ("", ROOT),
    ("locality", LOCALITY),
    ("ca", CA),
    ("control", CONTROL),
    ("dns", DNS),
    ("gateway", GATEWAY),
    ("gateway.outlier", OUTLIER),
    ("gateway.rateLimit", RATE_LIMIT),
    ("gateway.tracing", TRACING),
    ("registry", REGISTRY),
    ("log", LOG),
];

/// The whole config from the parsed document; `origin`'s folder is the base
/// of relative paths.
pub(super) fn config(doc: &Spanned<Node>, src: &str, origin: &Path) -> Result<Config, Issue> {
    let root = Section::root(doc, src, ROOT)?;
    let base = origin.parent().unwrap_or(Path::new(""));
    let cluster = root.require("cluster", "cluster: east", |f| label(f, "cluster name"))?;
    let trust_domain = root
        .get("trustDomain", trust_domain)?
        .unwrap_or_else(|| format!("{cluster}.fedmesh"));
    if root.field("locality").is_none() {
        let example = "locality: { region: us-east, zone: us-east-1a }";
        return Err(root.issue(
            "locality",
            format!("missing required field; add it, for example `{example}`"),
        ));
    }
    let locality = locality(&root.section("locality", LOCALITY)?)?;
    let data_dir = root.require("dataDir", "dataDir: ./data/east", |f| path(f, base))?;
    let ca = ca(&root.section("ca", CA)?, base)?;
    let mut listeners = Vec::new();
    let control = control(&root.section("control", CONTROL)?, base, &mut listeners)?;
    let dns = dns(&root.section("dns", DNS)?, &mut listeners)?;
    let gateway = gateway(
        &root.section("gateway", GATEWAY)?,
        base,
        &data_dir,
        &mut listeners,
    )?;
    let registry_section = root.section("registry", REGISTRY)?;
    let registry = registry(&registry_section, base)?;
    check_conflicts(&listeners)?;
    let imports = root.get("imports", super::imports::parse)?;
    if registry.kind == RegistryKind::Kubernetes {
        // The gateway listens on importPorts at its ingress address.
        let ports = &registry.import_ports;
        let taken = [
            ("gateway.ingressListen", gateway.ingress_listen.port()),
            ("gateway.adminListen", gateway.admin_listen.port()),
        ];
        if let Some((field, port)) = taken.iter().find(|(_, p)| ports.contains(p)) {
            return Err(registry_section.issue(
                "importPorts",
                format!(
                    "{}-{} holds {field}'s port {port}; choose a range apart from the gateway's own ports",
                    ports.start(),
                    ports.end()
                ),
            ));
        }
    }
    Ok(Config {
        cluster,
        trust_domain,
        locality,
        data_dir,
        ca,
        control,
        dns,
        gateway,
        registry,
        imports: imports.unwrap_or_default(),
        log: super::log::log(&root.section("log", LOG)?)?,
        source: origin.to_path_buf(),
    })
}

fn locality(s: &Section<'_>) -> Result<Locality, Issue> {
    Ok(Locality {
        region: s.require("region", "region: us-east", non_empty)?,
        zone: s.require("zone", "zone: us-east-1a", non_empty)?,
    })
}

fn ca(s: &Section<'_>, base: &Path) -> Result<CaFiles, Issue> {
    let cert_file = s.get("certFile", |f| path(f, base))?;
    let key_file = s.get("keyFile", |f| path(f, base))?;
    let (missing, given) = match (&cert_file, &key_file) {
        (Some(_), None) => ("keyFile", "certFile"),
        (None, Some(_)) => ("certFile", "keyFile"),
        _ => {
            return Ok(CaFiles {
                cert_file,
                key_file,
            });
        }
    };
    Err(Issue {
        line: s.line(given),
        field: s.path(missing),
        message: format!(
            "{} is set but {} is not; give both the CA certificate and its key, or neither to have a CA generated in dataDir",
            s.path(given),
            s.path(missing)
        ),
    })
}

fn control(
    s: &Section<'_>,
    base: &Path,
    listeners: &mut Vec<Listener>,
) -> Result<ControlConfig, Issue> {
    let d = ControlConfig::default();
    let peering_listen = listen(s, "peeringListen", d.peering_listen, listeners)?;
    let peering_advertise = advertise(s, "peeringAdvertise", "peeringListen", peering_listen)?;
    let admin_field = s.field("adminListen");
    let admin_listen = match &admin_field {
        Some(f) => admin_listen(f, base)?,
        None => d.admin_listen,
    };
    if let AdminListen::Tcp(addr) = admin_listen {
        let line = admin_field.and_then(|f| f.line());
        listeners.push(Listener::new(
            s.path("adminListen"),
            line,
            addr,
            Protocol::Tcp,
        ));
    }
    let gateway_listen = listen(s, "gatewayListen", d.gateway_listen, listeners)?;
    let web_listen = optional_listen(s, "webListen", listeners)?;
    let heartbeat_interval = positive_duration(s, "heartbeatInterval", d.heartbeat_interval)?;
    let peer_dead_after = positive_duration(s, "peerDeadAfter", d.peer_dead_after)?;
    if peer_dead_after <= heartbeat_interval {
        return Err(s.issue(
            "peerDeadAfter",
            format!(
                "{} must be longer than heartbeatInterval ({}), or every peer is marked stale between two heartbeats; set it to a few heartbeats, such as {}",
                super::format_duration(peer_dead_after),
                super::format_duration(heartbeat_interval),
                super::format_duration(heartbeat_interval * 3),
            ),
        ));
    }
    let stale_grace = s
        .get("staleGrace", Field::duration)?
        .unwrap_or(d.stale_grace);
    Ok(ControlConfig {
        peering_listen,
        peering_advertise,
        admin_listen,
        gateway_listen,
        web_listen,
        heartbeat_interval,
        peer_dead_after,
        stale_grace,
    })
}

fn dns(s: &Section<'_>, listeners: &mut Vec<Listener>) -> Result<DnsConfig, Issue> {
    let d = DnsConfig::default();
    let listen = listen(s, "listen", d.listen, listeners)?;
    listeners.push(Listener::new(
        s.path("listen"),
        s.field("listen").and_then(|f| f.line()),
        listen,
        Protocol::Udp,
    ));
    let zone = s.get("zone", zone)?.unwrap_or(d.zone);
    let ttl = s.get("ttl", ttl)?.unwrap_or(d.ttl);
    let upstreams = match s.field("upstreams") {
        Some(f) => f
            .items("a list of IP:PORT")?
            .iter()
            .map(|item| item.parse("IP:PORT", parse_upstream))
            .collect::<Result<_, _>>()?,
        None => d.upstreams,
    };
    Ok(DnsConfig {
        listen,
        zone,
        ttl,
        upstreams,
    })
}

fn gateway(
    s: &Section<'_>,
    base: &Path,
    data_dir: &Path,
    listeners: &mut Vec<Listener>,
) -> Result<GatewayConfig, Issue> {
    let ingress_listen = listen(s, "ingressListen", super::loopback(15443), listeners)?;
    Ok(GatewayConfig {
        embedded: s.get("embedded", Field::bool)?.unwrap_or(false),
        name: s
            .get("name", |f| label(f, "gateway name"))?
            .unwrap_or_else(|| "gw-1".to_owned()),
        ingress_listen,
        advertise: advertise(s, "advertise", "ingressListen", ingress_listen)?,
        control: s.get("control", |f| {
            let hp = f.parse("HOST:PORT", |text| text.parse::<HostPort>())?;
            if hp.port == 0 || hp.ip().is_some_and(|ip| ip.is_unspecified()) {
                return Err(f.issue(format!(
                    "{hp} cannot be dialed; give the host:port of the control plane's gateway API, such as fedmesh-control.fedmesh-system.svc:15012"
                )));
            }
            Ok(hp)
        })?,
        admin_listen: listen(s, "adminListen", super::loopback(15090), listeners)?,
        vip_range: s.get("vipRange", vip_range)?.unwrap_or(DEFAULT_VIP_RANGE),
        bootstrap_token_file: s
            .get("bootstrapTokenFile", |f| path(f, base))?
            .unwrap_or_else(|| data_dir.join("gateway-bootstrap.token")),
        connect_timeout: positive_duration(s, "connectTimeout", Duration::from_secs(1))?,
        idle_timeout: positive_duration(s, "idleTimeout", Duration::from_secs(3_600))?,
        probe_interval: positive_duration(s, "probeInterval", Duration::from_millis(200))?,
        probe_failures: s
            .get("probeFailures", |f| f.number(1, u32::MAX.into()))?
            .unwrap_or(3),
        max_connections_per_target: s
            .get("maxConnectionsPerTarget", |f| f.number(1, u32::MAX.into()))?
            .unwrap_or(10_000),
        max_claimed_endpoints: s
            .get("maxClaimedEndpoints", |f| f.number(1, u32::MAX.into()))?
            .unwrap_or(1_000),
        outlier: outlier(&s.section("outlier", OUTLIER)?)?,
        rate_limit: rate_limit(&s.section("rateLimit", RATE_LIMIT)?)?,
        tracing: tracing(&s.section("tracing", TRACING)?)?,
        access_log: s.get("accessLog", |f| access_log(f, base))?,
    })
}

fn rate_limit(s: &Section<'_>) -> Result<RateLimitConfig, Issue> {
    let connections_per_second = s
        .get("connectionsPerSecond", |f| f.number(0, u32::MAX.into()))?
        .unwrap_or(0);
    // A burst defaults to one second's worth, at least 1.
    let burst = s
        .get("burst", |f| f.number(1, u32::MAX.into()))?
        .unwrap_or(connections_per_second.max(1));
    Ok(RateLimitConfig {
        connections_per_second,
        burst,
    })
}

fn outlier(s: &Section<'_>) -> Result<OutlierConfig, Issue> {
    let d = OutlierConfig::default();
    let consecutive_failures = s
        .get("consecutiveFailures", |f| f.number(1, u32::MAX.into()))?
        .unwrap_or(d.consecutive_failures);
    let base_ejection = positive_duration(s, "baseEjection", d.base_ejection)?;
    let max_ejection = positive_duration(s, "maxEjection", d.max_ejection)?;
    if base_ejection > max_ejection {
        let key = if s.field("baseEjection").is_some() {
            "baseEjection"
        } else {
            "maxEjection"
        };
        return Err(s.issue(
            key,
            format!(
                "baseEjection ({}) is longer than maxEjection ({}); make baseEjection at most maxEjection",
                super::format_duration(base_ejection),
                super::format_duration(max_ejection)
            ),
        ));
    }
    let max_ejected_percent = s
        .get("maxEjectedPercent", |f| f.number(0, 100))?
        .unwrap_or(d.max_ejected_percent);
    Ok(OutlierConfig {
        consecutive_failures,
        base_ejection,
        max_ejection,
        max_ejected_percent,
    })
}

fn registry(s: &Section<'_>, base: &Path) -> Result<RegistryConfig, Issue> {
    let kind = s
        .get("kind", registry_kind)?
        .unwrap_or(RegistryKind::Static);
    let path = s.get("path", |f| path(f, base))?;
    let namespaces: Vec<String> = match s.field("namespaces") {
        Some(f) => f
            .items("a list of namespace names")?
            .iter()
            .map(|item| label(item, "namespace name"))
            .collect::<Result<_, _>>()?,
        None => Vec::new(),
    };
    if kind == RegistryKind::Kubernetes && path.is_some() {
        return Err(s.issue(
            "path",
            "path is read only by the static registry, and kind is kubernetes; remove path, or set kind: static",
        ));
    }
    let import_namespace = s.get("importNamespace", |f| label(f, "namespace name"))?;
    let gateway_selector = s.get("gatewaySelector", selector)?;
    let import_ports = s.get("importPorts", port_range)?;
    if kind == RegistryKind::Static {
        let set = [
            ("namespaces", !namespaces.is_empty()),
            ("importNamespace", import_namespace.is_some()),
            ("gatewaySelector", gateway_selector.is_some()),
            ("importPorts", import_ports.is_some()),
        ];
        if let Some((field, _)) = set.iter().find(|(_, set)| *set) {
            return Err(s.issue(
                field,
                format!("{field} is read only by the kubernetes registry, and kind is static; remove {field}, or set kind: kubernetes"),
            ));
        }
    }
    Ok(RegistryConfig {
        kind,
        path: path.unwrap_or_else(|| base.join("services")),
        namespaces,
        import_namespace,
        gateway_selector: gateway_selector.unwrap_or_else(super::default_gateway_selector),
        import_ports: import_ports.unwrap_or(super::DEFAULT_IMPORT_PORTS),
    })
}
