//! The Kubernetes registry's view, driven with watch events directly (no
//! API server runs here; the end-to-end tests add a fake one speaking the
//! API's JSON over HTTP).

use std::time::Duration;

use super::*;
use crate::model::ServiceKey;
use crate::registry::static_files::StaticFiles;

const HELLO: &str = r#"
apiVersion: v1
kind: Service
metadata:
  name: hello
  namespace: demo
  annotations: { fedmesh.io/export: "true", fedmesh.io/affinity: remote }
spec:
  ports: [ { name: http, port: 8080, protocol: TCP } ]
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
  - addresses: ["10.0.0.1"]
  - addresses: ["10.0.0.2"]
    conditions: { ready: false }
"#;

const OTHER: &str = r#"
apiVersion: v1
kind: Service
metadata: { name: other, namespace: prod }
spec:
  ports: [ { port: 80 } ]
"#;

fn object<K: serde::de::DeserializeOwned>(yaml: &str) -> K {
    let value: serde_json::Value = serde_saphyr::from_str(yaml).expect("test YAML");
    serde_json::from_value(value).expect("test object")
}

fn svc(e: fn(Service) -> Event<Service>, yaml: &str) -> Watched {
    Watched::Service(Source::Services(0), e(object(yaml)))
}

fn slice(e: fn(EndpointSlice) -> Event<EndpointSlice>, yaml: &str) -> Watched {
    Watched::Slice(Source::Slices(0), e(object(yaml)))
}

/// A view whose first lists are done, with nothing in them.
pub(super) fn listed_view() -> View {
    listed(&[], &[])
}

/// A view whose first lists (of `services` and `slices`) are done.
fn listed(services: &[&str], slices: &[&str]) -> View {
    let mut view = View::new(1);
    view.apply(Watched::Service(Source::Services(0), Event::Init));
    for s in services {
        view.apply(svc(Event::InitApply, s));
    }
    view.apply(Watched::Service(Source::Services(0), Event::InitDone));
    view.apply(Watched::Slice(Source::Slices(0), Event::Init));
    for s in slices {
        view.apply(slice(Event::InitApply, s));
    }
    view.apply(Watched::Slice(Source::Slices(0), Event::InitDone));
    view.apply(Watched::Export(Source::Exports(0), Event::Init));
    view.apply(Watched::Export(Source::Exports(0), Event::InitDone));
    view
}

fn hello() -> ServiceKey {
    ServiceKey::new("demo", "hello")
}

#[test]
fn the_view_is_pending_until_services_and_slices_are_both_listed() {
    let mut view = View::new(1);
    assert!(view.snapshot().pending);
    view.apply(Watched::Service(Source::Services(0), Event::Init));
    view.apply(svc(Event::InitApply, HELLO));
    view.apply(Watched::Service(Source::Services(0), Event::InitDone));
    // No ServiceExport CRD: that watcher counts as listed, and empty.
    view.apply(Watched::NoExportCrd(Source::Exports(0)));
    let snap = view.snapshot();
    assert!(snap.pending, "slices are not listed yet");
    assert!(
        snap.problems
            .iter()
            .any(|p| p.message.contains("not finished"))
    );
    view.apply(Watched::Slice(Source::Slices(0), Event::Init));
    assert!(view.apply(Watched::Slice(Source::Slices(0), Event::InitDone)));
    let snap = view.snapshot();
    assert!(!snap.pending);
    assert!(snap.problems.is_empty(), "{:?}", snap.problems);
    assert!(snap.services[&hello()].export.is_some());
}

#[test]
fn add_modify_delete_events_change_the_view() {
    let mut view = listed(&[], &[]);
    assert!(view.snapshot().services.is_empty());
    // add
    assert!(view.apply(svc(Event::Apply, HELLO)));
    assert!(view.apply(slice(Event::Apply, HELLO_SLICE)));
    let snap = view.snapshot();
    assert_eq!(snap.services[&hello()].healthy_endpoints(), 1);
    // modify: drop the export annotation
    let unexported = HELLO.replace("fedmesh.io/export: \"true\", ", "");
    assert!(view.apply(svc(Event::Apply, &unexported)));
    assert!(view.snapshot().services[&hello()].export.is_none());
    // delete
    assert!(view.apply(svc(Event::Delete, &unexported)));
    assert!(!view.snapshot().services.contains_key(&hello()));
}

#[test]
fn a_relist_drops_what_was_deleted_while_the_watch_was_down() {
    let mut view = listed(&[HELLO, OTHER], &[HELLO_SLICE]);
    assert_eq!(view.snapshot().services.len(), 2);
    view.apply(Watched::Service(Source::Services(0), Event::Init));
    view.apply(svc(Event::InitApply, OTHER));
    assert_eq!(
        view.snapshot().services.len(),
        2,
        "old objects serve during a relist"
    );
    assert!(view.apply(Watched::Service(Source::Services(0), Event::InitDone)));
    let snap = view.snapshot();
    assert!(!snap.services.contains_key(&hello()));
    assert!(!snap.pending, "a relist after the first is not pending");
}

#[test]
fn a_watch_error_is_a_problem_until_the_watch_recovers() {
    let mut view = listed(&[HELLO], &[]);
    assert!(view.apply(Watched::Failed(Source::Slices(0), "403 Forbidden".into())));
    let snap = view.snapshot();
    assert!(
        snap.services.contains_key(&hello()),
        "last known objects keep serving"
    );
    let problem = snap.problems.iter().find(|p| p.source == "kubernetes API");
    let message = &problem.expect("error reported").message;
    assert!(
        message.contains("EndpointSlices") && message.contains("403"),
        "{message}"
    );
    assert!(message.contains("rbac.yaml"), "says what to do: {message}");
    // The same error again is not a change; the next event clears it.
    assert!(!view.apply(Watched::Failed(Source::Slices(0), "403 Forbidden".into())));
    assert!(view.apply(Watched::Slice(Source::Slices(0), Event::Init)));
    assert!(view.snapshot().problems.is_empty());
}

