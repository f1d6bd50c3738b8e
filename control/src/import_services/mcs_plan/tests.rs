//! The MCS object plan, driven directly.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use k8s_openapi::api::core::v1::{Service, ServicePort, ServiceSpec};
use kube::api::ObjectMeta;

use super::*;
use crate::model::{Affinity, Locality};
use crate::table::ClusterEntry;

fn port(name: &str, port: u16) -> PortSpec {
    PortSpec {
        app_protocol: Default::default(),
        name: name.into(),
        port,
    }
}

fn entry(cluster: &str, ports: Vec<PortSpec>) -> ClusterEntry {
    ClusterEntry {
        draining: false,
        cluster: cluster.into(),
        local: cluster == "east",
        locality: Locality::default(),
        healthy: 1,
        total: 1,
        stale: false,
        pinned_vip: None,
        exported_at_ms: 0,
        gateway_address: String::new(),
        ports,
    }
}

fn global(ns: &str, name: &str, clusters: Vec<ClusterEntry>) -> GlobalService {
    let key = ServiceKey::new(ns, name);
    GlobalService {
        key,
        vip: Some(Ipv4Addr::new(10, 96, 0, 7)),
        ports: clusters
            .first()
            .map(|c| c.ports.clone())
            .unwrap_or_default(),
        affinity: Affinity::Local,
        weights: BTreeMap::new(),
        clusters,
        conflicts: vec![],
    }
}

fn table(services: Vec<GlobalService>) -> TableSnapshot {
    TableSnapshot {
        version: 1,
        services: services.into_iter().map(|s| (s.key.clone(), s)).collect(),
        ..Default::default()
    }
}

fn hello(clusters: &[&str]) -> GlobalService {
    let entries = clusters
        .iter()
        .map(|c| entry(c, vec![port("http", 8080)]))
        .collect();
    global("demo", "hello", entries)
}

fn k8s_service(type_: Option<&str>, ports: &[(&str, i32, &str)]) -> Service {
    Service {
        metadata: ObjectMeta {
            name: Some("hello".into()),
            namespace: Some("demo".into()),
            ..Default::default()
        },
        spec: Some(ServiceSpec {
            type_: type_.map(Into::into),
            ports: Some(
                ports
                    .iter()
                    .map(|(name, port, protocol)| ServicePort {
                        name: Some((*name).into()),
                        port: *port,
                        protocol: Some((*protocol).into()),
                        ..Default::default()
                    })
                    .collect(),
            ),
            ..Default::default()
        }),
        status: None,
    }
}

#[test]
fn a_service_import_carries_type_vip_ports_and_exporting_clusters() {
    let si = service_import(&hello(&["west", "east"]), false);
    assert_eq!(si.metadata.namespace.as_deref(), Some("demo"));
    assert_eq!(si.metadata.name.as_deref(), Some("hello"));
    assert_eq!(si.spec.type_, "ClusterSetIP");
    assert_eq!(si.spec.ips, ["10.96.0.7"]);
    assert_eq!(si.spec.ports.len(), 1);
    assert_eq!(
        (si.spec.ports[0].name.as_str(), si.spec.ports[0].port),
        ("http", 8080)
    );
    let clusters: Vec<&str> = si
        .status
        .as_ref()
        .expect("status")
        .clusters
        .iter()
        .map(|c| c.cluster.as_str())
        .collect();
    assert_eq!(
        clusters,
        ["east", "west"],
        "sorted, a list map keyed by cluster"
    );
    assert!(is_ours(&si));
}

#[test]
fn import_type_follows_the_headless_flag() {
    assert_eq!(import_type(false), ImportType::ClusterSetIp);
    assert_eq!(import_type(true), ImportType::Headless);
    let mut no_vip = hello(&["east"]);
    no_vip.vip = None;
    assert!(
        service_import(&no_vip, false).spec.ips.is_empty(),
        "no VIP yet: no ips"
    );
    let headless = service_import(&hello(&["east"]), true);
    assert_eq!(headless.spec.type_, "Headless");
    assert!(
        headless.spec.ips.is_empty(),
        "a headless import lists no ips"
    );
}

#[test]
fn imports_are_created_updated_left_and_deleted() {
    let t = table(vec![hello(&["east"])]);
    let first = plan_imports(&t, &BTreeMap::new());
    assert_eq!(first.apply.len(), 1);
    let mut observed: BTreeMap<ServiceKey, ServiceImport> = first
        .apply
        .iter()
        .map(|si| (ServiceKey::new("demo", "hello"), si.clone()))
        .collect();
    assert_eq!(
        plan_imports(&t, &observed),
        ImportPlan::default(),
        "in sync"
    );

    // West starts exporting too: the cluster list changes.
    let both = table(vec![hello(&["east", "west"])]);
    assert_eq!(plan_imports(&both, &observed).apply.len(), 1);

    // The export goes: ours is deleted.
    let empty = table(vec![]);
    assert_eq!(
        plan_imports(&empty, &observed).delete,
        [ServiceKey::new("demo", "hello")]
    );

    // Someone else's import of the same name is never changed or deleted.
    let key = ServiceKey::new("demo", "hello");
    if let Some(si) = observed.get_mut(&key) {
        si.metadata.labels = None;
        si.spec.ips.clear();
    }
    let p = plan_imports(&t, &observed);
    assert!(p.apply.is_empty() && p.delete.is_empty());
    assert_eq!(p.foreign, std::slice::from_ref(&key));
    assert!(plan_imports(&empty, &observed).delete.is_empty());
}

