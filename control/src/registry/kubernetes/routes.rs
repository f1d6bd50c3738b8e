//! HTTP routes from the Kubernetes API: Gateway API `HTTPRoute`s
//! (`gateway.networking.k8s.io/v1`) and fedmesh `FaultInjection`s
//! (`fedmesh.io/v1alpha1`), watched when their CRDs are installed
//! (DESIGN.md, HTTP-aware services).
//!
//! Both are read as untyped objects ([`DynamicObject`]): the kube-rs
//! `gateway-api` crate builds against kube 4 and k8s-openapi 0.28, not the
//! kube 5 this workspace uses, and the static registry's parser
//! (`fedmesh_proto::routes`) already checks the JSON field by field. So a
//! route reads the same whether it comes from a file or from the API:
//! [`document`] keeps the fields a file would have, and the registry hands
//! the documents to [`crate::routes::RouteView::build`].
//!
//! Each watcher first asks whether its CRD exists (a list of one object).
//! A 404 means it does not: no watch is opened, one info line is logged,
//! the kind counts as listed and empty, and the question is asked again
//! every [`DISCOVERY_RETRY`]. Once the CRD is there, a kube-runtime
//! watcher follows it (with its backoff and its relist after a 410); a
//! later 404 (the CRD was removed) goes back to asking.

use std::time::Duration;

use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use kube::api::{ApiResource, DynamicObject, GroupVersionKind, ListParams};
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use kube::{Api, Client};
use serde_json::{Map, Value};
use tokio::sync::mpsc;
use tracing::info;

use fedmesh_proto::routes::{FAULT_API_VERSION, FAULT_KIND, ROUTE_API_VERSION, ROUTE_KIND};

/// How often a missing CRD is looked for again: installing it is rare, so
/// a slow retry costs the API server next to nothing.
pub const DISCOVERY_RETRY: Duration = Duration::from_secs(60);

/// Events buffered between a watcher task and the registry.
const QUEUE: usize = 256;

/// The pause before asking again when a watcher's stream ended on its own
/// (kube-runtime's does not; this only bounds the loop if it ever did).
const ENDED_PAUSE: Duration = Duration::from_secs(1);

/// The two route kinds the registry watches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum RouteKind {
    /// `gateway.networking.k8s.io/v1` `HTTPRoute`.
    HttpRoute,
    /// `fedmesh.io/v1alpha1` `FaultInjection`.
    FaultInjection,
}

impl RouteKind {
    /// The kind's name, as in `kind:`.
    pub fn kind(self) -> &'static str {
        match self {
            RouteKind::HttpRoute => ROUTE_KIND,
            RouteKind::FaultInjection => FAULT_KIND,
        }
    }

    fn api_version(self) -> &'static str {
        match self {
            RouteKind::HttpRoute => ROUTE_API_VERSION,
            RouteKind::FaultInjection => FAULT_API_VERSION,
        }
    }

    /// The API resource (group, version, plural) of the kind.
    pub fn resource(self) -> ApiResource {
        let (group, version) = self
            .api_version()
            .split_once('/')
            .unwrap_or(("", self.api_version()));
        let plural = match self {
            RouteKind::HttpRoute => "httproutes",
            RouteKind::FaultInjection => "faultinjections",
        };
        ApiResource::from_gvk_with_plural(
            &GroupVersionKind::gvk(group, version, self.kind()),
            plural,
        )
    }
}

/// What a route watcher reports (one at a time, short-lived, so the size
/// difference between variants costs nothing).
#[derive(Debug)]
#[allow(clippy::large_enum_variant)]
pub enum RouteItem {
    /// A watch event.
    Event(Event<DynamicObject>),
    /// The CRD is not installed: the kind is listed, and empty.
    Absent,
    /// The list or watch failed (retried).
    Failed(String),
}

/// Watches `kind` in `namespace` (`None`: all namespaces), waiting for its
/// CRD as the module says. The stream ends only when it is dropped.
pub fn watch(
    client: Client,
    namespace: Option<String>,
    kind: RouteKind,
) -> BoxStream<'static, RouteItem> {
    let (tx, rx) = mpsc::channel(QUEUE);
    let resource = kind.resource();
    let api = match namespace.as_deref() {
        Some(ns) => Api::namespaced_with(client, ns, &resource),
        None => Api::all_with(client, &resource),
    };
    tokio::spawn(async move {
        tokio::select! {
            () = follow(api, kind, &tx) => {}
            () = tx.closed() => {}
        }
    });
    tokio_stream::wrappers::ReceiverStream::new(rx).boxed()
}