#[test]
fn every_namespace_must_be_listed_before_the_view_is_complete() {
    let mut view = View::new(2);
    for i in 0..2 {
        view.apply(Watched::Service(Source::Services(i), Event::Init));
        view.apply(Watched::Service(Source::Services(i), Event::InitDone));
        view.apply(Watched::NoExportCrd(Source::Exports(i)));
    }
    view.apply(Watched::Slice(Source::Slices(0), Event::Init));
    view.apply(Watched::Slice(Source::Slices(0), Event::InitDone));
    assert!(
        view.snapshot().pending,
        "namespace 1's slices are not listed"
    );
    view.apply(Watched::Slice(Source::Slices(1), Event::Init));
    view.apply(Watched::Slice(Source::Slices(1), Event::InitDone));
    assert!(!view.snapshot().pending);
}

#[tokio::test]
async fn watch_events_give_the_same_services_as_the_static_registry() {
    // The same objects, once as manifest files and once as watch events.
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(
        dir.path().join("hello.yaml"),
        format!("{HELLO}---{HELLO_SLICE}---{OTHER}"),
    )
    .expect("write manifest");
    let (tx, mut rx) = watch::channel(Arc::new(LocalSnapshot::default()));
    let task =
        tokio::spawn(Box::new(StaticFiles::new(dir.path(), Duration::from_millis(50))).run(tx));
    tokio::time::timeout(Duration::from_secs(10), rx.changed())
        .await
        .expect("static registry publishes")
        .expect("channel open");
    let from_files = rx.borrow().clone();
    task.abort();

    let mut view = listed(&[OTHER], &[]);
    view.apply(svc(Event::Apply, HELLO));
    view.apply(slice(Event::Apply, HELLO_SLICE));
    let from_api = view.snapshot();
    assert_eq!(from_api.services, from_files.services);
    assert_eq!(from_api.services.len(), 2);
}

#[test]
fn fedmeshs_own_import_services_are_not_local_services() {
    let ours = r#"
apiVersion: v1
kind: Service
metadata:
  name: fm-0123456789abcdef0123
  namespace: fedmesh
  labels: { app.kubernetes.io/managed-by: fedmesh, fedmesh.io/cluster: east }
  annotations: { fedmesh.io/import: demo/hello }
spec:
  ports: [ { name: tcp-8080, port: 8080, targetPort: 20000 } ]
"#;
    let view = listed(&[ours, OTHER], &[]);
    assert_eq!(view.snapshot().services.len(), 1, "only prod/other");
    let mut view = listed(&[OTHER], &[]);
    assert!(!view.apply(svc(Event::Apply, ours)));
    assert_eq!(view.snapshot().services.len(), 1);
}

fn service_export(ns: &str, name: &str) -> ServiceExport {
    object(&format!(
        "apiVersion: multicluster.x-k8s.io/v1alpha1\nkind: ServiceExport\nmetadata: {{ name: {name}, namespace: {ns} }}\n"
    ))
}

#[test]
fn a_service_export_exports_a_service_without_the_annotation() {
    let plain = HELLO.replace("fedmesh.io/export: \"true\", ", "");
    let mut view = listed(&[&plain], &[HELLO_SLICE]);
    assert!(view.snapshot().services[&hello()].export.is_none());
    let export = service_export("demo", "hello");
    assert!(view.apply(Watched::Export(
        Source::Exports(0),
        Event::Apply(export.clone())
    )));
    let snap = view.snapshot();
    let exported = &snap.services[&hello()];
    let spec = exported
        .export
        .as_ref()
        .expect("exported by the ServiceExport");
    assert_eq!(
        spec.affinity,
        crate::model::Affinity::Remote,
        "other annotations still apply"
    );
    assert_eq!(exported.healthy_endpoints(), 1);
    // Deleting the ServiceExport withdraws the export.
    assert!(view.apply(Watched::Export(Source::Exports(0), Event::Delete(export))));
    assert!(view.snapshot().services[&hello()].export.is_none());
}

#[test]
fn a_service_export_in_another_namespace_exports_nothing() {
    let plain = HELLO.replace("fedmesh.io/export: \"true\", ", "");
    let mut view = listed(&[&plain], &[]);
    view.apply(Watched::Export(
        Source::Exports(0),
        Event::Apply(service_export("prod", "hello")),
    ));
    assert!(view.snapshot().services[&hello()].export.is_none());
}

#[test]
fn the_view_waits_for_the_service_export_list() {
    let mut view = View::new(1);
    for e in [Event::Init, Event::InitDone] {
        view.apply(Watched::Service(Source::Services(0), e));
    }
    for e in [Event::Init, Event::InitDone] {
        view.apply(Watched::Slice(Source::Slices(0), e));
    }
    assert!(view.snapshot().pending, "ServiceExports not listed yet");
    assert!(view.apply(Watched::NoExportCrd(Source::Exports(0))));
    assert!(!view.snapshot().pending);
    assert!(
        !view.apply(Watched::NoExportCrd(Source::Exports(0))),
        "a retry that finds no CRD again is no change"
    );
}
