use std::collections::BTreeMap;
use std::time::Duration;

use super::*;
use fedmesh_proto::identity::PeerTrust;

use crate::state::{Affinity, Export, GatewayState, Import, Locality, Target};
use crate::wire::Refusal;

fn key() -> ServiceKey {
    ("demo".into(), "hello".into())
}

fn target(cluster: &str, local: bool) -> Target {
    Target {
        cluster: cluster.into(),
        locality: Locality::default(),
        healthy: 1,
        total: 1,
        gateway: if local { "" } else { "127.0.2.1:15443" }.into(),
        local,
        draining: false,
    }
}

/// A snapshot importing demo/hello from `targets`.
fn state(targets: Vec<Target>) -> GatewayState {
    let import = Import {
        key: key(),
        vip: "127.77.0.1".parse().expect("an IPv4 literal"),
        ports: vec![("http".into(), 8080)],
        affinity: Affinity::Local,
        weights: BTreeMap::new(),
        targets,
        pinned: BTreeMap::new(),
        listen_ports: BTreeMap::new(),
    };
    GatewayState {
        cluster: "east".into(),
        imports: [(key(), import)].into(),
        ..GatewayState::default()
    }
}

fn has_line(text: &str, line: &str) -> bool {
    text.lines().any(|l| l == line)
}

#[test]
fn a_prepared_import_has_its_series_at_zero_before_any_event() {
    let m = Metrics::new();
    m.prepare(&state(vec![target("east", true), target("west", false)]));
    let text = m.encode(Format::OpenMetrics);
    let svc = "namespace=\"demo\",service=\"hello\"";
    for line in [
        format!("fedmesh_gateway_egress_connections_failed_total{{{svc}}} 0"),
        format!("fedmesh_gateway_egress_rate_limited_total{{{svc}}} 0"),
        format!("fedmesh_gateway_egress_connections_opened_total{{{svc},cluster=\"east\"}} 0"),
        format!("fedmesh_gateway_egress_connections_opened_total{{{svc},cluster=\"west\"}} 0"),
        format!("fedmesh_gateway_egress_connections_active{{{svc},cluster=\"west\"}} 0"),
        format!("fedmesh_gateway_egress_sent_bytes_total{{{svc},cluster=\"west\"}} 0"),
        format!("fedmesh_gateway_egress_received_bytes_total{{{svc},cluster=\"east\"}} 0"),
        format!(
            "fedmesh_gateway_egress_attempts_failed_total{{{svc},cluster=\"east\",reason=\"no_endpoint\"}} 0"
        ),
        format!(
            "fedmesh_gateway_egress_attempts_failed_total{{{svc},cluster=\"west\",reason=\"peer_unreachable\"}} 0"
        ),
        "fedmesh_gateway_egress_tls_handshakes_total{cluster=\"west\",kind=\"full\"} 0".into(),
        "fedmesh_gateway_egress_tls_handshakes_total{cluster=\"west\",kind=\"resumed\"} 0".into(),
        "fedmesh_gateway_ejections_total{cluster=\"west\"} 0".into(),
        "fedmesh_gateway_probes_total{gateway=\"127.0.2.1:15443\",result=\"ok\"} 0".into(),
        "fedmesh_gateway_probes_total{gateway=\"127.0.2.1:15443\",result=\"failed\"} 0".into(),
        "fedmesh_gateway_ingress_refused_total{reason=\"handshake\"} 0".into(),
    ] {
        assert!(has_line(&text, &line), "no {line:?} in\n{text}");
    }
    // The latency histogram comes with the first connection (prepare.rs).
    assert!(!text.contains("connect_seconds_count{"), "{text}");
    // A local target is never a TLS peer, and cannot fail its handshake.
    assert!(!text.contains("cluster=\"east\",kind="), "{text}");
    assert!(
        !text.contains("cluster=\"east\",reason=\"peer_unreachable\""),
        "{text}"
    );
}

#[test]
fn prepare_keeps_counts_and_removes_what_the_snapshot_no_longer_names() {
    let m = Metrics::new();
    let both = state(vec![target("east", true), target("west", false)]);
    m.prepare(&both);
    m.egress_failed(&key());
    m.prepare(&both);
    let failed =
        "fedmesh_gateway_egress_connections_failed_total{namespace=\"demo\",service=\"hello\"} 1";
    assert!(has_line(&m.encode(Format::OpenMetrics), failed));

    m.prepare(&state(vec![target("east", true)]));
    let text = m.encode(Format::OpenMetrics);
    assert!(has_line(&text, failed), "{text}");
    assert!(
        !text.contains("west"),
        "west is no longer a target:\n{text}"
    );

    m.prepare(&GatewayState::default());
    let text = m.encode(Format::OpenMetrics);
    assert!(
        !text.contains("hello"),
        "demo/hello is no longer imported:\n{text}"
    );
    assert!(text.contains("reason=\"handshake\"} 0"), "{text}");
}

#[test]
fn a_target_with_open_connections_keeps_its_series_until_they_close() {
    let m = Metrics::new();
    m.prepare(&state(vec![target("west", false)]));
    let open = m.egress_active(&key(), "west");
    m.egress_meters(&key(), "west").up.inc_by(10);
    m.prepare(&GatewayState::default());
    let sent = "fedmesh_gateway_egress_sent_bytes_total{namespace=\"demo\",service=\"hello\",cluster=\"west\"} 10";
    assert!(has_line(&m.encode(Format::OpenMetrics), sent));

    drop(open);
    m.prepare(&GatewayState::default());
    assert!(!m.encode(Format::OpenMetrics).contains("west"));
}

