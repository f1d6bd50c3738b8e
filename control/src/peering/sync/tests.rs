use super::*;
use crate::exports::ExportEntry;
use crate::model::ExportSpec;

fn state(version: u64, names: &[(&str, &[&str])]) -> ExportState {
    let map = names
        .iter()
        .map(|(name, to)| {
            let key = ServiceKey::new("demo", *name);
            let entry = ExportEntry {
                key: key.clone(),
                ports: vec![PortSpec {
                    name: "http".into(),
                    port: 80,
                    app_protocol: Default::default(),
                }],
                exported_at_ms: 1,
                spec: ExportSpec {
                    to: to.iter().map(|s| s.to_string()).collect(),
                    ..Default::default()
                },
                healthy: 1,
                total: 1,
                headless: None,
                draining: false,
            };
            (key, Arc::new(entry))
        })
        .collect();
    ExportState::new(7, version, map)
}

fn names(u: &v1::ExportUpdate) -> Vec<String> {
    u.upserts.iter().map(|e| e.name.clone()).collect()
}

#[test]
fn nothing_is_sent_before_the_hello_or_before_the_registry_was_read() {
    let acked = AckedViews::default();
    let mut s = ExportSender::new("west");
    assert!(s.next_update(&state(1, &[("a", &[])]), &acked).is_none());
    s.hello(SyncPos::default());
    assert!(s.next_update(&state(0, &[]), &acked).is_none());
    let u = s.next_update(&state(1, &[("a", &[])]), &acked).unwrap();
    assert!(u.full);
}

#[test]
fn first_update_is_full_then_only_changes_follow() {
    let acked = AckedViews::default();
    let mut s = ExportSender::new("west");
    s.hello(SyncPos::default());
    let full = s
        .next_update(&state(1, &[("a", &[]), ("b", &[])]), &acked)
        .unwrap();
    assert!(full.full);
    assert_eq!(names(&full), ["a", "b"]);
    let delta = s
        .next_update(&state(2, &[("a", &[]), ("c", &[])]), &acked)
        .unwrap();
    assert!(!delta.full);
    assert_eq!((delta.base_version, delta.version), (1, 2));
    assert_eq!(names(&delta), ["c"]);
    assert_eq!(delta.removals[0].name, "b");
}

#[test]
fn a_reconnect_resumes_from_the_acked_view_or_resyncs_in_full() {
    let acked = AckedViews::default();
    let mut first = ExportSender::new("west");
    first.hello(SyncPos::default());
    let u = first.next_update(&state(1, &[("a", &[])]), &acked).unwrap();
    first.ack(
        &v1::Ack {
            epoch: u.epoch,
            version: u.version,
        },
        &acked,
    );

    // The peer holds version 1: only what changed since is sent.
    let mut resumed = ExportSender::new("west");
    resumed.hello(SyncPos {
        epoch: 7,
        version: 1,
    });
    let delta = resumed
        .next_update(&state(2, &[("a", &[]), ("b", &[])]), &acked)
        .unwrap();
    assert!(!delta.full);
    assert_eq!(delta.base_version, 1);
    assert_eq!(names(&delta), ["b"]);

    // The peer holds something else (lost its store, or another epoch).
    let mut other = ExportSender::new("west");
    other.hello(SyncPos {
        epoch: 7,
        version: 5,
    });
    assert!(
        other
            .next_update(&state(2, &[("a", &[])]), &acked)
            .unwrap()
            .full
    );
}

#[test]
fn export_to_keeps_a_service_from_other_peers() {
    let acked = AckedViews::default();
    let mut eu = ExportSender::new("eu");
    eu.hello(SyncPos::default());
    let u = eu
        .next_update(&state(1, &[("open", &[]), ("westonly", &["west"])]), &acked)
        .unwrap();
    assert_eq!(names(&u), ["open"]);
    // A change only west can see sends nothing to eu.
    assert!(
        eu.next_update(
            &state(2, &[("open", &[]), ("westonly2", &["west"])]),
            &acked
        )
        .is_none()
    );
}

#[test]
fn wire_fields_are_checked_and_named() {
    let good = state(1, &[("a", &[])])
        .entries
        .values()
        .next()
        .unwrap()
        .to_proto();
    assert!(import_from_proto(&good).is_ok());
    let mut bad = good.clone();
    bad.namespace = "Demo!".into();
    assert!(
        import_from_proto(&bad)
            .unwrap_err()
            .to_string()
            .contains("namespace")
    );
    let mut bad = good.clone();
    bad.ports[0].port = 70000;
    assert!(
        import_from_proto(&bad)
            .unwrap_err()
            .to_string()
            .contains("ports")
    );
    let mut bad = good.clone();
    bad.ports[0].protocol = "UDP".into();
    assert!(
        import_from_proto(&bad)
            .unwrap_err()
            .to_string()
            .contains("protocol")
    );
    let mut bad = good;
    bad.affinity = 99;
    assert!(
        import_from_proto(&bad)
            .unwrap_err()
            .to_string()
            .contains("affinity")
    );
}

