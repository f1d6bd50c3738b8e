use super::*;
use crate::model::Affinity;
use crate::model::{EndpointSpec, LocalService};

fn svc(name: &str, to: &[&str], ready: usize) -> LocalService {
    LocalService {
        key: ServiceKey::new("demo", name),
        ports: vec![PortSpec {
            name: "http".into(),
            port: 8080,
            app_protocol: Default::default(),
        }],
        export: Some(ExportSpec {
            to: to.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        }),
        endpoints: (0..ready)
            .map(|i| EndpointSpec {
                address: format!("127.0.0.{}", i + 1).parse().unwrap(),
                ready: true,
                ports: Default::default(),
                hostname: Some(format!("{name}-{i}")),
            })
            .collect(),
        headless: false,
    }
}

fn snapshot(services: Vec<LocalService>) -> LocalSnapshot {
    LocalSnapshot {
        services: services.into_iter().map(|s| (s.key.clone(), s)).collect(),
        problems: vec![],
        pending: false,
        ..LocalSnapshot::default()
    }
}

#[test]
fn unchanged_entries_keep_their_identity_and_export_time() {
    let mut times = BTreeMap::new();
    let (first, added, _) = compute(
        &snapshot(vec![svc("a", &[], 1), svc("b", &[], 1)]),
        false,
        &View::default(),
        &mut times,
    );
    assert_eq!(added.len(), 2);
    let first: View = Arc::new(first);
    let (second, added, removed) = compute(
        &snapshot(vec![svc("a", &[], 1), svc("b", &[], 2)]),
        false,
        &first,
        &mut times,
    );
    assert!(added.is_empty() && removed.is_empty());
    let a = ServiceKey::new("demo", "a");
    assert!(Arc::ptr_eq(&first[&a], &second[&a]));
    let second: View = Arc::new(second);
    let (upserts, removals) = diff(&first, &second);
    assert_eq!(upserts.len(), 1, "only b's healthy count changed");
    assert_eq!(upserts[0].healthy, 2);
    assert!(removals.is_empty());
}

#[test]
fn unexporting_forgets_the_export_time() {
    let mut times = BTreeMap::new();
    let (first, _, _) = compute(
        &snapshot(vec![svc("a", &[], 1)]),
        false,
        &View::default(),
        &mut times,
    );
    let mut unexported = svc("a", &[], 1);
    unexported.export = None;
    let (second, _, removed) = compute(
        &snapshot(vec![unexported]),
        false,
        &Arc::new(first.clone()),
        &mut times,
    );
    assert!(second.is_empty());
    assert_eq!(removed, [ServiceKey::new("demo", "a")]);
    let (upserts, removals) = diff(&Arc::new(first), &Arc::new(second));
    assert!(upserts.is_empty());
    assert_eq!(removals, [ServiceKey::new("demo", "a")]);
}

#[test]
fn export_to_is_enforced_per_peer() {
    let mut times = BTreeMap::new();
    let (entries, _, _) = compute(
        &snapshot(vec![svc("open", &[], 1), svc("westonly", &["west"], 1)]),
        false,
        &View::default(),
        &mut times,
    );
    let state = ExportState::new(1, 1, entries);
    let names = |v: View| v.keys().map(|k| k.name.clone()).collect::<Vec<_>>();
    assert_eq!(names(state.view_for("west")), ["open", "westonly"]);
    assert_eq!(names(state.view_for("eu")), ["open"]);
}

#[test]
fn wire_form_carries_every_field() {
    let mut s = svc("a", &[], 3);
    s.export.as_mut().unwrap().affinity = Affinity::Remote;
    s.export.as_mut().unwrap().weights.insert("east".into(), 90);
    let mut times = BTreeMap::new();
    let (entries, _, _) = compute(&snapshot(vec![s]), false, &View::default(), &mut times);
    let p = entries.values().next().unwrap().to_proto();
    assert_eq!((p.namespace.as_str(), p.name.as_str()), ("demo", "a"));
    assert_eq!(p.ports[0].port, 8080);
    assert_eq!(p.ports[0].protocol, "TCP");
    assert_eq!(p.affinity, v1::Affinity::Remote as i32);
    assert_eq!(p.weights[0].weight, 90);
    assert_eq!(p.healthy_endpoints, 3);
    assert!(p.exported_at_unix_ms > 0);
}

#[test]
fn not_ready_endpoints_count_in_the_total_but_not_as_healthy() {
    let mut s = svc("a", &[], 10);
    for e in s.endpoints.iter_mut().skip(4) {
        e.ready = false;
    }
    let mut times = BTreeMap::new();
    let (entries, _, _) = compute(&snapshot(vec![s]), false, &View::default(), &mut times);
    let p = entries.values().next().unwrap().to_proto();
    assert_eq!((p.healthy_endpoints, p.total_endpoints), (4, 10));
}

#[test]
fn a_headless_export_carries_its_named_endpoints_on_the_wire() {
    let mut db = svc("db", &[], 2);
    db.headless = true;
    db.endpoints[1].ready = false;
    let mut times = BTreeMap::new();
    let (entries, _, _) = compute(
        &snapshot(vec![db, svc("web", &[], 1)]),
        false,
        &View::default(),
        &mut times,
    );
    let wire = entries[&ServiceKey::new("demo", "db")].to_proto();
    assert!(wire.headless);
    let names: Vec<_> = wire
        .named_endpoints
        .iter()
        .map(|e| (e.hostname.as_str(), e.ready))
        .collect();
    assert_eq!(names, [("db-0", true), ("db-1", false)]);
    let web = entries[&ServiceKey::new("demo", "web")].to_proto();
    assert!(!web.headless && web.named_endpoints.is_empty(), "{web:?}");
}

#[test]
fn a_drain_marks_every_entry_so_each_is_sent_again() {
    let mut times = BTreeMap::new();
    let services = snapshot(vec![svc("a", &[], 1), svc("b", &["west"], 1)]);
    let (serving, _, _) = compute(&services, false, &View::default(), &mut times);
    let serving: View = Arc::new(serving);
    let (drained, added, removed) = compute(&services, true, &serving, &mut times);
    assert!(added.is_empty() && removed.is_empty(), "export times stay");
    assert!(
        drained
            .values()
            .all(|e| e.draining && e.to_proto().draining)
    );
    let (upserts, removals) = diff(&serving, &Arc::new(drained));
    assert_eq!(upserts.len(), 2, "every export goes out again, marked");
    assert!(removals.is_empty(), "a drain withdraws nothing");
}
