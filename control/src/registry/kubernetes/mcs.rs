//! The Multi-Cluster Services API objects fedmesh reads and writes
//! (KEP-1645, `multicluster.x-k8s.io/v1alpha1`): `ServiceExport` and
//! `ServiceImport`, as small serde types with a hand-written
//! [`kube::Resource`] (the CRDs ship in examples/kubernetes/crds; no crate
//! of them resolves with kube 5).
//!
//! A `ServiceExport` exports the Service of the same namespace and name
//! exactly as the `fedmesh.io/export: "true"` annotation does:
//! [`with_service_exports`] marks such Services exported before the
//! registry's one [`build`](crate::registry::build::build) runs, so every
//! rule of the annotation (ports, names, types) applies unchanged. The
//! other annotations (`export-to`, `affinity`, `weights`) still tune an
//! export made by a `ServiceExport`.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::api::core::v1::Service;
use kube::api::ObjectMeta;
use serde::{Deserialize, Serialize};

use crate::model::Problem;
use crate::registry::annotations::EXPORT;
use crate::registry::build::Sourced;

/// The API group of the MCS API.
pub const GROUP: &str = "multicluster.x-k8s.io";
/// The version fedmesh speaks.
pub const VERSION: &str = "v1alpha1";

/// `ServiceExport`: "export the Service of my namespace and name".
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ServiceExport {
    /// Standard object metadata.
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// Written by the implementation (fedmesh), never by users.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<ExportStatus>,
}

/// `ServiceExport.status`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExportStatus {
    /// `Valid` and `Conflict` (a list map keyed by `type`).
    #[serde(default)]
    pub conditions: Vec<Condition>,
}

/// A `metav1.Condition` as the CRD's schema has it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    /// `Valid`, `Conflict`, ….
    #[serde(rename = "type")]
    pub type_: String,
    /// `True`, `False` or `Unknown`.
    pub status: String,
    /// A CamelCase reason (`NoService`, `PortConflict`, …).
    pub reason: String,
    /// For people.
    #[serde(default)]
    pub message: String,
    /// RFC 3339, when `status` last changed.
    #[serde(default)]
    pub last_transition_time: String,
    /// The `metadata.generation` it was computed for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

/// `ServiceImport`: a service of the clusterset as this cluster consumes it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ServiceImport {
    /// Standard object metadata.
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// Type, VIP, ports.
    #[serde(default)]
    pub spec: ImportSpec,
    /// The exporting clusters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<ImportStatus>,
}

/// `ServiceImport.spec`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImportSpec {
    /// `ClusterSetIP` or `Headless`.
    #[serde(rename = "type", default)]
    pub type_: String,
    /// The VIP (at most one), for `ClusterSetIP`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ips: Vec<String>,
    /// The service ports.
    #[serde(default)]
    pub ports: Vec<ImportPort>,
}

/// One `ServiceImport.spec.ports` entry.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImportPort {
    /// The port name (may be empty for a single port).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// `TCP` (the only protocol fedmesh carries).
    #[serde(default)]
    pub protocol: String,
    /// The port number.
    pub port: i32,
}

/// `ServiceImport.status`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImportStatus {
    /// One entry per exporting cluster.
    #[serde(default)]
    pub clusters: Vec<ClusterStatus>,
}

/// One exporting cluster.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterStatus {
    /// The cluster's name.
    pub cluster: String,
}

/// `kube::Resource` for a namespaced `multicluster.x-k8s.io/v1alpha1` kind.
macro_rules! mcs_resource {
    ($ty:ty, $kind:literal, $plural:literal) => {
        impl kube::Resource for $ty {
            type DynamicType = ();
            type Scope = NamespaceResourceScope;
            fn kind(_: &()) -> Cow<'_, str> {
                $kind.into()
            }
            fn group(_: &()) -> Cow<'_, str> {
                GROUP.into()
            }
            fn version(_: &()) -> Cow<'_, str> {
                VERSION.into()
            }
            fn plural(_: &()) -> Cow<'_, str> {
                $plural.into()
            }
            fn meta(&self) -> &ObjectMeta {
                &self.metadata
            }
            fn meta_mut(&mut self) -> &mut ObjectMeta {
                &mut self.metadata
            }
        }
    };
}

mcs_resource!(ServiceExport, "ServiceExport", "serviceexports");
mcs_resource!(ServiceImport, "ServiceImport", "serviceimports");

/// `namespace/name` of an object (a missing namespace is `default`, as in
/// the registry's build).
fn key(meta: &ObjectMeta) -> (String, String) {
    (
        meta.namespace.clone().unwrap_or_else(|| "default".into()),
        meta.name.clone().unwrap_or_default(),
    )
}

/// The Services as the registry builds them when `ServiceExport`s are
/// taken into account.
#[derive(Debug)]
pub(crate) struct Exported<'a> {
    /// Services with a `ServiceExport`, marked exported (cloned).
    pub(crate) marked: Vec<Sourced<Service>>,
    /// Every other Service, unchanged.
    pub(crate) rest: Vec<&'a Sourced<Service>>,
    /// `ServiceExport`s without a Service of their namespace and name, as
    /// problems (`fedctl check`; the status says `NoService`).
    pub(crate) orphans: Vec<Problem>,
}

