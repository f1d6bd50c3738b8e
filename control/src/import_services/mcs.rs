//! Kubernetes mode: the Multi-Cluster Services API objects fedmesh keeps
//! (KEP-1645). For every service of the table a `ServiceImport` in the
//! service's namespace (type, VIP, ports, exporting clusters), and on every
//! `ServiceExport` of this cluster the `Valid` and `Conflict` conditions.
//!
//! Data flow: table snapshots and three watchers (ServiceImports,
//! ServiceExports and Services) per watched namespace (`registry.namespaces`,
//! or all when it is empty) → [`mcs_plan`] (pure) →
//! server-side apply of the spec, merge patches of `/status`, deletes of
//! fedmesh's own imports that went away. A watcher whose CRD is not
//! installed (list answered 404) counts as listed and empty, so the other
//! half still works; it keeps retrying with backoff, so installing the CRDs
//! later is picked up. ServiceImports without the `fedmesh.io/managed-by`
//! label belong to someone else and are never touched. With
//! `registry.namespaces` set, nothing outside them is read or written: a
//! `ServiceExport` there gets no status, and an import of such a namespace
//! gets no `ServiceImport` (the service account may have no access there).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use futures_util::stream::{BoxStream, SelectAll};
use futures_util::{FutureExt, StreamExt};
use k8s_openapi::api::core::v1::Service;
use kube::api::{DeleteParams, Patch, PatchParams};
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use kube::{Api, Client, ResourceExt};
use serde_json::json;
use tokio::sync::watch;
use tracing::{debug, info, warn};

use super::mcs_plan::{self, ImportPlan};
use crate::clock;
use crate::model::ServiceKey;
use crate::registry::kubernetes::mcs::{ServiceExport, ServiceImport};
use crate::registry::kubernetes::objects::ObjectSet;
use crate::table::TableSnapshot;

/// How often the objects are compared with the table even without a
/// change (to retry failed API calls).
const RESYNC: Duration = Duration::from_secs(5);
/// The field manager of fedmesh's writes.
const FIELD_MANAGER: &str = "fedmesh";
/// Most watch events applied before one comparison.
const BURST: usize = 4096;

/// The MCS API controller's settings.
pub struct McsObjects {
    /// The API client.
    pub client: Client,
    /// The namespaces to read and write (`registry.namespaces`); empty:
    /// all of them.
    pub namespaces: Vec<String>,
}

/// One item of the merged watch streams.
#[allow(clippy::large_enum_variant)]
enum Item {
    Import(usize, Event<ServiceImport>),
    Export(usize, Event<ServiceExport>),
    Service(usize, Event<Service>),
    /// The CRD of this kind is not installed (seen by the watcher of
    /// that scope).
    Absent(Watched, usize),
    Failed(Watched, String),
}

/// Which watcher an item came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Watched {
    Imports,
    Exports,
    Services,
}

/// Everything the watchers have seen, one set per watched scope (each
/// watcher relists on its own).
struct Seen {
    imports: Vec<ObjectSet<ServiceImport>>,
    exports: Vec<ObjectSet<ServiceExport>>,
    services: Vec<ObjectSet<Service>>,
    /// Kinds whose CRD is missing (nothing to write there).
    absent: BTreeSet<Watched>,
}

impl McsObjects {
    /// Starts the controller over `table`.
    pub fn spawn(self, table: watch::Receiver<Arc<TableSnapshot>>) {
        info!("keeping MCS ServiceImports and ServiceExport status");
        tokio::spawn(self.run(table));
    }

