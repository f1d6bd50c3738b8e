//! What the MCS API objects should say, as pure functions (KEP-1645):
//! one `ServiceImport` per service of the table, in the service's own
//! namespace, and the `Valid` / `Conflict` conditions of each local
//! `ServiceExport`. The controller in [`super::mcs`] compares these with
//! what the API holds and writes the difference.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::Service;
use kube::api::ObjectMeta;

use crate::model::{PortSpec, ServiceKey};
use crate::registry::annotations::EXPORT;
use crate::registry::build::{self, Sourced};
use crate::registry::kubernetes::mcs::{
    ClusterStatus, Condition, ImportPort, ImportSpec, ImportStatus, ServiceImport,
};
use crate::table::{GlobalService, TableSnapshot};

/// The label on every `ServiceImport` fedmesh made; one without it was
/// made by someone else and is never changed or deleted.
pub const MANAGED_BY: (&str, &str) = ("fedmesh.io/managed-by", "fedmesh");

/// `ServiceImport.spec.type` (KEP-1645).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImportType {
    /// One VIP for the whole service (`spec.ips`).
    ClusterSetIp,
    /// No VIP: DNS answers the endpoints' names.
    Headless,
}

impl ImportType {
    /// The value of `spec.type`.
    pub fn as_str(self) -> &'static str {
        match self {
            ImportType::ClusterSetIp => "ClusterSetIP",
            ImportType::Headless => "Headless",
        }
    }
}

/// The type of a service's `ServiceImport`: `Headless` when the service is
/// exported as a `clusterIP: None` Service (the table's
/// [`TableSnapshot::is_headless`]), `ClusterSetIP` otherwise. The
/// per-endpoint VIPs of a headless service are answered by fedmesh's DNS
/// (`<hostname>.<cluster>.<svc>.<ns>.svc.<zone>`), not listed in `ips`.
pub fn import_type(headless: bool) -> ImportType {
    if headless {
        ImportType::Headless
    } else {
        ImportType::ClusterSetIp
    }
}

/// The `ServiceImport` fedmesh keeps for `s`; `headless` as the table says.
pub fn service_import(s: &GlobalService, headless: bool) -> ServiceImport {
    let type_ = import_type(headless);
    let ips = match (type_, s.vip) {
        (ImportType::ClusterSetIp, Some(vip)) => vec![vip.to_string()],
        _ => Vec::new(),
    };
    let mut clusters: Vec<ClusterStatus> = s
        .clusters
        .iter()
        .map(|c| ClusterStatus {
            cluster: c.cluster.clone(),
        })
        .collect();
    clusters.sort_by(|a, b| a.cluster.cmp(&b.cluster));
    clusters.dedup();
    ServiceImport {
        metadata: ObjectMeta {
            name: Some(s.key.name.clone()),
            namespace: Some(s.key.namespace.clone()),
            labels: Some([(MANAGED_BY.0.to_string(), MANAGED_BY.1.to_string())].into()),
            ..Default::default()
        },
        spec: ImportSpec {
            type_: type_.as_str().into(),
            ips,
            ports: s.ports.iter().map(import_port).collect(),
        },
        status: Some(ImportStatus { clusters }),
    }
}

fn import_port(p: &PortSpec) -> ImportPort {
    ImportPort {
        name: p.name.clone(),
        protocol: "TCP".into(),
        port: i32::from(p.port),
    }
}

/// Whether fedmesh made this `ServiceImport`.
pub fn is_ours(si: &ServiceImport) -> bool {
    si.metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(MANAGED_BY.0))
        .is_some_and(|v| v == MANAGED_BY.1)
}

/// The watch scopes of `namespaces` (`registry.namespaces`): one per
/// namespace, or a single `None` (all namespaces) when it is empty.
pub fn scopes(namespaces: &[String]) -> Vec<Option<String>> {
    if namespaces.is_empty() {
        vec![None]
    } else {
        namespaces.iter().cloned().map(Some).collect()
    }
}

/// Whether `key` lies in the watched `namespaces` (empty: all).
pub fn in_scope(namespaces: &[String], key: &ServiceKey) -> bool {
    namespaces.is_empty() || namespaces.contains(&key.namespace)
}

/// The part of `table` in the watched `namespaces`: the MCS objects of
/// other namespaces are neither watched nor written (the service account
/// may have no access there), so they are not planned either.
pub fn scoped(table: &TableSnapshot, namespaces: &[String]) -> TableSnapshot {
    let mut out = table.clone();
    if !namespaces.is_empty() {
        out.services = table
            .services
            .iter()
            .filter(|(k, _)| in_scope(namespaces, k))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        out.headless.retain(|k, _| in_scope(namespaces, k));
    }
    out
}

/// What to change: imports to apply, imports of ours to delete, and the
/// keys left alone because someone else owns an import of that name.
#[derive(Debug, Default, PartialEq)]
pub struct ImportPlan {
    /// Create or update (spec by server-side apply, then status).
    pub apply: Vec<ServiceImport>,
    /// Ours, and no longer imported.
    pub delete: Vec<ServiceKey>,
    /// Wanted, but an import of that name was made by someone else.
    pub foreign: Vec<ServiceKey>,
}

