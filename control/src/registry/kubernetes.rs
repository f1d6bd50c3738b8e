//! The Kubernetes registry: kube-rs watchers on Services and
//! `discovery.k8s.io/v1` EndpointSlices, MCS `ServiceExport`s ([`mcs`],
//! when their CRD is installed), and `HTTPRoute`s and `FaultInjection`s
//! ([`routes`], when their CRDs are installed), in all namespaces or in
//! the configured ones (`registry.namespaces`).
//!
//! Each watcher's events go into an `ObjectSet`; after every burst of
//! events the registry rebuilds the local view with the same
//! [`build::build`] as the static registry, so a Service gives the same
//! table whichever way it arrives; a Service with a `ServiceExport` is
//! built as if it carried the export annotation. Until every watcher has
//! completed its first list the published snapshot is `pending`: its
//! services are not known yet, so nothing is withdrawn on their account,
//! and `fedctl check` shows why (an unreachable API server, missing RBAC).
//!
//! Watch errors never stop the registry: kube-runtime's watcher retries
//! with backoff and relists when its resource version is gone (HTTP 410);
//! until then the last known objects keep serving and the error is a
//! problem in the snapshot. A `ServiceExport` list answered 404 means the
//! CRD is not installed: that watcher counts as listed and empty (the
//! annotation still exports), and keeps retrying so that installing the
//! CRD later is picked up. Routes never hold the snapshot `pending`: until
//! they are listed the services serve without routes, as with none.

pub mod mcs;
pub(crate) mod objects;
pub mod routes;

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use futures_util::stream::{BoxStream, SelectAll, StreamExt};
use futures_util::{FutureExt, TryStreamExt};
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::DynamicObject;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use kube::{Api, Client};
use tokio::sync::watch;
use tracing::{debug, info, warn};

use self::mcs::ServiceExport;
use self::objects::ObjectSet;
use self::routes::{RouteItem, RouteKind};
use super::build::Sourced;
use super::{Registry, build};
use crate::model::{LocalSnapshot, Problem};
use crate::routes::RouteView;

/// Most events applied before the view is rebuilt, so a large relist is
/// built once, not once per object.
const BURST: usize = 4096;

/// Services and EndpointSlices from the Kubernetes API.
pub struct Kubernetes {
    client: Client,
    namespaces: Vec<String>,
}

impl Kubernetes {
    /// A registry over `namespaces` (empty: all namespaces).
    pub fn new(client: Client, namespaces: Vec<String>) -> Self {
        Self { client, namespaces }
    }
}

/// Which watcher an event or error came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Source {
    Services(usize),
    Slices(usize),
    Exports(usize),
    Routes(usize),
    Faults(usize),
}

/// One item of the merged watch streams (short-lived, one at a time, so
/// the size difference between variants costs nothing).
#[allow(clippy::large_enum_variant)]
enum Watched {
    Service(Source, Event<Service>),
    Slice(Source, Event<EndpointSlice>),
    Export(Source, Event<ServiceExport>),
    /// The ServiceExport CRD is not installed (the list was a 404).
    NoExportCrd(Source),
    /// An HTTPRoute or FaultInjection watcher's report.
    Route(Source, RouteItem),
    Failed(Source, String),
}

impl Registry for Kubernetes {
    fn describe(&self) -> String {
        if self.namespaces.is_empty() {
            "the Kubernetes API, all namespaces".into()
        } else {
            format!(
                "the Kubernetes API, namespaces {}",
                self.namespaces.join(", ")
            )
        }
    }

    fn run(
        self: Box<Self>,
        out: watch::Sender<Arc<LocalSnapshot>>,
    ) -> Pin<Box<dyn Future<Output = ()> + Send>> {
        Box::pin(async move {
            let mut streams = self.streams();
            let mut view = View::new(self.scopes().len());
            out.send_replace(Arc::new(view.snapshot()));
            while let Some(item) = streams.next().await {
                let mut changed = view.apply(item);
                // Apply what else is ready now before rebuilding once.
                for _ in 0..BURST {
                    match streams.next().now_or_never() {
                        Some(Some(item)) => changed |= view.apply(item),
                        _ => break,
                    }
                }
                if changed {
                    let snap = view.snapshot();
                    info!(
                        services = snap.services.len(),
                        problems = snap.problems.len(),
                        pending = snap.pending,
                        "kubernetes services loaded"
                    );
                    out.send_replace(Arc::new(snap));
                }
            }
            warn!("kubernetes watch streams ended; the last known services keep serving");
        })
    }
}