    async fn run(self, mut table: watch::Receiver<Arc<TableSnapshot>>) {
        let scopes = mcs_plan::scopes(&self.namespaces);
        let mut streams = SelectAll::new();
        for (i, scope) in scopes.iter().enumerate() {
            let ns = scope.as_deref();
            streams.push(stream(
                api(&self.client, ns),
                Watched::Imports,
                i,
                Item::Import,
            ));
            streams.push(stream(
                api(&self.client, ns),
                Watched::Exports,
                i,
                Item::Export,
            ));
            streams.push(stream(
                api(&self.client, ns),
                Watched::Services,
                i,
                Item::Service,
            ));
        }
        let mut seen = Seen::new(scopes.len());
        let mut resync = tokio::time::interval(RESYNC);
        loop {
            tokio::select! {
                item = streams.next() => match item {
                    Some(item) => seen.apply_ready(item, &mut streams),
                    None => return,
                },
                r = table.changed() => if r.is_err() { return },
                _ = resync.tick() => {}
            }
            // Until the table's first build nothing is known to be
            // imported: acting then would delete every ServiceImport.
            if !seen.listed() || table.borrow().version == 0 {
                continue;
            }
            let snapshot = mcs_plan::scoped(&table.borrow(), &self.namespaces);
            if !seen.absent.contains(&Watched::Imports) {
                self.write_imports(&snapshot, &seen).await;
            }
            if !seen.absent.contains(&Watched::Exports) {
                self.write_export_status(&snapshot, &seen).await;
            }
        }
    }

    async fn write_imports(&self, table: &TableSnapshot, seen: &Seen) {
        let observed: BTreeMap<ServiceKey, ServiceImport> = seen
            .imports
            .iter()
            .flat_map(ObjectSet::objects)
            .map(|s| (key(&s.object), s.object.clone()))
            .collect();
        let ImportPlan {
            apply,
            delete,
            foreign,
        } = mcs_plan::plan_imports(table, &observed);
        for key in foreign {
            debug!(import = %key, "a ServiceImport of this name was made by someone else; left alone");
        }
        for si in apply {
            self.apply_import(si).await;
        }
        for key in delete {
            let api: Api<ServiceImport> = Api::namespaced(self.client.clone(), &key.namespace);
            match api.delete(&key.name, &DeleteParams::default()).await {
                Ok(_) => info!(import = %key, "ServiceImport deleted"),
                Err(kube::Error::Api(s)) if s.code == 404 => {}
                Err(error) => {
                    warn!(import = %key, %error, "cannot delete a ServiceImport; retrying")
                }
            }
        }
    }

    /// Server-side apply of the spec, then the status (a subresource: the
    /// main resource's writes do not change it).
    async fn apply_import(&self, si: ServiceImport) {
        let key = key(&si);
        let api: Api<ServiceImport> = Api::namespaced(self.client.clone(), &key.namespace);
        let body = json!({
            "apiVersion": "multicluster.x-k8s.io/v1alpha1",
            "kind": "ServiceImport",
            "metadata": { "name": key.name, "namespace": key.namespace, "labels": si.metadata.labels },
            "spec": si.spec,
        });
        let params = PatchParams::apply(FIELD_MANAGER).force();
        match api.patch(&key.name, &params, &Patch::Apply(&body)).await {
            Ok(_) => {}
            // Namespace sameness (KEP-1645): an import of a namespace this
            // cluster does not have gets its ServiceImport once it exists.
            Err(kube::Error::Api(s)) if s.code == 404 => {
                debug!(import = %key, "no such namespace here; no ServiceImport yet");
                return;
            }
            Err(error) => {
                warn!(import = %key, %error, "cannot apply a ServiceImport; retrying (check RBAC: examples/kubernetes/rbac.yaml)");
                return;
            }
        }
        let status = json!({ "status": si.status });
        match api
            .patch_status(&key.name, &PatchParams::default(), &Patch::Merge(&status))
            .await
        {
            Ok(_) => debug!(import = %key, "ServiceImport applied"),
            Err(error) => {
                warn!(import = %key, %error, "cannot write a ServiceImport's status; retrying")
            }
        }
    }