#[test]
fn huge_or_unsafe_peer_strings_and_long_lists_are_refused_by_field() {
    let good = state(1, &[("a", &[])])
        .entries
        .values()
        .next()
        .unwrap()
        .to_proto();
    let refusal = |bad: &v1::ServiceExport| import_from_proto(bad).unwrap_err().to_string();
    let mut bad = good.clone();
    bad.ports[0].name = "p".repeat(65_536);
    let text = refusal(&bad);
    assert!(text.starts_with("field ports.name "), "{text}");
    assert!(text.len() < 200, "the value is cut: {} bytes", text.len());
    let mut bad = good.clone();
    bad.ports[0].name = "http\u{1b}[2J".into();
    assert!(!refusal(&bad).chars().any(char::is_control));
    let mut bad = good.clone();
    bad.ports = vec![bad.ports[0].clone(); 65];
    assert!(refusal(&bad).contains("field ports has 65 entries"));
    let mut bad = good.clone();
    bad.weights = vec![v1::ClusterWeight {
        cluster: "West\n".into(),
        weight: 1,
    }];
    assert!(refusal(&bad).starts_with("field weights.cluster "));
    let mut unnamed = good;
    unnamed.ports[0].name = String::new();
    assert!(
        import_from_proto(&unnamed).is_ok(),
        "an unnamed port is fine"
    );
}

#[tokio::test]
async fn receiver_persists_before_acking_and_refuses_a_gap() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(dir.path()).unwrap());
    let (tx, mut rx) = tokio::sync::mpsc::channel(8);
    let mut r = ImportReceiver::new("west", SyncPos::default());
    let mut sender = ExportSender::new("west");
    sender.hello(SyncPos::default());
    let acked = AckedViews::default();
    let full = sender
        .next_update(&state(1, &[("a", &[])]), &acked)
        .unwrap();
    let ack = r.receive(&store, &tx, full).await.unwrap();
    assert_eq!((ack.epoch, ack.version), (7, 1));
    assert_eq!(
        store.sync_pos("west").unwrap(),
        SyncPos {
            epoch: 7,
            version: 1
        }
    );
    assert!(
        store.imports().unwrap()["west"]
            .services
            .contains_key(&ServiceKey::new("demo", "a"))
    );
    assert!(matches!(
        rx.try_recv(),
        Ok(TableEvent::Imports { full: true, .. })
    ));

    let gap = v1::ExportUpdate {
        epoch: 7,
        version: 5,
        base_version: 4,
        full: false,
        ..Default::default()
    };
    assert!(
        r.receive(&store, &tx, gap)
            .await
            .unwrap_err()
            .to_string()
            .contains("resyncing")
    );
    assert_eq!(
        store.sync_pos("west").unwrap().version,
        1,
        "a refused update changes nothing"
    );
}

#[test]
fn records_round_trip() {
    let (_, i) = import_from_proto(
        &state(1, &[("a", &[])])
            .entries
            .values()
            .next()
            .unwrap()
            .to_proto(),
    )
    .unwrap();
    assert_eq!(ImportRecord::from(&i).to_import(), Some(i));
}

/// One export of `demo/a` with `healthy` of `total` endpoints ready, as
/// the bytes on the peering stream.
fn wire(healthy: u32, total: u32) -> Vec<u8> {
    use prost::Message;
    let mut entry = (**state(1, &[("a", &[])]).entries.values().next().unwrap()).clone();
    entry.healthy = healthy;
    entry.total = total;
    entry.to_proto().encode_to_vec()
}

#[test]
fn endpoint_totals_cross_the_wire_and_the_store() {
    use prost::Message;
    let decoded = v1::ServiceExport::decode(wire(4, 10).as_slice()).unwrap();
    let (_, i) = import_from_proto(&decoded).unwrap();
    assert_eq!((i.healthy, i.total), (4, 10));
    let record = ImportRecord::from(&i);
    assert_eq!(record.total_endpoints, 10);
    assert_eq!(record.to_import(), Some(i));
}

#[test]
fn a_peer_without_endpoint_totals_counts_as_fully_healthy() {
    use prost::Message;
    // An earlier release never writes field 8, and proto3 leaves a zero
    // field off the wire: a total of 0 is exactly what such a peer sends.
    let bytes = wire(4, 0);
    let (_, i) = import_from_proto(&v1::ServiceExport::decode(bytes.as_slice()).unwrap()).unwrap();
    assert_eq!((i.healthy, i.total), (4, 4));
}