/// Asks for the CRD, then watches, forever (until `tx` closes).
async fn follow(api: Api<DynamicObject>, kind: RouteKind, tx: &mpsc::Sender<RouteItem>) {
    let mut told = false;
    loop {
        match api.list(&ListParams::default().limit(1)).await {
            Err(kube::Error::Api(s)) if s.code == 404 => {
                if !told {
                    info!(
                        kind = kind.kind(),
                        retry_s = DISCOVERY_RETRY.as_secs(),
                        "CRD not installed; not watching it, looking again later"
                    );
                    told = true;
                }
                if tx.send(RouteItem::Absent).await.is_err() {
                    return;
                }
                tokio::time::sleep(DISCOVERY_RETRY).await;
                continue;
            }
            // Any other answer (also an error: RBAC, a down API server) is
            // the watcher's to retry with its backoff and to report.
            _ => told = false,
        }
        match watch_until_gone(&api, tx).await {
            WatchEnd::Gone => {}
            WatchEnd::Ended => tokio::time::sleep(ENDED_PAUSE).await,
            WatchEnd::Closed => return,
        }
    }
}

/// Why a watcher stopped being followed.
enum WatchEnd {
    /// Its list answered 404: the CRD went away.
    Gone,
    /// Its stream ended.
    Ended,
    /// The registry is gone.
    Closed,
}

/// Runs a watcher until its list answers 404, its stream ends, or `tx`
/// closes.
async fn watch_until_gone(api: &Api<DynamicObject>, tx: &mpsc::Sender<RouteItem>) -> WatchEnd {
    let mut events = watcher::watcher(api.clone(), watcher::Config::default())
        .default_backoff()
        .boxed();
    while let Some(r) = events.next().await {
        let item = match r {
            Ok(event) => RouteItem::Event(event),
            // 410 Gone: the watcher relists, as it should.
            Err(watcher::Error::WatchError(s)) if s.code == 410 => continue,
            Err(watcher::Error::InitialListFailed(kube::Error::Api(s))) if s.code == 404 => {
                return WatchEnd::Gone;
            }
            Err(e) => RouteItem::Failed(e.to_string()),
        };
        if tx.send(item).await.is_err() {
            return WatchEnd::Closed;
        }
    }
    WatchEnd::Ended
}

/// The route document of an API object: what a manifest file would hold
/// (`apiVersion`, `kind`, the identifying metadata, `spec`), without the
/// server's fields (`status`, `managedFields`, versions), so that only a
/// change of the route itself changes the view.
pub fn document(kind: RouteKind, object: &DynamicObject) -> Value {
    let meta = &object.metadata;
    let mut metadata = Map::new();
    let mut put = |key: &str, value: Option<Value>| {
        if let Some(v) = value {
            metadata.insert(key.into(), v);
        }
    };
    put("name", meta.name.clone().map(Value::String));
    put("namespace", meta.namespace.clone().map(Value::String));
    put(
        "creationTimestamp",
        meta.creation_timestamp
            .as_ref()
            .and_then(|t| serde_json::to_value(t).ok()),
    );
    put(
        "labels",
        meta.labels
            .as_ref()
            .and_then(|l| serde_json::to_value(l).ok()),
    );
    let mut doc = Map::new();
    doc.insert("apiVersion".into(), kind.api_version().into());
    doc.insert("kind".into(), kind.kind().into());
    doc.insert("metadata".into(), Value::Object(metadata));
    if let Some(spec) = object.data.get("spec") {
        doc.insert("spec".into(), spec.clone());
    }
    Value::Object(doc)
}

#[cfg(test)]
mod tests {
    use super::*;
    use fedmesh_proto::routes::parse_route;
    use serde_json::json;

    #[test]
    fn an_api_objects_document_is_what_a_file_holds_and_parses() {
        let object: DynamicObject = serde_json::from_value(json!({
            "apiVersion": "gateway.networking.k8s.io/v1",
            "kind": "HTTPRoute",
            "metadata": {
                "name": "canary", "namespace": "demo", "resourceVersion": "7",
                "uid": "u-1", "managedFields": [{"manager": "kubectl"}],
            },
            "spec": {
                "parentRefs": [{"group": "", "kind": "Service", "name": "hello", "port": 8080}],
                "rules": [{"backendRefs": [{"name": "hello", "port": 8080}]}],
            },
            "status": {"parents": []},
        }))
        .expect("an HTTPRoute object");
        let doc = document(RouteKind::HttpRoute, &object);
        assert_eq!(
            doc["metadata"],
            json!({"name": "canary", "namespace": "demo"})
        );
        assert!(doc.get("status").is_none(), "{doc}");
        let route = parse_route(&doc).expect("a valid route");
        assert_eq!(
            (route.namespace.as_str(), route.name.as_str()),
            ("demo", "canary")
        );
    }

    #[test]
    fn the_resources_are_the_published_groups_and_plurals() {
        let r = RouteKind::HttpRoute.resource();
        assert_eq!(
            (r.group.as_str(), r.version.as_str(), r.plural.as_str()),
            ("gateway.networking.k8s.io", "v1", "httproutes")
        );
        let f = RouteKind::FaultInjection.resource();
        assert_eq!(f.api_version, "fedmesh.io/v1alpha1");
        assert_eq!(f.plural, "faultinjections");
    }
}