impl Kubernetes {
    /// The namespaces watched, or `None` for all.
    fn scopes(&self) -> Vec<Option<String>> {
        if self.namespaces.is_empty() {
            vec![None]
        } else {
            self.namespaces.iter().cloned().map(Some).collect()
        }
    }

    fn streams(&self) -> SelectAll<BoxStream<'static, Watched>> {
        let mut all = SelectAll::new();
        for (i, scope) in self.scopes().into_iter().enumerate() {
            let services: Api<Service> = api(&self.client, scope.as_deref());
            let slices: Api<EndpointSlice> = api(&self.client, scope.as_deref());
            all.push(tagged(services, Source::Services(i), Watched::Service));
            all.push(tagged(slices, Source::Slices(i), Watched::Slice));
            let exports: Api<ServiceExport> = api(&self.client, scope.as_deref());
            all.push(tagged(exports, Source::Exports(i), Watched::Export));
            for (kind, source) in [
                (RouteKind::HttpRoute, Source::Routes(i)),
                (RouteKind::FaultInjection, Source::Faults(i)),
            ] {
                let items = routes::watch(self.client.clone(), scope.clone(), kind);
                all.push(items.map(move |item| Watched::Route(source, item)).boxed());
            }
        }
        all
    }
}

fn api<K>(client: &Client, namespace: Option<&str>) -> Api<K>
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>,
    K::DynamicType: Default,
{
    match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

/// A watcher with kube-runtime's default backoff, its items tagged with
/// where they came from; errors become items too, never the end.
fn tagged<K>(
    api: Api<K>,
    source: Source,
    wrap: fn(Source, Event<K>) -> Watched,
) -> BoxStream<'static, Watched>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug + Send + 'static,
    K::DynamicType: Default,
{
    watcher::watcher(api, watcher::Config::default())
        .default_backoff()
        .map_ok(move |e| wrap(source, e))
        .filter_map(move |r| {
            std::future::ready(match r {
                Ok(item) => Some(item),
                // 410 Gone: the watch's version was compacted away; the
                // watcher relists, as it should. Not a problem to report.
                Err(watcher::Error::WatchError(status)) if status.code == 410 => None,
                // No such resource: only the optional MCS CRD may be absent.
                Err(watcher::Error::InitialListFailed(kube::Error::Api(status)))
                    if status.code == 404 && matches!(source, Source::Exports(_)) =>
                {
                    Some(Watched::NoExportCrd(source))
                }
                Err(e) => Some(Watched::Failed(source, e.to_string())),
            })
        })
        .boxed()
}

/// The label every import Service carries: the registry skips what the
/// control plane itself publishes.
pub const MANAGED_BY: (&str, &str) = ("app.kubernetes.io/managed-by", "fedmesh");

/// The import Services the control plane makes itself (Kubernetes mode)
/// are not this cluster's services.
fn ours(s: &Service) -> bool {
    let managed = MANAGED_BY;
    s.metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(managed.0))
        .is_some_and(|v| v == managed.1)
}

/// An event with fedmesh's own import Services taken out (an Apply of one
/// becomes a Delete, in case it was once seen without the label).
fn without_ours(event: Event<Service>) -> Option<Event<Service>> {
    match event {
        Event::Apply(s) if ours(&s) => Some(Event::Delete(s)),
        Event::InitApply(s) if ours(&s) => None,
        other => Some(other),
    }
}

/// Everything the watchers have seen.
struct View {
    services: Vec<ObjectSet<Service>>,
    slices: Vec<ObjectSet<EndpointSlice>>,
    exports: Vec<ObjectSet<ServiceExport>>,
    routes: Vec<ObjectSet<DynamicObject>>,
    faults: Vec<ObjectSet<DynamicObject>>,
    errors: BTreeMap<Source, String>,
}

impl View {
    fn new(scopes: usize) -> Self {
        Self {
            services: (0..scopes).map(|_| ObjectSet::default()).collect(),
            slices: (0..scopes).map(|_| ObjectSet::default()).collect(),
            exports: (0..scopes).map(|_| ObjectSet::default()).collect(),
            routes: (0..scopes).map(|_| ObjectSet::default()).collect(),
            faults: (0..scopes).map(|_| ObjectSet::default()).collect(),
            errors: BTreeMap::new(),
        }
    }

