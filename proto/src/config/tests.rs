//! Tests of the config as a whole: parsing, defaults, and that every error
//! names its field and line.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::*;

const FULL: &str = "\
cluster: east
trustDomain: east.fedmesh
locality: { region: us-east, zone: us-east-1a }
dataDir: ./data/east
ca: { certFile: ca/root.pem, keyFile: /etc/fedmesh/root.key }
control:
  peeringListen: 127.0.1.1:15017
  peeringAdvertise: east.example.com:25017
  adminListen: 127.0.1.1:15000
  gatewayListen: 127.0.1.1:15012
  heartbeatInterval: 1s
  peerDeadAfter: 3s
  staleGrace: 30s
dns:
  listen: 127.0.1.1:15053
  zone: ClusterSet.Local.
  ttl: 5s
  upstreams: [\"192.0.2.53:53\", 192.0.2.54]
gateway:
  embedded: true
  name: gw-1
  ingressListen: 127.0.1.1:15443
  advertise: 127.0.1.1:15443
  adminListen: 127.0.1.1:15090
  vipRange: 127.77.0.0/16
  bootstrapTokenFile: null
  connectTimeout: 1s
  idleTimeout: 1h
  probeInterval: 200ms
  probeFailures: 4
  maxConnectionsPerTarget: 10000
  outlier: { consecutiveFailures: 3, baseEjection: 5s, maxEjection: 60s, maxEjectedPercent: 50 }
registry:
  kind: static
  path: ./services/east
  namespaces: []
";

const MINIMAL: &str = "\
cluster: east
locality: { region: us-east, zone: us-east-1a }
dataDir: data
";

fn parse(yaml: &str) -> Result<Config, ConfigError> {
    Config::from_yaml(yaml, Path::new("/etc/fedmesh/east.yaml"))
}

fn error(yaml: &str) -> ConfigError {
    match parse(yaml) {
        Ok(config) => panic!("expected an error, got {config:?}"),
        Err(error) => error,
    }
}

/// `MINIMAL` plus `extra` lines.
fn minimal_with(extra: &str) -> String {
    format!("{MINIMAL}{extra}")
}

fn addr(text: &str) -> SocketAddr {
    text.parse().expect("test address")
}

fn assert_error(error: &ConfigError, field: &str, line: Option<usize>, needles: &[&str]) {
    assert_eq!((error.field.as_str(), error.line), (field, line), "{error}");
    for needle in needles {
        assert!(
            error.to_string().contains(needle),
            "{needle:?} not in: {error}"
        );
    }
}

#[test]
fn full_example_parses_with_every_value() {
    let c = parse(FULL).expect("valid");
    assert_eq!(c.cluster, "east");
    assert_eq!(c.trust_domain, "east.fedmesh");
    assert_eq!(
        c.locality,
        Locality {
            region: "us-east".into(),
            zone: "us-east-1a".into()
        }
    );
    assert_eq!(c.data_dir, PathBuf::from("/etc/fedmesh/data/east"));
    assert_eq!(
        c.ca.cert_file,
        Some(PathBuf::from("/etc/fedmesh/ca/root.pem"))
    );
    assert_eq!(c.ca.key_file, Some(PathBuf::from("/etc/fedmesh/root.key")));
    assert_eq!(c.source, PathBuf::from("/etc/fedmesh/east.yaml"));

    let control = &c.control;
    assert_eq!(control.peering_listen, addr("127.0.1.1:15017"));
    assert_eq!(
        control.peering_advertise.to_string(),
        "east.example.com:25017"
    );
    assert_eq!(
        control.admin_listen,
        AdminListen::Tcp(addr("127.0.1.1:15000"))
    );
    assert_eq!(control.gateway_listen, addr("127.0.1.1:15012"));
    assert_eq!(control.heartbeat_interval, Duration::from_secs(1));
    assert_eq!(control.peer_dead_after, Duration::from_secs(3));
    assert_eq!(control.stale_grace, Duration::from_secs(30));

    assert_eq!(c.dns.listen, addr("127.0.1.1:15053"));
    assert_eq!(
        c.dns.zone, "clusterset.local",
        "lowercased, trailing dot dropped"
    );
    assert_eq!(c.dns.ttl, Duration::from_secs(5));
    assert_eq!(
        c.dns.upstreams,
        vec![addr("192.0.2.53:53"), addr("192.0.2.54:53")]
    );

    let gw = &c.gateway;
    assert!(gw.embedded);
    assert_eq!(gw.name, "gw-1");
    assert_eq!(gw.ingress_listen, addr("127.0.1.1:15443"));
    assert_eq!(gw.advertise.to_string(), "127.0.1.1:15443");
    assert_eq!(gw.admin_listen, addr("127.0.1.1:15090"));
    assert_eq!(gw.vip_range.to_string(), "127.77.0.0/16");
    assert_eq!(
        gw.bootstrap_token_file,
        PathBuf::from("/etc/fedmesh/data/east/gateway-bootstrap.token")
    );
    assert_eq!(gw.connect_timeout, Duration::from_secs(1));
    assert_eq!(gw.idle_timeout, Duration::from_secs(3_600));
    assert_eq!(gw.probe_interval, Duration::from_millis(200));
    assert_eq!(gw.probe_failures, 4);
    assert_eq!(gw.max_connections_per_target, 10_000);
    assert_eq!(
        gw.outlier,
        OutlierConfig {
            consecutive_failures: 3,
            base_ejection: Duration::from_secs(5),
            max_ejection: Duration::from_secs(60),
            max_ejected_percent: 50
        }
    );

    assert_eq!(c.registry.kind, RegistryKind::Static);
    assert_eq!(c.registry.path, PathBuf::from("/etc/fedmesh/services/east"));
    assert!(c.registry.namespaces.is_empty());
}

#[test]
fn minimal_config_gets_every_default() {
    let c = parse(MINIMAL).expect("valid");
    assert_eq!(c.trust_domain, "east.fedmesh");
    assert_eq!(c.ca, CaFiles::default());
    assert_eq!(c.control, ControlConfig::default());
    assert_eq!(c.control.peering_listen, addr("127.0.0.1:15017"));
    assert_eq!(c.control.peering_advertise.to_string(), "127.0.0.1:15017");
    assert_eq!(c.control.admin_listen.to_string(), "127.0.0.1:15000");
    assert_eq!(c.control.gateway_listen, addr("127.0.0.1:15012"));
    assert_eq!(
        (
            c.control.heartbeat_interval,
            c.control.peer_dead_after,
            c.control.stale_grace
        ),
        (
            Duration::from_secs(1),
            Duration::from_secs(3),
            Duration::from_secs(30)
        )
    );
    assert_eq!(c.dns, DnsConfig::default());
    assert_eq!(c.dns.listen, addr("127.0.0.1:15053"));
    assert_eq!(c.dns.zone, "clusterset.local");
    assert_eq!(c.dns.ttl, Duration::from_secs(5));
    assert!(c.dns.upstreams.is_empty());
    let gw = &c.gateway;
    assert!(!gw.embedded);
    assert_eq!(gw.name, "gw-1");
    assert_eq!(gw.ingress_listen, addr("127.0.0.1:15443"));
    assert_eq!(gw.advertise.to_string(), "127.0.0.1:15443");
    assert_eq!(gw.admin_listen, addr("127.0.0.1:15090"));
    assert_eq!(gw.vip_range.to_string(), "127.77.0.0/16");
    assert_eq!(
        gw.bootstrap_token_file,
        PathBuf::from("/etc/fedmesh/data/gateway-bootstrap.token")
    );
    assert_eq!(
        (gw.connect_timeout, gw.idle_timeout, gw.probe_interval),
        (
            Duration::from_secs(1),
            Duration::from_secs(3_600),
            Duration::from_millis(200)
        )
    );
    assert_eq!(
        (gw.probe_failures, gw.max_connections_per_target),
        (3, 10_000)
    );
    assert_eq!(gw.max_claimed_endpoints, 1_000);
    assert_eq!(gw.outlier, OutlierConfig::default());
    assert_eq!(gw.outlier.base_ejection, Duration::from_secs(5));
    assert_eq!(c.registry.kind, RegistryKind::Static);
    assert_eq!(c.registry.path, PathBuf::from("/etc/fedmesh/services"));
    assert!(c.registry.namespaces.is_empty());
}

#[test]
fn null_sections_take_their_defaults() {
    let c = parse(&minimal_with("control:\ndns: ~\ngateway: null\n")).expect("valid");
    assert_eq!(c.control, ControlConfig::default());
    assert_eq!(c.dns, DnsConfig::default());
}

#[test]
fn unknown_top_level_field_is_an_error_at_its_line() {
    let e = error(&minimal_with("colour: blue\n"));
    assert_error(
        &e,
        "colour",
        Some(4),
        &["east.yaml:4: colour: unknown field", "cluster, trustDomain"],
    );
}

#[test]
fn unknown_nested_field_names_its_full_path_and_line() {
    let yaml =
        minimal_with("gateway:\n  name: gw-2\n  outlier:\n    baseEjection: 5s\n    bogus: 1\n");
    let e = error(&yaml);
    assert_error(
        &e,
        "gateway.outlier.bogus",
        Some(8),
        &["east.yaml:8: gateway.outlier.bogus: unknown field"],
    );
    let flow = error(&minimal_with(
        "gateway:\n  outlier: { maxEjection: 60s, bogus: 1 }\n",
    ));
    assert_error(
        &flow,
        "gateway.outlier.bogus",
        Some(5),
        &["consecutiveFailures"],
    );
}

#[test]
fn misspelled_field_suggests_the_right_one() {
    let e = error(&minimal_with("control:\n  peering_listen: 127.0.0.1:1\n"));
    assert_error(
        &e,
        "control.peering_listen",
        Some(5),
        &["did you mean peeringListen?"],
    );
}

#[test]
fn duplicate_key_is_an_error_naming_the_first_line() {
    let e = error(&minimal_with("dns:\n  ttl: 5s\n  ttl: 6s\n"));
    assert_error(&e, "dns.ttl", Some(6), &["duplicate key", "line 5"]);
}

#[test]
fn bad_address_names_the_field_line_and_value() {
    let e = error(&minimal_with(
        "control:\n  heartbeatInterval: 1s\n  peeringListen: 127.0.0.1:99999\n",
    ));
    assert_eq!(
        e.to_string(),
        "/etc/fedmesh/east.yaml:6: control.peeringListen: invalid address \"127.0.0.1:99999\": expected IP:PORT such as 127.0.0.1:15017"
    );
    let host = error(&minimal_with(
        "gateway:\n  ingressListen: localhost:15443\n",
    ));
    assert_error(
        &host,
        "gateway.ingressListen",
        Some(5),
        &["\"localhost:15443\"", "127.0.0.1:15443"],
    );
}

#[test]
fn duplicate_listen_port_names_both_fields() {
    let yaml = minimal_with("control:\n  peeringListen: 127.0.0.1:15053\n");
    let e = error(&yaml);
    assert_error(
        &e,
        "control.peeringListen",
        Some(5),
        &["dns.listen (127.0.0.1:15053, the default)", "TCP"],
    );
    let both =
        minimal_with("control:\n  peeringListen: 127.0.0.1:7000\ndns:\n  listen: 127.0.0.1:7000\n");
    assert_error(
        &error(&both),
        "dns.listen",
        Some(7),
        &["control.peeringListen (127.0.0.1:7000, line 5)"],
    );
}

#[test]
fn wildcard_listen_conflicts_with_a_specific_address_on_the_same_port() {
    let yaml = minimal_with(
        "control:\n  peeringListen: 0.0.0.0:9000\n  peeringAdvertise: east.example.com:9000\ngateway:\n  adminListen: 127.0.0.5:9000\n",
    );
    assert_error(
        &error(&yaml),
        "gateway.adminListen",
        Some(8),
        &["control.peeringListen (0.0.0.0:9000, line 5)"],
    );
}

#[test]
fn listeners_on_port_zero_do_not_conflict() {
    let ports = "control:\n  peeringListen: 127.0.0.1:0\n  gatewayListen: 127.0.0.1:0\ndns:\n  listen: 127.0.0.1:0\n";
    assert!(parse(&minimal_with(ports)).is_ok());
}

#[test]
fn wildcard_peering_listen_requires_peering_advertise() {
    let e = error(&minimal_with("control:\n  peeringListen: 0.0.0.0:15017\n"));
    assert_error(
        &e,
        "control.peeringAdvertise",
        Some(5),
        &["wildcard", "0.0.0.0:15017"],
    );
    let v6 = error(&minimal_with("gateway:\n  ingressListen: \"[::]:15443\"\n"));
    assert_error(&v6, "gateway.advertise", Some(5), &["wildcard"]);
    let ok = parse(&minimal_with(
        "control:\n  peeringListen: 0.0.0.0:15017\n  peeringAdvertise: east.example.com:15017\n",
    ))
    .expect("valid");
    assert_eq!(ok.control.peering_advertise.host, "east.example.com");
}

#[test]
fn advertise_that_cannot_be_dialed_is_rejected() {
    let e = error(&minimal_with("gateway:\n  advertise: 0.0.0.0:15443\n"));
    assert_error(&e, "gateway.advertise", Some(5), &["cannot be dialed"]);
}

#[test]
fn non_loopback_admin_listen_is_an_error() {
    let e = error(&minimal_with("control:\n  adminListen: 0.0.0.0:15000\n"));
    assert_error(
        &e,
        "control.adminListen",
        Some(5),
        &["not a loopback address", "unix:"],
    );
    let e = error(&minimal_with("control:\n  adminListen: 192.0.2.1:15000\n"));
    assert_error(&e, "control.adminListen", Some(5), &["192.0.2.1:15000"]);
}

#[test]
fn unix_admin_listen_is_accepted_and_relative_socket_paths_resolve() {
    let c = parse(&minimal_with("control:\n  adminListen: unix:/tmp/x.sock\n")).expect("valid");
    assert_eq!(
        c.control.admin_listen,
        AdminListen::Unix(PathBuf::from("/tmp/x.sock"))
    );
    let c = parse(&minimal_with(
        "control:\n  adminListen: unix:run/admin.sock\n",
    ))
    .expect("valid");
    assert_eq!(
        c.control.admin_listen.to_string(),
        "unix:/etc/fedmesh/run/admin.sock"
    );
}

#[test]
fn unix_admin_listen_frees_the_default_admin_port() {
    let yaml = minimal_with(
        "control:\n  adminListen: unix:/tmp/x.sock\ngateway:\n  adminListen: 127.0.0.1:15000\n",
    );
    assert!(parse(&yaml).is_ok());
}

#[test]
fn bad_duration_names_the_field_and_value() {
    let e = error(&minimal_with("gateway:\n  connectTimeout: 3 seconds\n"));
    assert_error(
        &e,
        "gateway.connectTimeout",
        Some(5),
        &["invalid duration \"3 seconds\"", "1h30m"],
    );
    let bare = error(&minimal_with("control:\n  staleGrace: 30\n"));
    assert_error(&bare, "control.staleGrace", Some(5), &["no unit", "30s"]);
    let zero = error(&minimal_with("gateway:\n  probeInterval: 0s\n"));
    assert_error(&zero, "gateway.probeInterval", Some(5), &["more than 0s"]);
}

#[test]
fn peer_dead_after_must_exceed_heartbeat_interval() {
    let e = error(&minimal_with(
        "control:\n  heartbeatInterval: 2s\n  peerDeadAfter: 2s\n",
    ));
    assert_error(
        &e,
        "control.peerDeadAfter",
        Some(6),
        &["longer than heartbeatInterval (2s)", "6s"],
    );
}

#[test]
fn ttl_must_be_whole_seconds() {
    let e = error(&minimal_with("dns:\n  ttl: 1.5s\n"));
    assert_error(&e, "dns.ttl", Some(5), &["whole seconds"]);
    assert_error(
        &error(&minimal_with("dns:\n  ttl: 500ms\n")),
        "dns.ttl",
        Some(5),
        &["500ms"],
    );
}

#[test]
fn relative_data_dir_resolves_against_the_config_folder() {
    let c = Config::from_yaml(MINIMAL, Path::new("conf/east.yaml")).expect("valid");
    assert_eq!(c.data_dir, PathBuf::from("conf/data"));
    let c = parse(&MINIMAL.replace("dataDir: data", "dataDir: ./state/../east")).expect("valid");
    assert_eq!(c.data_dir, PathBuf::from("/etc/fedmesh/state/../east"));
    let c = parse(&MINIMAL.replace("dataDir: data", "dataDir: /var/lib/fedmesh")).expect("valid");
    assert_eq!(c.data_dir, PathBuf::from("/var/lib/fedmesh"));
    let inline = Config::from_yaml(MINIMAL, Path::new("<inline>")).expect("valid");
    assert_eq!(
        (inline.data_dir, inline.source),
        (PathBuf::from("data"), PathBuf::from("<inline>"))
    );
}

#[test]
fn ca_with_only_a_cert_file_is_an_error() {
    let e = error(&minimal_with("ca:\n  certFile: ca.pem\n"));
    assert_error(
        &e,
        "ca.keyFile",
        Some(5),
        &["ca.certFile is set but ca.keyFile is not"],
    );
    let e = error(&minimal_with("ca: { keyFile: ca.key }\n"));
    assert_error(&e, "ca.certFile", Some(4), &["neither"]);
}

#[test]
fn bad_cluster_name_is_an_error() {
    let e = error(&MINIMAL.replace("cluster: east", "cluster: East_1"));
    assert_error(
        &e,
        "cluster",
        Some(1),
        &["invalid cluster name \"East_1\"", "DNS label"],
    );
    let e = error(&MINIMAL.replace("cluster: east", "cluster: -east"));
    assert_error(&e, "cluster", Some(1), &["start and end"]);
    let numeric = error(&MINIMAL.replace("cluster: east", "cluster: 1.10"));
    assert!(
        numeric.message.contains("\"1.10\""),
        "numbers are taken as written: {numeric}"
    );
}

#[test]
fn missing_required_fields_are_named() {
    let e = error("locality: { region: r, zone: z }\ndataDir: d\n");
    assert_error(
        &e,
        "cluster",
        None,
        &["missing required field", "cluster: east"],
    );
    let e = error("cluster: east\ndataDir: d\n");
    assert_error(&e, "locality", None, &["missing required field"]);
    let e = error("cluster: east\nlocality:\n  region: r\ndataDir: d\n");
    assert_error(&e, "locality.zone", Some(2), &["missing required field"]);
    let e = error("cluster: east\nlocality: { region: r, zone: z }\ndataDir:\n");
    assert_error(&e, "dataDir", Some(3), &["missing required field"]);
}

#[test]
fn empty_or_non_mapping_documents_are_clear_errors() {
    for empty in ["", "# nothing\n", "---\n"] {
        let e = error(empty);
        assert_error(
            &e,
            "",
            None,
            &["/etc/fedmesh/east.yaml: the config is empty"],
        );
    }
    let e = error("- cluster: east\n");
    assert_error(
        &e,
        "",
        Some(1),
        &["expected a mapping of config fields", "found a list"],
    );
}

#[test]
fn yaml_syntax_error_reports_the_parser_location() {
    let e = error("cluster: east\nlocality: { region: r, zone: z\ndataDir: d\n");
    assert_eq!(e.field, "");
    assert!(e.line.is_some(), "{e}");
    assert!(e.to_string().starts_with("/etc/fedmesh/east.yaml:"), "{e}");
}

#[test]
fn wrong_value_types_name_what_was_expected() {
    let e = error(&minimal_with("gateway:\n  embedded: maybe\n"));
    assert_error(
        &e,
        "gateway.embedded",
        Some(5),
        &["expected true or false, found \"maybe\""],
    );
    let e = error(&minimal_with("control: 5\n"));
    assert_error(
        &e,
        "control",
        Some(4),
        &["expected a mapping", "found a number"],
    );
    let e = error(&minimal_with("gateway:\n  probeFailures: 0\n"));
    assert_error(&e, "gateway.probeFailures", Some(5), &["0 is out of range"]);
    let e = error(&minimal_with(
        "gateway:\n  outlier:\n    maxEjectedPercent: 101\n",
    ));
    assert_error(
        &e,
        "gateway.outlier.maxEjectedPercent",
        Some(6),
        &["from 0 to 100"],
    );
    let e = error(&minimal_with("dns:\n  upstreams: 192.0.2.53\n"));
    assert_error(&e, "dns.upstreams", Some(5), &["expected a list"]);
}

#[test]
fn bad_upstream_names_its_index() {
    let e = error(&minimal_with(
        "dns:\n  upstreams:\n    - 192.0.2.53\n    - dns.example.com\n",
    ));
    assert_error(&e, "dns.upstreams[1]", Some(7), &["\"dns.example.com\""]);
}

#[test]
fn outlier_base_ejection_must_not_exceed_max() {
    let e = error(&minimal_with(
        "gateway:\n  outlier: { baseEjection: 2m, maxEjection: 1m }\n",
    ));
    assert_error(
        &e,
        "gateway.outlier.baseEjection",
        Some(5),
        &["baseEjection (2m) is longer than maxEjection (1m)"],
    );
}

#[test]
fn vip_range_is_parsed_and_checked() {
    let c = parse(&minimal_with("gateway:\n  vipRange: 127.80.0.0/24\n")).expect("valid");
    assert_eq!(
        c.gateway.vip_range.nth(5),
        Some(Ipv4Addr::new(127, 80, 0, 5))
    );
    assert_eq!(c.gateway.vip_range.size(), 256);
    let e = error(&minimal_with("gateway:\n  vipRange: 127.80.0.0/31\n"));
    assert_error(&e, "gateway.vipRange", Some(5), &["8 to 30"]);
    let e = error(&minimal_with("gateway:\n  vipRange: 127.80.0.1/24\n"));
    assert_error(&e, "gateway.vipRange", Some(5), &["write 127.80.0.0/24"]);
}

#[test]
fn dns_zone_and_trust_domain_must_be_dns_names() {
    let e = error(&minimal_with("dns:\n  zone: bad..zone\n"));
    assert_error(&e, "dns.zone", Some(5), &["\"bad..zone\""]);
    let e = error(&MINIMAL.replace("cluster: east", "cluster: east\ntrustDomain: East.Fedmesh"));
    assert_error(&e, "trustDomain", Some(2), &["uppercase"]);
}

#[test]
fn registry_fields_must_match_its_kind() {
    let c = parse(&minimal_with(
        "registry:\n  kind: kubernetes\n  namespaces: [demo, prod]\n",
    ))
    .expect("valid");
    assert_eq!(c.registry.kind, RegistryKind::Kubernetes);
    assert_eq!(
        c.registry.namespaces,
        vec!["demo".to_owned(), "prod".to_owned()]
    );
    let e = error(&minimal_with(
        "registry:\n  kind: kubernetes\n  path: svc\n",
    ));
    assert_error(&e, "registry.path", Some(6), &["kind: static"]);
    let e = error(&minimal_with("registry:\n  namespaces: [demo]\n"));
    assert_error(&e, "registry.namespaces", Some(5), &["kind: kubernetes"]);
    let e = error(&minimal_with("registry:\n  kind: k8s\n"));
    assert_error(
        &e,
        "registry.kind",
        Some(5),
        &["\"k8s\"", "static or kubernetes"],
    );
}

#[test]
fn kubernetes_import_fields_have_defaults_and_are_checked() {
    let c = parse(&minimal_with("registry:\n  kind: kubernetes\n")).expect("valid");
    assert_eq!(c.registry.import_namespace, None);
    assert_eq!(c.registry.gateway_selector, default_gateway_selector());
    assert_eq!(c.registry.import_ports, DEFAULT_IMPORT_PORTS);
    let c = parse(&minimal_with(
        "registry:\n  kind: kubernetes\n  importNamespace: fedmesh\n  gatewaySelector: { app: gw, tier: edge }\n  importPorts: 31000-31999\n",
    ))
    .expect("valid");
    assert_eq!(c.registry.import_namespace.as_deref(), Some("fedmesh"));
    assert_eq!(c.registry.gateway_selector.len(), 2);
    assert_eq!(c.registry.import_ports, 31000..=31999);

    let e = error(&minimal_with("registry:\n  importPorts: 31000-31999\n"));
    assert_error(&e, "registry.importPorts", Some(5), &["kind: kubernetes"]);
    let e = error(&minimal_with(
        "registry:\n  kind: kubernetes\n  importPorts: 3000-2000\n",
    ));
    assert_error(&e, "registry.importPorts", Some(6), &["3000-2000"]);
    let e = error(&minimal_with(
        "registry:\n  kind: kubernetes\n  importPorts: many\n",
    ));
    assert_error(&e, "registry.importPorts", Some(6), &["FIRST-LAST"]);
    let e = error(&minimal_with(
        "registry:\n  kind: kubernetes\n  gatewaySelector: {}\n",
    ));
    assert_error(&e, "registry.gatewaySelector", Some(6), &["every pod"]);
    let e = error(&minimal_with(
        "registry:\n  kind: kubernetes\n  gatewaySelector: { app: \"a b\" }\n",
    ));
    assert_error(&e, "registry.gatewaySelector.app", Some(6), &["\"a b\""]);
    // The range must leave the gateway's own ports alone.
    let e = error(&minimal_with(
        "registry:\n  kind: kubernetes\n  importPorts: 15000-16000\n",
    ));
    assert_error(
        &e,
        "registry.importPorts",
        Some(6),
        &["gateway.ingressListen"],
    );
}

#[test]
fn gateway_control_is_a_dialable_host_and_port() {
    let c = parse(&minimal_with(
        "gateway:\n  control: fedmesh-control.fedmesh-system.svc:15012\n",
    ))
    .expect("valid");
    let control = c.gateway.control.expect("set");
    assert_eq!(
        control.to_string(),
        "fedmesh-control.fedmesh-system.svc:15012"
    );
    assert_eq!(parse(MINIMAL).expect("valid").gateway.control, None);
    let e = error(&minimal_with("gateway:\n  control: 0.0.0.0:15012\n"));
    assert_error(&e, "gateway.control", Some(5), &["cannot be dialed"]);
    let e = error(&minimal_with("gateway:\n  control: nohostport\n"));
    assert_error(&e, "gateway.control", Some(5), &[]);
}

#[test]
fn load_reads_the_file_and_reports_io_errors_with_the_path() {
    let dir = std::env::temp_dir().join(format!("fedmesh-config-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let file = dir.join("east.yaml");
    std::fs::write(&file, MINIMAL).expect("write config");
    let loaded = Config::load(&file);
    let missing = Config::load(&dir.join("absent.yaml"));
    std::fs::remove_dir_all(&dir).expect("clean up");
    let c = loaded.expect("valid");
    assert_eq!((c.data_dir, c.source), (dir.join("data"), file));
    let e = missing.expect_err("absent file");
    assert_eq!(e.file, dir.join("absent.yaml").display().to_string());
    assert!(
        e.to_string()
            .contains("absent.yaml: cannot read config file"),
        "{e}"
    );
}

#[test]
fn error_display_leaves_out_unknown_parts() {
    let e = ConfigError {
        file: "east.yaml".into(),
        line: Some(7),
        field: "dns.ttl".into(),
        message: "bad".into(),
    };
    assert_eq!(e.to_string(), "east.yaml:7: dns.ttl: bad");
    let e = ConfigError {
        line: None,
        field: String::new(),
        ..e
    };
    assert_eq!(e.to_string(), "east.yaml: bad");
}

#[test]
fn rate_limit_is_off_by_default_and_burst_defaults_to_one_second() {
    let off = parse(&minimal_with("")).unwrap();
    assert_eq!(off.gateway.rate_limit.connections_per_second, 0);
    let on = parse(&minimal_with(
        "gateway:\n  rateLimit: { connectionsPerSecond: 50 }\n",
    ))
    .unwrap();
    assert_eq!(
        (
            on.gateway.rate_limit.connections_per_second,
            on.gateway.rate_limit.burst
        ),
        (50, 50)
    );
    let burst = parse(&minimal_with(
        "gateway:\n  rateLimit: { connectionsPerSecond: 50, burst: 5 }\n",
    ))
    .unwrap();
    assert_eq!(burst.gateway.rate_limit.burst, 5);
    let bad = error(&minimal_with(
        "gateway:\n  rateLimit: { connectionsPerSecond: fast }\n",
    ));
    assert_eq!(bad.field, "gateway.rateLimit.connectionsPerSecond");
    let unknown = error(&minimal_with("gateway:\n  rateLimit: { perMinute: 5 }\n"));
    assert!(unknown.field.contains("perMinute"), "{unknown}");
}

/// `Config::field_paths` lists what the parser reads: each path is a known
/// field, and exactly the listed sections take fields of their own (so a
/// new section cannot be left out of docs/config.md unnoticed).
#[test]
fn field_paths_are_the_fields_the_parser_knows() {
    let sections: Vec<&str> = build::SECTIONS.iter().map(|(s, _)| *s).collect();
    let required = [
        ("cluster", "cluster: east"),
        (
            "locality",
            "locality: { region: us-east, zone: us-east-1a }",
        ),
        ("dataDir", "dataDir: data"),
    ];
    let paths = Config::field_paths();
    assert!(paths.contains(&"gateway.outlier.maxEjection".to_owned()));
    for path in &paths {
        let parts: Vec<&str> = path.split('.').collect();
        let mut doc: String = required
            .iter()
            .filter(|(key, _)| *key != parts[0])
            .map(|(_, line)| format!("{line}\n"))
            .collect();
        if parts == ["locality", "zone"] {
            // The region is required and read first.
            doc.push_str("locality:\n  region: us-east\n  zone: { fedmeshProbe: 1 }\n");
            let e = error(&doc);
            assert_eq!(
                (e.field.as_str(), e.message.contains("unknown field")),
                (path.as_str(), false),
                "{e}"
            );
            continue;
        }
        for (depth, part) in parts.iter().enumerate() {
            doc.push_str(&"  ".repeat(depth));
            doc.push_str(part);
            doc.push(':');
            doc.push(if depth + 1 == parts.len() { ' ' } else { '\n' });
        }
        doc.push_str("{ fedmeshProbe: 1 }\n");
        let e = error(&doc);
        if sections.contains(&path.as_str()) {
            assert_eq!(e.field, format!("{path}.fedmeshProbe"), "{doc}\n{e}");
            assert!(e.message.contains("unknown field"), "{e}");
        } else {
            assert_eq!(&e.field, path, "{doc}\n{e}");
            assert!(!e.message.contains("unknown field"), "{e}");
        }
    }
}

#[test]
fn max_claimed_endpoints_is_a_positive_count() {
    let c = parse(&minimal_with("gateway: { maxClaimedEndpoints: 1 }\n")).expect("valid");
    assert_eq!(c.gateway.max_claimed_endpoints, 1);
    let e = error(&minimal_with("gateway: { maxClaimedEndpoints: 0 }\n"));
    assert_eq!(e.field, "gateway.maxClaimedEndpoints", "{e}");
    assert!(e.message.contains("out of range"), "{e}");
}
