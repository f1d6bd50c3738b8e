//! The control plane's view of HTTP routes: the `HTTPRoute` and
//! `FaultInjection` documents a registry read, checked with the shared
//! rules of `fedmesh_proto::routes` (DESIGN.md, HTTP-aware services).
//!
//! A registry hands its documents, with where each came from, to
//! [`RouteView::build`]; the view keeps the valid ones (and their documents,
//! which travel to the gateways as they are) and turns each invalid or
//! duplicate one into a [`Problem`] naming its file and field. Those
//! problems are warnings (`fedctl check` shows them as `WARN`): an invalid
//! route is ignored and breaks nothing else. The view rides in the
//! registry's [`crate::model::LocalSnapshot`]; the gateway API, `fedctl
//! services` and `fedctl check` read it there.

use std::collections::BTreeSet;

use fedmesh_proto::routes::{FAULT_KIND, ROUTE_KIND, document, parse_fault, parse_route};
use fedmesh_proto::v1;
use serde_json::Value;

pub use crate::model::{LocalFault, LocalRoute, RouteView};
use crate::model::{Problem, ServiceKey};
use crate::registry::build::Sourced;

impl RouteView {
    /// Checks every document; the first of a `namespace/name` wins, later
    /// copies are reported.
    pub fn build(routes: &[Sourced<Value>], faults: &[Sourced<Value>]) -> Self {
        let mut view = Self::default();
        let mut seen = BTreeSet::new();
        for doc in routes {
            match parse_route(&doc.object) {
                Ok(route)
                    if seen.insert((ROUTE_KIND, route.namespace.clone(), route.name.clone())) =>
                {
                    view.routes.push(LocalRoute {
                        source: doc.source.clone(),
                        document: doc.object.clone(),
                        route,
                    });
                }
                Ok(route) => view.problems.push(duplicate(
                    ROUTE_KIND,
                    &doc.source,
                    &route.namespace,
                    &route.name,
                )),
                Err(e) => view.problems.extend(e.problems().iter().map(|p| Problem {
                    source: doc.source.clone(),
                    message: format!(
                        "{ROUTE_KIND} {}: {p}; the route is ignored",
                        label(&doc.object)
                    ),
                })),
            }
        }
        for doc in faults {
            match parse_fault(&doc.object) {
                Ok(fault)
                    if seen.insert((FAULT_KIND, fault.namespace.clone(), fault.name.clone())) =>
                {
                    view.faults.push(LocalFault {
                        source: doc.source.clone(),
                        document: doc.object.clone(),
                        fault,
                    });
                }
                Ok(fault) => view.problems.push(duplicate(
                    FAULT_KIND,
                    &doc.source,
                    &fault.namespace,
                    &fault.name,
                )),
                Err(e) => view.problems.extend(e.problems().iter().map(|p| Problem {
                    source: doc.source.clone(),
                    message: format!(
                        "{FAULT_KIND} {}: {p}; rules that name it answer 500",
                        label(&doc.object)
                    ),
                })),
            }
        }
        view.problems.extend(view.missing_faults());
        view
    }

    /// Names of the valid routes bound to `key`, sorted.
    pub fn names_for(&self, key: &ServiceKey) -> Vec<String> {
        let mut names: Vec<String> = self
            .routes
            .iter()
            .filter(|r| r.route.namespace == key.namespace)
            .filter(|r| r.route.parents.iter().any(|p| p.service == key.name))
            .map(|r| r.route.name.clone())
            .collect();
        names.sort();
        names.dedup();
        names
    }

    /// Warnings for routes bound to a Service that `known` does not know
    /// (neither local nor imported): kept, since the service may appear.
    pub fn unknown_parents(&self, known: impl Fn(&ServiceKey) -> bool) -> Vec<Problem> {
        let mut out = Vec::new();
        for r in &self.routes {
            for parent in &r.route.parents {
                let key = ServiceKey::new(&r.route.namespace, &parent.service);
                if !known(&key) {
                    out.push(Problem {
                        source: r.source.clone(),
                        message: format!(
                            "{ROUTE_KIND} {}/{}: its parent Service {key} is not known here (neither local nor imported); the route is kept and applies once the service appears",
                            r.route.namespace, r.route.name
                        ),
                    });
                }
            }
        }
        out
    }

    /// The documents for the gateways: every valid route and fault.
    pub fn to_proto(&self) -> Vec<v1::RouteDocument> {
        let routes = self
            .routes
            .iter()
            .map(|r| document(ROUTE_KIND, &r.route.namespace, &r.route.name, &r.document));
        let faults = self
            .faults
            .iter()
            .map(|f| document(FAULT_KIND, &f.fault.namespace, &f.fault.name, &f.document));
        routes.chain(faults).collect()
    }

    /// Rules naming a fault that is not there (Gateway API: such a rule's
    /// requests are answered 500, not forwarded).
    fn missing_faults(&self) -> Vec<Problem> {
        let mut out = Vec::new();
        for r in &self.routes {
            for (i, rule) in r.route.rules.iter().enumerate() {
                let Some(name) = &rule.fault else { continue };
                let found = self
                    .faults
                    .iter()
                    .any(|f| &f.fault.name == name && f.fault.namespace == r.route.namespace);
                if !found {
                    out.push(Problem {
                        source: r.source.clone(),
                        message: format!(
                            "{ROUTE_KIND} {}/{}: spec.rules[{i}] names FaultInjection {name}, which is not defined in namespace {}; its requests are answered 500 until it is",
                            r.route.namespace, r.route.name, r.route.namespace
                        ),
                    });
                }
            }
        }
        out
    }
}

/// `namespace/name` of a document, as far as it has them.
fn label(doc: &Value) -> String {
    let meta = |k: &str| {
        doc.get("metadata")
            .and_then(|m| m.get(k))
            .and_then(Value::as_str)
    };
    format!(
        "{}/{}",
        meta("namespace").unwrap_or("default"),
        meta("name").unwrap_or("?")
    )
}

fn duplicate(kind: &str, source: &str, namespace: &str, name: &str) -> Problem {
    Problem {
        source: source.to_string(),
        message: format!(
            "{kind} {namespace}/{name} is defined more than once; this copy is ignored"
        ),
    }
}

#[cfg(test)]
mod tests;