    /// Applies one item; true when the snapshot may have changed.
    fn apply(&mut self, item: Watched) -> bool {
        match item {
            Watched::Service(source, event) => {
                let cleared = self.errors.remove(&source).is_some();
                let Some(event) = without_ours(event) else {
                    return cleared;
                };
                let set = match source {
                    Source::Services(i) => self.services.get_mut(i),
                    _ => None,
                };
                set.is_some_and(|s| s.apply(event)) || cleared
            }
            Watched::Slice(source, event) => {
                let cleared = self.errors.remove(&source).is_some();
                let set = match source {
                    Source::Slices(i) => self.slices.get_mut(i),
                    _ => None,
                };
                set.is_some_and(|s| s.apply(event)) || cleared
            }
            Watched::Export(source, event) => {
                let cleared = self.errors.remove(&source).is_some();
                self.export_set(source).is_some_and(|s| s.apply(event)) || cleared
            }
            Watched::NoExportCrd(source) => {
                debug!(
                    ?source,
                    "no ServiceExport CRD installed; only the annotation exports"
                );
                let cleared = self.errors.remove(&source).is_some();
                let set = self.export_set(source);
                // A relist that finds nothing: listed, and empty.
                set.is_some_and(|s| s.apply(Event::Init) | s.apply(Event::InitDone)) || cleared
            }
            Watched::Route(source, item) => self.apply_route(source, item),
            Watched::Failed(source, error) => {
                warn!(%error, ?source, "kubernetes watch failed; retrying with backoff");
                self.errors.insert(source, error.clone()) != Some(error)
            }
        }
    }

    /// Applies a route watcher's report; true when the view changed.
    fn apply_route(&mut self, source: Source, item: RouteItem) -> bool {
        let set = match source {
            Source::Routes(i) => self.routes.get_mut(i),
            Source::Faults(i) => self.faults.get_mut(i),
            _ => None,
        };
        let Some(set) = set else { return false };
        match item {
            RouteItem::Event(event) => {
                let cleared = self.errors.remove(&source).is_some();
                set.apply(event) || cleared
            }
            // No CRD: listed, and empty (a CRD removed takes its objects).
            RouteItem::Absent => {
                let cleared = self.errors.remove(&source).is_some();
                set.apply(Event::Init) | set.apply(Event::InitDone) || cleared
            }
            RouteItem::Failed(error) => {
                warn!(%error, ?source, "kubernetes watch failed; retrying with backoff");
                self.errors.insert(source, error.clone()) != Some(error)
            }
        }
    }

    /// The route documents of every watched scope, checked.
    fn route_view(&self) -> RouteView {
        let docs = |sets: &[ObjectSet<DynamicObject>], kind: RouteKind| -> Vec<Sourced<_>> {
            sets.iter()
                .flat_map(ObjectSet::objects)
                .map(|o| Sourced {
                    source: "kubernetes API".into(),
                    object: routes::document(kind, &o.object),
                })
                .collect()
        };
        RouteView::build(
            &docs(&self.routes, RouteKind::HttpRoute),
            &docs(&self.faults, RouteKind::FaultInjection),
        )
    }

    fn export_set(&mut self, source: Source) -> Option<&mut ObjectSet<ServiceExport>> {
        match source {
            Source::Exports(i) => self.exports.get_mut(i),
            _ => None,
        }
    }

    fn snapshot(&self) -> LocalSnapshot {
        let pending = !(self.services.iter().all(ObjectSet::listed)
            && self.slices.iter().all(ObjectSet::listed)
            && self.exports.iter().all(ObjectSet::listed));
        let exported = mcs::with_service_exports(
            self.services.iter().flat_map(ObjectSet::objects),
            self.exports
                .iter()
                .flat_map(ObjectSet::objects)
                .map(|s| &s.object),
        );
        let mut snap = build::build(
            exported.marked.iter().chain(exported.rest),
            self.slices.iter().flat_map(ObjectSet::objects),
        );
        snap.problems.extend(exported.orphans);
        snap.routes = self.route_view();
        snap.pending = pending;
        for (source, error) in &self.errors {
            let what = match source {
                Source::Services(_) => "Services",
                Source::Slices(_) => "EndpointSlices",
                Source::Exports(_) => "ServiceExports",
                Source::Routes(_) => "HTTPRoutes",
                Source::Faults(_) => "FaultInjections",
            };
            snap.problems.push(Problem {
                source: "kubernetes API".into(),
                message: format!(
                    "cannot watch {what}: {error}; check that the API server is reachable and that the control plane's service account may list and watch {what} (examples/kubernetes/rbac.yaml)"
                ),
            });
        }
        if pending && self.errors.is_empty() {
            snap.problems.push(Problem {
                source: "kubernetes API".into(),
                message: "listing Services, EndpointSlices and ServiceExports; not finished yet"
                    .into(),
            });
        }
        snap
    }
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_routes;