#[test]
fn every_refusal_status_is_a_prepared_reason() {
    for status in Refusal::ALL {
        assert!(
            REMOTE_ATTEMPT_REASONS.contains(&status.as_str()),
            "{status:?}"
        );
        assert!(INGRESS_REFUSALS.contains(&status.as_str()), "{status:?}");
    }
}

#[test]
fn events_count_under_split_service_labels() {
    let m = Metrics::new();
    m.egress_connected(&key(), "west", Duration::from_millis(2));
    m.egress_attempt_failed(&key(), "east", "connect");
    m.tls_handshake("west", true);
    m.probe("127.0.2.1:15443", false);
    let both = m.ingress_meters(&key(), "eu");
    both.up.inc_by(3);
    both.down.inc_by(4);
    let text = m.encode(Format::OpenMetrics);
    for line in [
        "fedmesh_gateway_egress_connections_opened_total{namespace=\"demo\",service=\"hello\",cluster=\"west\"} 1",
        "fedmesh_gateway_egress_attempts_failed_total{namespace=\"demo\",service=\"hello\",cluster=\"east\",reason=\"connect\"} 1",
        "fedmesh_gateway_egress_tls_handshakes_total{cluster=\"west\",kind=\"resumed\"} 1",
        "fedmesh_gateway_probes_total{gateway=\"127.0.2.1:15443\",result=\"failed\"} 1",
        "fedmesh_gateway_ingress_bytes_total{namespace=\"demo\",service=\"hello\",cluster=\"eu\"} 7",
    ] {
        assert!(has_line(&text, line), "no {line:?} in\n{text}");
    }
}

#[test]
fn classic_output_has_total_in_type_and_no_eof() {
    let m = Metrics::new();
    m.prepare(&state(vec![target("west", false)]));
    let text = m.encode(Format::Classic);
    assert!(
        has_line(
            &text,
            "# TYPE fedmesh_gateway_egress_connections_failed_total counter"
        ),
        "{text}"
    );
    assert!(
        !text.contains("# EOF") && !text.contains("# UNIT"),
        "{text}"
    );
    assert!(m.encode(Format::OpenMetrics).ends_with("# EOF\n"));
}

fn samples(m: &Metrics) -> usize {
    m.encode(Format::OpenMetrics)
        .lines()
        .filter(|l| !l.starts_with('#'))
        .count()
}

#[test]
fn an_import_with_three_targets_makes_the_series_operations_md_counts() {
    let m = Metrics::new();
    let before = samples(&m);
    let mut eu = target("eu", false);
    eu.gateway = "127.0.3.1:15443".into();
    m.prepare(&state(vec![
        target("east", true),
        target("west", false),
        eu,
    ]));
    // 40 for the import, 6 per peer cluster, 2 per peer gateway.
    assert_eq!(samples(&m) - before, 40 + 2 * 6 + 2 * 2);
    m.egress_connected(&key(), "west", Duration::from_millis(1));
    assert_eq!(
        samples(&m) - before,
        40 + 2 * 6 + 2 * 2 + 21,
        "the histogram"
    );
}

/// A peer with a fresh self-signed root, as a trust bundle holds it.
fn peer(cluster: &str) -> PeerTrust {
    let key = rcgen::KeyPair::generate().expect("test key generation");
    let mut params = rcgen::CertificateParams::default();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let root = params.self_signed(&key).expect("self-signed test root");
    PeerTrust {
        cluster: cluster.into(),
        trust_domain: format!("{cluster}.fedmesh"),
        roots: vec![root.der().clone()],
    }
}

#[test]
fn an_export_has_ingress_series_at_zero_for_each_peer_it_is_exported_to() {
    let mut s = GatewayState {
        cluster: "east".into(),
        ..GatewayState::default()
    };
    for cluster in ["west", "eu"] {
        s.trust.insert(peer(cluster)).expect("a valid test root");
    }
    let export = |export_to: &[&str]| Export {
        ports: vec![("http".into(), 8080)],
        endpoints: vec![],
        export_to: export_to.iter().map(|c| c.to_string()).collect(),
    };
    s.exports.insert(key(), export(&["eu"]));
    s.exports
        .insert(("demo".into(), "open".into()), export(&[]));
    let m = Metrics::new();
    m.prepare(&s);
    let text = m.encode(Format::OpenMetrics);
    for line in [
        "fedmesh_gateway_ingress_bytes_total{namespace=\"demo\",service=\"hello\",cluster=\"eu\"} 0",
        "fedmesh_gateway_ingress_connections_active{namespace=\"demo\",service=\"hello\",cluster=\"eu\"} 0",
        "fedmesh_gateway_ingress_bytes_total{namespace=\"demo\",service=\"open\",cluster=\"west\"} 0",
        "fedmesh_gateway_ingress_bytes_total{namespace=\"demo\",service=\"open\",cluster=\"eu\"} 0",
    ] {
        assert!(has_line(&text, line), "no {line:?} in\n{text}");
    }
    assert!(
        !text.contains("service=\"hello\",cluster=\"west\""),
        "hello is not exported to west:\n{text}"
    );
}