    async fn write_export_status(&self, table: &TableSnapshot, seen: &Seen) {
        let services: BTreeMap<ServiceKey, &Service> = seen
            .services
            .iter()
            .flat_map(ObjectSet::objects)
            .map(|s| (key(&s.object), &s.object))
            .collect();
        let now = clock::rfc3339_ms(clock::now_unix_ms());
        for se in seen.exports.iter().flat_map(ObjectSet::objects) {
            let se = &se.object;
            let key = key(se);
            let fresh = mcs_plan::export_conditions(&key, services.get(&key).copied(), table);
            let old = se.status.as_ref().map_or(&[][..], |s| &s.conditions[..]);
            let Some(conditions) = mcs_plan::stamp(fresh, old, &now, se.metadata.generation) else {
                continue;
            };
            let api: Api<ServiceExport> = Api::namespaced(self.client.clone(), &key.namespace);
            let patch = json!({ "status": { "conditions": conditions } });
            match api
                .patch_status(&key.name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
            {
                Ok(_) => info!(export = %key, "ServiceExport status written"),
                Err(error) => {
                    warn!(export = %key, %error, "cannot write a ServiceExport's status; retrying (check RBAC: serviceexports/status)")
                }
            }
        }
    }
}

impl Seen {
    fn new(scopes: usize) -> Self {
        Self {
            imports: (0..scopes).map(|_| ObjectSet::default()).collect(),
            exports: (0..scopes).map(|_| ObjectSet::default()).collect(),
            services: (0..scopes).map(|_| ObjectSet::default()).collect(),
            absent: BTreeSet::new(),
        }
    }

    /// Whether every watcher has completed a first list.
    fn listed(&self) -> bool {
        self.imports.iter().all(ObjectSet::listed)
            && self.exports.iter().all(ObjectSet::listed)
            && self.services.iter().all(ObjectSet::listed)
    }

    /// Applies `item` and every item ready right after it.
    fn apply_ready(&mut self, mut item: Item, streams: &mut SelectAll<BoxStream<'static, Item>>) {
        for _ in 0..BURST {
            self.apply(item);
            match streams.next().now_or_never() {
                Some(Some(next)) => item = next,
                _ => return,
            }
        }
    }

    fn apply(&mut self, item: Item) {
        match item {
            Item::Import(i, e) => {
                self.absent.remove(&Watched::Imports);
                if let Some(set) = self.imports.get_mut(i) {
                    set.apply(e);
                }
            }
            Item::Export(i, e) => {
                self.absent.remove(&Watched::Exports);
                if let Some(set) = self.exports.get_mut(i) {
                    set.apply(e);
                }
            }
            Item::Service(i, e) => {
                if let Some(set) = self.services.get_mut(i) {
                    set.apply(e);
                }
            }
            Item::Absent(kind, i) => {
                if self.absent.insert(kind) {
                    info!(
                        ?kind,
                        "MCS CRD not installed; install examples/kubernetes/crds to use it"
                    );
                }
                // Listed, and empty.
                match kind {
                    Watched::Imports => self.imports.get_mut(i).map(relist_empty),
                    Watched::Exports => self.exports.get_mut(i).map(relist_empty),
                    Watched::Services => None,
                };
            }
            Item::Failed(kind, error) => {
                warn!(?kind, %error, "cannot watch; retrying with backoff (check RBAC: examples/kubernetes/rbac.yaml)")
            }
        }
    }
}

fn relist_empty<K: ResourceExt + PartialEq>(set: &mut ObjectSet<K>) {
    set.apply(Event::Init);
    set.apply(Event::InitDone);
}

fn key<K: ResourceExt>(o: &K) -> ServiceKey {
    ServiceKey::new(
        o.namespace().unwrap_or_else(|| "default".into()),
        o.name_any(),
    )
}

/// The API of `K` in `namespace`, or in all namespaces.
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

/// A watcher with default backoff, its items tagged with their scope; a
/// 404 on the first list (no CRD) and every other error become items,
/// never the end.
fn stream<K>(
    api: Api<K>,
    kind: Watched,
    scope: usize,
    wrap: fn(usize, Event<K>) -> Item,
) -> BoxStream<'static, Item>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug + Send + 'static,
    K::DynamicType: Default,
{
    watcher::watcher(api, watcher::Config::default())
        .default_backoff()
        .filter_map(move |r| {
            std::future::ready(match r {
                Ok(e) => Some(wrap(scope, e)),
                Err(watcher::Error::WatchError(s)) if s.code == 410 => None,
                Err(watcher::Error::InitialListFailed(kube::Error::Api(s))) if s.code == 404 => {
                    Some(Item::Absent(kind, scope))
                }
                Err(e) => Some(Item::Failed(kind, e.to_string())),
            })
        })
        .boxed()
}
