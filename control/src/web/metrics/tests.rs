//! The metrics written from hand-made samples.

use fedmesh_proto::metrics_text::Format;

use super::ControlMetrics;
use crate::model::LinkState;
use crate::web::sample::{CertSample, PeerSample, Sample};

fn peer(name: &str, state: LinkState) -> PeerSample {
    PeerSample {
        name: name.into(),
        state,
        heartbeat_age_s: 0.5,
        acked_version: 3,
        pending: 1,
        imports: 2,
        refused: 0,
        root_not_after_s: 0,
    }
}

fn has_line(text: &str, line: &str) -> bool {
    text.lines().any(|l| l == line)
}

#[test]
fn a_fresh_control_plane_has_every_state_and_rcode_at_zero() {
    let m = ControlMetrics::new();
    let text = m.encode(&Sample::default(), Format::Classic);
    for line in [
        "fedmesh_control_peers{state=\"connected\"} 0",
        "fedmesh_control_peers{state=\"stale\"} 0",
        "fedmesh_control_peers{state=\"disconnected\"} 0",
        "fedmesh_control_dns_queries_total{rcode=\"NXDOMAIN\"} 0",
        "fedmesh_control_export_propagation_seconds_count 0",
        "fedmesh_control_services 0",
    ] {
        assert!(has_line(&text, line), "no {line:?} in\n{text}");
    }
    assert!(
        text.contains("fedmesh_control_build_info{version=\""),
        "{text}"
    );
}

#[test]
fn peers_are_counted_by_state_and_each_has_its_series() {
    let m = ControlMetrics::new();
    let sample = Sample {
        peers: vec![
            peer("west", LinkState::Connected),
            peer("eu", LinkState::Stale),
        ],
        ..Sample::default()
    };
    let text = m.encode(&sample, Format::OpenMetrics);
    for line in [
        "fedmesh_control_peers{state=\"connected\"} 1",
        "fedmesh_control_peers{state=\"stale\"} 1",
        "fedmesh_control_peer_state{peer=\"eu\",state=\"stale\"} 1",
        "fedmesh_control_peer_state{peer=\"eu\",state=\"connected\"} 0",
        "fedmesh_control_peer_heartbeat_age_seconds{peer=\"west\"} 0.5",
        "fedmesh_control_peer_sync_pending_exports{peer=\"west\"} 1",
        "fedmesh_control_peer_imports{peer=\"west\"} 2",
        "fedmesh_control_peer_refused_exports{peer=\"west\"} 0",
    ] {
        assert!(has_line(&text, line), "no {line:?} in\n{text}");
    }
}

#[test]
fn a_removed_peer_leaves_no_series() {
    let m = ControlMetrics::new();
    let with = Sample {
        peers: vec![peer("west", LinkState::Connected)],
        ..Sample::default()
    };
    assert!(m.encode(&with, Format::Classic).contains("peer=\"west\""));
    let text = m.encode(&Sample::default(), Format::Classic);
    assert!(!text.contains("west"), "{text}");
    assert!(has_line(
        &text,
        "fedmesh_control_peers{state=\"connected\"} 0"
    ));
}

#[test]
fn dns_counts_and_certificates_are_copied_in() {
    let m = ControlMetrics::new();
    let sample = Sample {
        dns: vec![("NOERROR", 7), ("REFUSED", 2)],
        certs: vec![CertSample {
            kind: "root",
            name: "east".into(),
            not_after_s: 1_900_000_000,
        }],
        ..Sample::default()
    };
    m.encode(&sample, Format::Classic);
    // A second scrape with the same totals does not count them twice.
    let text = m.encode(&sample, Format::Classic);
    for line in [
        "fedmesh_control_dns_queries_total{rcode=\"NOERROR\"} 7",
        "fedmesh_control_dns_queries_total{rcode=\"REFUSED\"} 2",
        "fedmesh_control_cert_expiry_timestamp_seconds{cert=\"root\",name=\"east\"} 1900000000",
    ] {
        assert!(has_line(&text, line), "no {line:?} in\n{text}");
    }
}

#[test]
fn propagation_observations_show_in_the_histogram() {
    let m = ControlMetrics::new();
    m.propagation().observe(0.03);
    let text = m.encode(&Sample::default(), Format::Classic);
    assert!(
        has_line(&text, "fedmesh_control_export_propagation_seconds_count 1"),
        "{text}"
    );
    assert!(
        has_line(
            &text,
            "fedmesh_control_export_propagation_seconds_bucket{le=\"0.05\"} 1"
        ),
        "{text}"
    );
}
