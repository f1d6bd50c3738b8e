use super::*;

fn service(yaml: &str) -> Sourced<Service> {
    let value: serde_json::Value = serde_saphyr::from_str(yaml).unwrap();
    Sourced {
        source: "test.yaml".into(),
        object: serde_json::from_value(value).unwrap(),
    }
}

fn slice(yaml: &str) -> Sourced<EndpointSlice> {
    let value: serde_json::Value = serde_saphyr::from_str(yaml).unwrap();
    Sourced {
        source: "test.yaml".into(),
        object: serde_json::from_value(value).unwrap(),
    }
}

const HELLO: &str = r#"
apiVersion: v1
kind: Service
metadata:
  name: hello
  namespace: demo
  annotations: { fedmesh.io/export: "true", fedmesh.io/export-to: "west" }
spec:
  ports:
    - { name: http, port: 8080, protocol: TCP }
    - { name: dns, port: 53, protocol: UDP }
"#;

const HELLO_SLICE: &str = r#"
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: hello-abc
  namespace: demo
  labels: { kubernetes.io/service-name: hello }
addressType: IPv4
ports: [ { name: http, port: 18080, protocol: TCP } ]
endpoints:
  - addresses: ["127.0.0.10"]
    conditions: { ready: true }
  - addresses: ["127.0.0.11"]
    conditions: { ready: false }
  - addresses: ["127.0.0.12"]
"#;

#[test]
fn service_and_slice_join_into_one_exported_service() {
    let snap = build(&[service(HELLO)], &[slice(HELLO_SLICE)]);
    let svc = &snap.services[&ServiceKey::new("demo", "hello")];
    assert_eq!(
        svc.ports,
        [PortSpec {
            name: "http".into(),
            port: 8080,
            app_protocol: crate::model::AppProtocol::Http,
        }]
    );
    assert_eq!(svc.export.as_ref().unwrap().to, ["west"]);
    assert_eq!(svc.endpoints.len(), 3);
    // Ready unless conditions.ready is false.
    assert_eq!(svc.healthy_endpoints(), 2);
    assert_eq!(svc.endpoints[0].ports["http"], 18080);
}

#[test]
fn udp_ports_of_an_exported_service_are_reported_not_carried() {
    let snap = build(&[service(HELLO)], &[]);
    assert_eq!(snap.problems.len(), 1, "{:?}", snap.problems);
    assert!(snap.problems[0].message.contains("UDP"));
    assert!(snap.problems[0].source.contains("Service demo/hello"));
}

#[test]
fn a_bad_annotation_keeps_the_service_unexported() {
    let yaml = HELLO.replace(
        r#"fedmesh.io/export-to: "west""#,
        r#"fedmesh.io/affinity: "closest""#,
    );
    let snap = build(&[service(&yaml)], &[]);
    let svc = &snap.services[&ServiceKey::new("demo", "hello")];
    assert!(svc.export.is_none());
    assert!(
        snap.problems
            .iter()
            .any(|p| p.message.contains("fedmesh.io/affinity"))
    );
}

#[test]
fn exported_service_without_tcp_ports_is_not_exported() {
    let yaml = HELLO.replace("- { name: http, port: 8080, protocol: TCP }\n", "");
    let snap = build(&[service(&yaml)], &[]);
    assert!(
        snap.services[&ServiceKey::new("demo", "hello")]
            .export
            .is_none()
    );
    assert!(
        snap.problems
            .iter()
            .any(|p| p.message.contains("no TCP port"))
    );
}

#[test]
fn slices_of_unknown_services_and_unlabelled_slices_are_handled() {
    let other = HELLO_SLICE.replace("service-name: hello", "service-name: other");
    let unlabelled = HELLO_SLICE.replace("  labels: { kubernetes.io/service-name: hello }\n", "");
    let snap = build(&[service(HELLO)], &[slice(&other), slice(&unlabelled)]);
    assert!(
        snap.services[&ServiceKey::new("demo", "hello")]
            .endpoints
            .is_empty()
    );
    assert!(
        snap.problems
            .iter()
            .any(|p| p.message.contains("kubernetes.io/service-name"))
    );
}

#[test]
fn a_missing_namespace_means_default() {
    let yaml = HELLO.replace("  namespace: demo\n", "");
    let snap = build(&[service(&yaml)], &[]);
    assert!(
        snap.services
            .contains_key(&ServiceKey::new("default", "hello"))
    );
}

#[test]
fn names_and_port_names_that_are_not_dns_labels_are_not_exported_and_say_why() {
    let bad_name = HELLO.replace("name: hello", "name: Hello_World");
    let snap = build(&[service(&bad_name)], &[]);
    let svc = &snap.services[&ServiceKey::new("demo", "Hello_World")];
    assert!(svc.export.is_none(), "shown as not exported");
    let problem = &snap.problems[0];
    assert!(
        problem
            .message
            .contains("its name \"Hello_World\" is not a DNS label"),
        "{}",
        problem.message
    );
    assert!(problem.source.contains("Hello_World"), "{}", problem.source);

    let bad_port = HELLO.replace("name: http,", &format!("name: {},", "p".repeat(70)));
    let snap = build(&[service(&bad_port)], &[]);
    assert!(
        snap.services[&ServiceKey::new("demo", "hello")]
            .export
            .is_none()
    );
    assert!(
        snap.problems
            .iter()
            .any(|p| p.message.contains("not exported: port name")),
        "{:?}",
        snap.problems
    );
}

const DB: &str = r#"
apiVersion: v1
kind: Service
metadata:
  name: db
  namespace: demo
  annotations: { fedmesh.io/export: "true" }
spec:
  clusterIP: None
  ports: [ { name: pg, port: 5432 } ]
"#;

const DB_SLICE: &str = r#"
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: db-abc
  namespace: demo
  labels: { kubernetes.io/service-name: db }
addressType: IPv4
ports: [ { name: pg, port: 15432 } ]
endpoints:
  - { addresses: ["127.0.0.20"], hostname: db-0 }
  - { addresses: ["127.0.0.21"], hostname: db-1, conditions: { ready: false } }
  - { addresses: ["127.0.0.22"] }
  - { addresses: ["127.0.0.23"], hostname: DB_3 }
"#;

#[test]
fn a_headless_service_keeps_its_endpoints_hostnames_and_reports_bad_ones() {
    let snap = build(&[service(DB), service(HELLO)], &[slice(DB_SLICE)]);
    let db = &snap.services[&ServiceKey::new("demo", "db")];
    assert!(db.headless, "clusterIP: None is headless");
    assert!(!snap.services[&ServiceKey::new("demo", "hello")].headless);
    let names: Vec<_> = db.endpoints.iter().map(|e| e.hostname.as_deref()).collect();
    assert_eq!(names, [Some("db-0"), Some("db-1"), None, Some("DB_3")]);
    let (named, _) = NamedEndpoints::from_endpoints(&db.endpoints);
    let got: Vec<_> = named
        .iter()
        .map(|e| (e.hostname.as_str(), e.ready))
        .collect();
    assert_eq!(got, [("db-0", true), ("db-1", false)]);
    let problem = snap
        .problems
        .iter()
        .find(|p| p.message.contains("DB_3"))
        .expect("the bad hostname is reported");
    assert!(problem.message.contains("not a DNS label"), "{problem}");
}
