//! The import Service plan, driven directly.

use std::collections::BTreeMap;

use super::plan::*;
use crate::model::Locality;
use crate::model::{Affinity, PortSpec, ServiceKey, VipName};
use crate::table::{ClusterEntry, GlobalService, TableSnapshot};

fn port(name: &str, port: u16) -> PortSpec {
    PortSpec {
        name: name.into(),
        port,
        app_protocol: Default::default(),
    }
}

fn entry(cluster: &str) -> ClusterEntry {
    ClusterEntry {
        cluster: cluster.into(),
        local: cluster == "east",
        locality: Locality::default(),
        healthy: 1,
        total: 1,
        stale: false,
        pinned_vip: None,
        exported_at_ms: 0,
        gateway_address: String::new(),
        ports: vec![],
        draining: false,
    }
}

fn table(services: &[(&str, &str, &[&str])]) -> TableSnapshot {
    let mut t = TableSnapshot::default();
    for (ns, name, clusters) in services {
        let key = ServiceKey::new(*ns, *name);
        t.services.insert(
            key.clone(),
            GlobalService {
                key,
                vip: None,
                ports: vec![port("http", 8080), port("admin", 9090)],
                affinity: Affinity::Local,
                weights: BTreeMap::new(),
                clusters: clusters.iter().map(|c| entry(c)).collect(),
                conflicts: vec![],
            },
        );
    }
    t
}

fn selector() -> BTreeMap<String, String> {
    [("app".to_string(), "fedgw".to_string())].into()
}

/// A VIP name in its stored form.
fn v(stored: &str) -> VipName {
    VipName::from_stored(stored).expect("a valid VIP name")
}

fn make(
    name: &VipName,
    ports: &[PortSpec],
    targets: &BTreeMap<u16, u16>,
) -> k8s_openapi::api::core::v1::Service {
    service(name, "fedmesh", "east", &selector(), ports, targets)
}

#[test]
fn every_global_and_pinned_vip_name_is_desired() {
    let want = desired(&table(&[("demo", "hello", &["east", "west"])]));
    let names: Vec<String> = want.keys().map(ToString::to_string).collect();
    assert_eq!(names, ["demo/hello", "demo/hello@east", "demo/hello@west"]);
    assert_eq!(want[&v("demo/hello@west")].len(), 2);
}

#[test]
fn every_named_endpoint_of_a_headless_service_is_desired() {
    use crate::table::headless::{EndpointEntry, HeadlessService};
    let mut t = table(&[("demo", "db", &["east", "west"])]);
    let ep = |hostname: &str| EndpointEntry {
        hostname: hostname.into(),
        ready: true,
        vip: None,
    };
    let headless = HeadlessService {
        clusters: [
            ("east".to_string(), vec![ep("db-0"), ep("db-1")]),
            ("west".to_string(), vec![ep("db-2")]),
        ]
        .into(),
    };
    t.headless.insert(ServiceKey::new("demo", "db"), headless);
    let want = desired(&t);
    let names: Vec<String> = want.keys().map(ToString::to_string).collect();
    assert_eq!(
        names,
        [
            "demo/db",
            "demo/db@east",
            "demo/db@east/db-0",
            "demo/db@east/db-1",
            "demo/db@west",
            "demo/db@west/db-2",
        ]
    );
    assert_eq!(want[&v("demo/db@west/db-2")].len(), 2, "every service port");
    let name = object_name(&v("demo/db@east/db-0"));
    assert_ne!(name, object_name(&v("demo/db@east/db-1")));
    assert_ne!(name, object_name(&v("demo/db@east")));
}

#[test]
fn object_names_are_short_dns_labels_and_distinct() {
    let long = format!("{}/{}@west", "n".repeat(63), "s".repeat(63));
    let a = object_name(&v(&long));
    assert!(a.len() <= 63 && a.starts_with("fm-"), "{a}");
    assert!(
        a.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
    );
    assert_ne!(
        object_name(&v("demo/hello")),
        object_name(&v("demo/hello@west"))
    );
    // The name is a digest of the stored form, so Services made by an
    // earlier release keep their names.
    let digest = ring::digest::digest(&ring::digest::SHA256, b"demo/hello");
    let hex: String = digest.as_ref()[..10]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(object_name(&v("demo/hello")), format!("fm-{hex}"), "stable");
}

