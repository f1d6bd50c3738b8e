//! The HTTP routes of a snapshot, compiled per service: the snapshot's
//! `routes` documents (valid where the control plane checked them) are
//! read back with the shared rules of `fedmesh_proto::routes` and grouped
//! into one [`RouteTable`] per service a route is bound to. A document that
//! does not validate here (a newer control plane's field) is logged and
//! skipped; it never rejects the snapshot.
//!
//! The per-request HTTP path looks a request's rule up with
//! [`Routes::table`] and [`RouteTable::find`].

use std::collections::{BTreeMap, BTreeSet};

use fedmesh_proto::routes::{FaultInjection, HttpRoute, RouteObject, RouteTable};
use fedmesh_proto::v1;
use tracing::{info, warn};

use crate::model::ServiceKey;

/// The compiled route table of each service with routes.
#[derive(Debug, Clone, Default)]
pub struct Routes {
    tables: BTreeMap<ServiceKey, RouteTable>,
}

impl Routes {
    /// Compiles the documents of a snapshot, logging and skipping those
    /// that do not validate.
    pub fn from_proto(docs: &[v1::RouteDocument]) -> Self {
        let (mut routes, mut faults): (Vec<HttpRoute>, Vec<FaultInjection>) = Default::default();
        for doc in docs {
            match RouteObject::try_from(doc) {
                Ok(RouteObject::Route(r)) => routes.push(r),
                Ok(RouteObject::Fault(f)) => faults.push(f),
                Err(error) => warn!(%error, "skipping a route document of the snapshot"),
            }
        }
        let services: BTreeSet<ServiceKey> = routes
            .iter()
            .flat_map(|r| {
                r.parents
                    .iter()
                    .map(|p| (r.namespace.clone(), p.service.clone()))
            })
            .collect();
        let tables: BTreeMap<ServiceKey, RouteTable> = services
            .into_iter()
            .map(|key| {
                let table = RouteTable::build(
                    &key.0,
                    &key.1,
                    routes.iter().cloned(),
                    faults.iter().cloned(),
                );
                (key, table)
            })
            .collect();
        if !tables.is_empty() {
            info!(
                routes = routes.len(),
                faults = faults.len(),
                services = %tables.keys().map(|(ns, n)| format!("{ns}/{n}")).collect::<Vec<_>>().join(","),
                "HTTP routes compiled"
            );
        }
        Self { tables }
    }

    /// The table of a service; `None` when no route is bound to it.
    pub fn table(&self, key: &ServiceKey) -> Option<&RouteTable> {
        self.tables.get(key)
    }

    /// Every service with routes and the names of its routes (for the
    /// debug view and tests).
    pub fn names(&self) -> BTreeMap<&ServiceKey, Vec<&str>> {
        self.tables
            .iter()
            .map(|(k, t)| (k, t.routes().iter().map(|r| r.name.as_str()).collect()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use fedmesh_proto::routes::{FAULT_KIND, ROUTE_KIND, document};
    use http::{HeaderMap, Method};
    use serde_json::json;

    use super::*;

    #[test]
    fn snapshot_documents_compile_per_service_and_a_bad_one_is_skipped() {
        let route = json!({
            "metadata": {"name": "canary", "namespace": "demo"},
            "spec": {"parentRefs": [{"group": "", "kind": "Service", "name": "hello"}],
                     "rules": [{"filters": [{"type": "ExtensionRef", "extensionRef":
                        {"group": "fedmesh.io", "kind": "FaultInjection", "name": "flaky"}}]}]},
        });
        let fault = json!({"metadata": {"name": "flaky", "namespace": "demo"},
                           "spec": {"abort": {"httpStatus": 503}}});
        let mut bad = document(ROUTE_KIND, "demo", "bad", &json!({"spec": 7}));
        bad.json.truncate(3);
        let routes = Routes::from_proto(&[
            document(ROUTE_KIND, "demo", "canary", &route),
            document(FAULT_KIND, "demo", "flaky", &fault),
            bad,
        ]);
        let key = ("demo".to_string(), "hello".to_string());
        assert_eq!(routes.names()[&key], ["canary"]);
        let table = routes.table(&key).expect("hello has routes");
        let m = table
            .find(80, &Method::GET, "/", None, &HeaderMap::new())
            .expect("the default match");
        assert!(matches!(m.fault, fedmesh_proto::routes::FaultRef::Found(f) if f.name == "flaky"));
        assert!(routes.table(&("demo".into(), "bye".into())).is_none());
    }
}