/// The Services with a `ServiceExport` of the same namespace and name,
/// marked `fedmesh.io/export: "true"` (either the annotation or the
/// `ServiceExport` is enough; both may be present), every other Service
/// unchanged, and the `ServiceExport`s that name no Service. Only the
/// marked ones are cloned.
pub(crate) fn with_service_exports<'a>(
    services: impl Iterator<Item = &'a Sourced<Service>>,
    exports: impl Iterator<Item = &'a ServiceExport>,
) -> Exported<'a> {
    let exported: BTreeSet<(String, String)> = exports.map(|e| key(&e.metadata)).collect();
    let mut marked = Vec::new();
    let mut rest = Vec::new();
    let mut orphans = exported.clone();
    for s in services {
        orphans.remove(&key(&s.object.metadata));
        let already = s
            .object
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(EXPORT))
            .is_some_and(|v| v.trim() == "true");
        if already || !exported.contains(&key(&s.object.metadata)) {
            rest.push(s);
            continue;
        }
        let mut s = s.clone();
        s.object
            .metadata
            .annotations
            .get_or_insert_with(BTreeMap::new)
            .insert(EXPORT.to_string(), "true".to_string());
        marked.push(s);
    }
    let orphans = orphans
        .into_iter()
        .map(|(ns, name)| Problem {
            source: format!("ServiceExport {ns}/{name}"),
            message: format!(
                "no Service {ns}/{name} to export; create the Service or delete the ServiceExport"
            ),
        })
        .collect();
    Exported {
        marked,
        rest,
        orphans,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn svc(ns: &str, name: &str, export: Option<&str>) -> Sourced<Service> {
        Sourced {
            source: String::new(),
            object: Service {
                metadata: ObjectMeta {
                    name: Some(name.into()),
                    namespace: Some(ns.into()),
                    annotations: export.map(|v| [(EXPORT.to_string(), v.to_string())].into()),
                    ..Default::default()
                },
                ..Default::default()
            },
        }
    }

    fn export(ns: &str, name: &str) -> ServiceExport {
        ServiceExport {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some(ns.into()),
                ..Default::default()
            },
            status: None,
        }
    }

    fn exported(s: &Sourced<Service>) -> Option<&str> {
        s.object
            .metadata
            .annotations
            .as_ref()?
            .get(EXPORT)
            .map(String::as_str)
    }

    #[test]
    fn a_service_export_marks_its_service_exported_and_nothing_else() {
        let services = [svc("demo", "hello", None), svc("demo", "other", None)];
        let exports = [export("demo", "hello"), export("prod", "hello")];
        let Exported {
            marked,
            rest,
            orphans,
        } = with_service_exports(services.iter(), exports.iter());
        assert_eq!(marked.len(), 1);
        assert_eq!(exported(&marked[0]), Some("true"));
        assert_eq!(marked[0].object.metadata.name.as_deref(), Some("hello"));
        assert_eq!(
            rest.len(),
            1,
            "other and the unmatched namespace stay as they are"
        );
        assert_eq!(exported(rest[0]), None);
        assert_eq!(orphans.len(), 1, "prod/hello has no Service");
        assert_eq!(orphans[0].source, "ServiceExport prod/hello");
        assert!(orphans[0].message.contains("create the Service"));
    }

    #[test]
    fn an_annotation_false_is_overridden_by_a_service_export() {
        let services = [svc("demo", "hello", Some("false"))];
        let exports = [export("demo", "hello")];
        let marked = with_service_exports(services.iter(), exports.iter()).marked;
        assert_eq!(exported(&marked[0]), Some("true"), "either one is enough");
    }

    #[test]
    fn both_present_leaves_the_service_untouched() {
        let services = [svc("demo", "hello", Some("true"))];
        let exports = [export("demo", "hello")];
        let e = with_service_exports(services.iter(), exports.iter());
        assert!(e.marked.is_empty(), "no clone needed");
        assert_eq!(e.rest.len(), 1);
        assert!(e.orphans.is_empty());
    }

    #[test]
    fn objects_parse_from_the_api_json() {
        let se: ServiceExport = serde_json::from_value(serde_json::json!({
            "apiVersion": "multicluster.x-k8s.io/v1alpha1", "kind": "ServiceExport",
            "metadata": {"name": "hello", "namespace": "demo"},
            "status": {"conditions": [{"type": "Valid", "status": "True", "reason": "Valid",
                "message": "", "lastTransitionTime": "2026-01-01T00:00:00Z"}]}
        }))
        .expect("a ServiceExport");
        let conditions = se.status.expect("status").conditions;
        assert_eq!(conditions[0].type_, "Valid");
        assert_eq!(conditions[0].last_transition_time, "2026-01-01T00:00:00Z");
        let si = ServiceImport {
            spec: ImportSpec {
                type_: "ClusterSetIP".into(),
                ips: vec!["10.0.0.1".into()],
                ports: vec![ImportPort {
                    name: "http".into(),
                    protocol: "TCP".into(),
                    port: 8080,
                }],
            },
            ..Default::default()
        };
        let json = serde_json::to_value(&si).expect("serializes");
        assert_eq!(json["spec"]["type"], "ClusterSetIP");
        assert_eq!(json["spec"]["ips"][0], "10.0.0.1");
        assert_eq!(
            <ServiceImport as kube::Resource>::url_path(&(), Some("demo")),
            "/apis/multicluster.x-k8s.io/v1alpha1/namespaces/demo/serviceimports"
        );
    }
}