/// The changes that make the API's `ServiceImport`s (`observed`, all of
/// them, ours or not) match the table.
pub fn plan_imports(
    table: &TableSnapshot,
    observed: &BTreeMap<ServiceKey, ServiceImport>,
) -> ImportPlan {
    let mut out = ImportPlan::default();
    for (key, s) in &table.services {
        let want = service_import(s, table.is_headless(key));
        match observed.get(key) {
            Some(have) if !is_ours(have) => out.foreign.push(key.clone()),
            Some(have) if have.spec == want.spec && have.status == want.status => {}
            _ => out.apply.push(want),
        }
    }
    out.delete = observed
        .iter()
        .filter(|(key, si)| is_ours(si) && !table.services.contains_key(*key))
        .map(|(key, _)| key.clone())
        .collect();
    out
}

/// `Valid` and `Conflict` for the `ServiceExport` of `key`, given the
/// Service of that name (if any) and the table (KEP-1645: `Valid` False
/// with `NoService` or `InvalidServiceType`; `Conflict` True with
/// `PortConflict`, False with `NoConflicts`). `Valid` is True only once
/// the table carries this cluster's export of it, `Unknown` (`Pending`)
/// while a valid export has not reached it. Times are left empty for
/// [`stamp`].
pub fn export_conditions(
    key: &ServiceKey,
    service: Option<&Service>,
    table: &TableSnapshot,
) -> Vec<Condition> {
    let global = table.services.get(key);
    let mut valid = valid(service);
    let exported_here = global.is_some_and(|s| s.clusters.iter().any(|c| c.local));
    if valid.status == "True" && !exported_here {
        valid = Condition {
            status: "Unknown".into(),
            reason: "Pending".into(),
            message: "valid, but not exported yet: the registry has not taken it up (with registry.namespaces set, only those namespaces are exported)".into(),
            ..valid
        };
    }
    vec![valid, conflict(global)]
}

fn condition(type_: &str, status: bool, reason: &str, message: String) -> Condition {
    Condition {
        type_: type_.into(),
        status: if status { "True" } else { "False" }.into(),
        reason: reason.into(),
        message,
        ..Default::default()
    }
}

fn valid(service: Option<&Service>) -> Condition {
    let Some(service) = service else {
        return condition(
            "Valid",
            false,
            "NoService",
            "no Service with the same name and namespace".into(),
        );
    };
    if service.spec.as_ref().and_then(|s| s.type_.as_deref()) == Some("ExternalName") {
        return condition(
            "Valid",
            false,
            "InvalidServiceType",
            "an ExternalName Service has no endpoints to export".into(),
        );
    }
    // The registry's own rules, as if the annotation were set: the same
    // reasons `fedctl check` shows for an annotated Service.
    let mut marked = service.clone();
    marked
        .metadata
        .annotations
        .get_or_insert_with(BTreeMap::new)
        .insert(EXPORT.to_string(), "true".to_string());
    let one = [Sourced {
        source: String::new(),
        object: marked,
    }];
    let snap = build::build(one.iter(), std::iter::empty());
    match snap.services.values().next() {
        Some(s) if s.export.is_some() => {
            condition("Valid", true, "Valid", "the Service is exported".into())
        }
        _ => {
            let why: Vec<&str> = snap.problems.iter().map(|p| p.message.as_str()).collect();
            condition("Valid", false, "InvalidService", why.join("; "))
        }
    }
}

fn conflict(service: Option<&GlobalService>) -> Condition {
    let none = || condition("Conflict", false, "NoConflicts", String::new());
    let Some(s) = service else {
        return none();
    };
    let distinct: BTreeSet<&Vec<PortSpec>> = s.clusters.iter().map(|c| &c.ports).collect();
    if distinct.len() < 2 {
        return none();
    }
    let each: Vec<String> = s
        .clusters
        .iter()
        .map(|c| format!("{} [{}]", c.cluster, ports(&c.ports)))
        .collect();
    let oldest = s.clusters.first().map_or("", |c| c.cluster.as_str());
    condition(
        "Conflict",
        true,
        "PortConflict",
        format!(
            "the exporting clusters disagree on ports: {}; the oldest export's ({oldest}) are used",
            each.join(", ")
        ),
    )
}

fn ports(ports: &[PortSpec]) -> String {
    let each: Vec<String> = ports
        .iter()
        .map(|p| match p.name.as_str() {
            "" => p.port.to_string(),
            name => format!("{name}:{}", p.port),
        })
        .collect();
    each.join(" ")
}

/// `fresh` with each condition's `lastTransitionTime` kept from `old` when
/// its status did not change, else `now` (metav1.Condition semantics);
/// `None` when nothing but times would change (no write needed).
pub fn stamp(
    fresh: Vec<Condition>,
    old: &[Condition],
    now: &str,
    generation: Option<i64>,
) -> Option<Vec<Condition>> {
    let mut changed = fresh.len() != old.len();
    let out = fresh
        .into_iter()
        .map(|mut c| {
            c.observed_generation = generation;
            let prior = old.iter().find(|o| o.type_ == c.type_);
            c.last_transition_time = match prior {
                Some(o) if o.status == c.status && !o.last_transition_time.is_empty() => {
                    o.last_transition_time.clone()
                }
                _ => now.to_string(),
            };
            changed |= prior != Some(&c);
            c
        })
        .collect();
    changed.then_some(out)
}

#[cfg(test)]
mod tests;