#[test]
fn ports_are_allocated_once_and_freed_when_an_import_goes() {
    let mut ports = PortAllocator::new(20000..=20009);
    let want = desired(&table(&[("demo", "hello", &["east"])]));
    let first = ports.assign(&want);
    assert_eq!(first.len(), 2);
    let all: Vec<u16> = first.values().flat_map(|m| m.values().copied()).collect();
    assert_eq!(all.len(), 4, "two names × two ports");
    assert!(all.iter().all(|p| (20000..=20009).contains(p)));
    assert_eq!(ports.assign(&want), first, "stable across calls");
    // hello goes, payments comes: it may reuse the freed ports.
    let other = desired(&table(&[("prod", "payments", &["east"])]));
    let second = ports.assign(&other);
    assert_eq!(second.len(), 2);
    assert!(!second.contains_key(&v("demo/hello")));
}

#[test]
fn a_full_port_range_leaves_the_rest_without_ports() {
    let mut ports = PortAllocator::new(20000..=20002);
    let want = desired(&table(&[("demo", "hello", &["east"])]));
    let got = ports.assign(&want);
    let count: usize = got.values().map(BTreeMap::len).sum();
    assert_eq!(count, 3, "only three ports in the range");
}

#[test]
fn a_restart_adopts_the_ports_existing_services_target() {
    let want = desired(&table(&[("demo", "hello", &["east"])]));
    let mut before = PortAllocator::new(20000..=29999);
    // Another import took the first ports, then went away.
    before.assign(&desired(&table(&[("prod", "payments", &["east"])])));
    let mut both = want.clone();
    both.extend(desired(&table(&[("prod", "payments", &["east"])])));
    let assigned: BTreeMap<_, _> = before
        .assign(&both)
        .into_iter()
        .filter(|(name, _)| want.contains_key(name))
        .collect();
    assert!(
        assigned
            .values()
            .flat_map(|m| m.values())
            .all(|p| *p >= 20004),
        "hello's ports come after payments': {assigned:?}"
    );
    // What the API holds: hello's Services.
    let observed: BTreeMap<VipName, Observed> = want
        .iter()
        .map(|(name, p)| observe(&make(name, p, &assigned[name])).expect("an import Service"))
        .collect();
    let mut fresh = PortAllocator::new(20000..=29999);
    assert_ne!(
        fresh.assign(&want),
        assigned,
        "without adopting, ports would move"
    );
    let mut after = PortAllocator::new(20000..=29999);
    after.adopt(&observed);
    assert_eq!(after.assign(&want), assigned, "adopted ports stay");
}

#[test]
fn plan_applies_what_is_missing_or_different_and_deletes_what_is_not_wanted() {
    let want = desired(&table(&[("demo", "hello", &["east"])]));
    let mut ports = PortAllocator::new(20000..=29999);
    let assigned = ports.assign(&want);
    let sel = selector();

    let first = plan(&want, &assigned, &BTreeMap::new(), make, &sel);
    assert_eq!(first.apply.len(), 2);
    assert!(first.delete.is_empty());
    let svc = &first.apply[0];
    let spec = svc.spec.as_ref().unwrap();
    assert_eq!(spec.selector.as_ref(), Some(&sel));
    assert_eq!(spec.type_.as_deref(), Some("ClusterIP"));
    assert_eq!(spec.ports.as_ref().unwrap().len(), 2);
    let labels = svc.metadata.labels.as_ref().unwrap();
    assert_eq!(
        labels.get(MANAGED_BY.0).map(String::as_str),
        Some(MANAGED_BY.1)
    );
    assert_eq!(labels.get(OWNER_LABEL).map(String::as_str), Some("east"));

    // In sync: nothing to do.
    let mut observed: BTreeMap<VipName, Observed> =
        first.apply.iter().map(|s| observe(s).unwrap()).collect();
    assert_eq!(
        plan(&want, &assigned, &observed, make, &sel),
        Plan::default()
    );

    // Someone changed a Service's selector: it is applied again.
    observed.get_mut(&v("demo/hello")).unwrap().selector.clear();
    let again = plan(&want, &assigned, &observed, make, &sel);
    assert_eq!(again.apply.len(), 1);

    // A Service for an import that went away is deleted.
    observed.insert(v("old/gone"), Observed::default());
    let p = plan(&want, &assigned, &observed, make, &sel);
    assert_eq!(p.delete, [v("old/gone")]);
}

#[test]
fn a_service_without_the_import_annotation_is_not_observed() {
    let mut svc = make(
        &v("demo/hello"),
        &[port("http", 8080)],
        &[(8080, 20000)].into(),
    );
    assert!(observe(&svc).is_some());
    svc.metadata.annotations = None;
    assert!(observe(&svc).is_none());
}