fn find<'a>(cs: &'a [Condition], type_: &str) -> &'a Condition {
    cs.iter()
        .find(|c| c.type_ == type_)
        .expect("condition present")
}

#[test]
fn an_export_without_its_service_is_not_valid() {
    let key = ServiceKey::new("demo", "hello");
    let cs = export_conditions(&key, None, &table(vec![]));
    let valid = find(&cs, "Valid");
    assert_eq!(
        (valid.status.as_str(), valid.reason.as_str()),
        ("False", "NoService")
    );
    assert_eq!(find(&cs, "Conflict").reason, "NoConflicts");
}

#[test]
fn external_name_and_unexportable_services_are_not_valid() {
    let key = ServiceKey::new("demo", "hello");
    let external = k8s_service(Some("ExternalName"), &[("http", 80, "TCP")]);
    let cs = export_conditions(&key, Some(&external), &table(vec![]));
    assert_eq!(find(&cs, "Valid").reason, "InvalidServiceType");
    let udp_only = k8s_service(None, &[("dns", 53, "UDP")]);
    let cs = export_conditions(&key, Some(&udp_only), &table(vec![]));
    let valid = find(&cs, "Valid");
    assert_eq!(
        (valid.status.as_str(), valid.reason.as_str()),
        ("False", "InvalidService")
    );
    assert!(valid.message.contains("no TCP port"), "{}", valid.message);
    let ok = k8s_service(None, &[("http", 8080, "TCP")]);
    let cs = export_conditions(&key, Some(&ok), &table(vec![hello(&["east"])]));
    assert_eq!(find(&cs, "Valid").status, "True");
    assert_eq!(find(&cs, "Conflict").status, "False");
}

#[test]
fn a_valid_export_the_table_does_not_carry_yet_is_pending() {
    let key = ServiceKey::new("demo", "hello");
    let ok = k8s_service(None, &[("http", 8080, "TCP")]);
    let cs = export_conditions(&key, Some(&ok), &table(vec![]));
    let valid = find(&cs, "Valid");
    assert_eq!(
        (valid.status.as_str(), valid.reason.as_str()),
        ("Unknown", "Pending")
    );
    // West's export alone is not this cluster's.
    let cs = export_conditions(&key, Some(&ok), &table(vec![hello(&["west"])]));
    assert_eq!(find(&cs, "Valid").status, "Unknown");
}

#[test]
fn clusters_exporting_other_ports_are_a_conflict_naming_them() {
    let key = ServiceKey::new("demo", "hello");
    let s = global(
        "demo",
        "hello",
        vec![
            entry("west", vec![port("http", 8080)]),
            entry("east", vec![port("http", 9090)]),
        ],
    );
    let ok = k8s_service(None, &[("http", 9090, "TCP")]);
    let cs = export_conditions(&key, Some(&ok), &table(vec![s]));
    let c = find(&cs, "Conflict");
    assert_eq!(
        (c.status.as_str(), c.reason.as_str()),
        ("True", "PortConflict")
    );
    assert!(c.message.contains("west [http:8080]"), "{}", c.message);
    assert!(c.message.contains("east [http:9090]"), "{}", c.message);
}

#[test]
fn transition_times_move_only_when_a_status_changes() {
    let key = ServiceKey::new("demo", "hello");
    let fresh = || export_conditions(&key, None, &table(vec![]));
    let first = stamp(fresh(), &[], "2026-01-01T00:00:00Z", Some(1)).expect("a first write");
    assert!(
        first
            .iter()
            .all(|c| c.last_transition_time == "2026-01-01T00:00:00Z")
    );
    assert_eq!(first[0].observed_generation, Some(1));
    assert_eq!(
        stamp(fresh(), &first, "2026-01-01T00:01:00Z", Some(1)),
        None,
        "nothing new"
    );
    let ok = k8s_service(None, &[("http", 8080, "TCP")]);
    let now_valid = export_conditions(&key, Some(&ok), &table(vec![hello(&["east"])]));
    let second = stamp(now_valid, &first, "2026-01-01T00:02:00Z", Some(1)).expect("a change");
    assert_eq!(
        find(&second, "Valid").last_transition_time,
        "2026-01-01T00:02:00Z"
    );
    assert_eq!(
        find(&second, "Conflict").last_transition_time,
        "2026-01-01T00:00:00Z",
        "Conflict stayed False"
    );
}

#[test]
fn only_the_watched_namespaces_are_planned() {
    let t = table(vec![
        global(
            "demo",
            "hello",
            vec![entry("west", vec![port("http", 8080)])],
        ),
        global(
            "other",
            "hello",
            vec![entry("west", vec![port("http", 8080)])],
        ),
    ]);
    let demo = vec!["demo".to_string()];
    let demo_only = scoped(&t, &demo);
    let keys: Vec<String> = demo_only.services.keys().map(ToString::to_string).collect();
    assert_eq!(keys, ["demo/hello"]);
    let plan = plan_imports(&demo_only, &BTreeMap::new());
    assert_eq!(plan.apply.len(), 1);
    assert_eq!(scoped(&t, &[]).services.len(), 2, "empty: every namespace");
    assert_eq!(scopes(&demo), [Some("demo".to_string())]);
    assert_eq!(scopes(&[]), [None]);
}
