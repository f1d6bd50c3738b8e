//! Kubernetes mode: the Services that give imports their VIPs (DESIGN.md,
//! DNS: VIPs). For every VIP name of the service table — `ns/name` and
//! `ns/name@cluster` — the control plane keeps a ClusterIP Service in its
//! own namespace that selects the gateway pods and targets a gateway port
//! of its own; the ClusterIP Kubernetes assigns is the VIP DNS answers,
//! and kube-proxy carries a client's connection to that gateway port.
//!
//! Data flow: table snapshots and a watcher on the Services it owns (label
//! `app.kubernetes.io/managed-by: fedmesh`, `fedmesh.io/cluster: <name>`)
//! → [`plan`] (pure) → server-side apply / delete → the ClusterIPs read
//! back are published as external VIPs for the table, the target ports as
//! listen ports for the gateway API. The Services are the record of the
//! port allocations, so a restart keeps every VIP and port.
//!
//! Beside them, [`mcs`] keeps the Multi-Cluster Services API objects: a
//! `ServiceImport` per import and the status of local `ServiceExport`s.

pub mod mcs;
pub mod mcs_plan;
pub mod plan;

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::ops::RangeInclusive;
use std::sync::Arc;
use std::time::Duration;

use futures_util::stream::BoxStream;
use futures_util::{FutureExt, StreamExt};
use k8s_openapi::api::core::v1::Service;
use kube::api::{DeleteParams, Patch, PatchParams};
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher;
use kube::{Api, Client};
use tokio::sync::watch;
use tracing::{debug, info, warn};

use self::plan::{MANAGED_BY, OWNER_LABEL, Observed, PortAllocator, desired, object_name};
use crate::model::VipName;
use crate::registry::kubernetes::objects::ObjectSet;
use crate::table::TableSnapshot;

/// VIP name → service port → gateway port.
pub type ListenPorts = BTreeMap<VipName, BTreeMap<u16, u16>>;

/// VIP name → ClusterIP.
pub type ClusterIps = BTreeMap<VipName, Ipv4Addr>;

/// How often the Services are compared with the table even without a
/// change (to retry failed API calls).
const RESYNC: Duration = Duration::from_secs(5);
/// The field manager of fedmesh's server-side applies.
const FIELD_MANAGER: &str = "fedmesh";

/// The import Service controller's settings.
pub struct ImportServices {
    /// The API client.
    pub client: Client,
    /// Where the Services are made.
    pub namespace: String,
    /// This cluster's name (the owner label).
    pub cluster: String,
    /// The gateway pods' labels.
    pub selector: BTreeMap<String, String>,
    /// Gateway ports to target.
    pub ports: RangeInclusive<u16>,
    /// The namespaces the MCS objects are kept in (`registry.namespaces`;
    /// empty: all).
    pub namespaces: Vec<String>,
}

/// What the controller publishes.
pub struct Published {
    /// ClusterIPs, for the table (`VipMode::External`).
    pub vips: watch::Receiver<Arc<ClusterIps>>,
    /// Gateway ports, for the gateway API.
    pub listen: watch::Receiver<Arc<ListenPorts>>,
}

impl ImportServices {
    /// Starts the controller over `table`.
    pub fn spawn(self, table: watch::Receiver<Arc<TableSnapshot>>) -> Published {
        let (vips_tx, vips) = watch::channel(Arc::new(ClusterIps::new()));
        let (listen_tx, listen) = watch::channel(Arc::new(ListenPorts::new()));
        info!(
            namespace = %self.namespace,
            ports = %format!("{}-{}", self.ports.start(), self.ports.end()),
            "keeping import Services"
        );
        mcs::McsObjects {
            client: self.client.clone(),
            namespaces: self.namespaces.clone(),
        }
        .spawn(table.clone());
        tokio::spawn(self.run(table, vips_tx, listen_tx));
        Published { vips, listen }
    }

    async fn run(
        self,
        mut table: watch::Receiver<Arc<TableSnapshot>>,
        vips: watch::Sender<Arc<ClusterIps>>,
        listen: watch::Sender<Arc<ListenPorts>>,
    ) {
        let api: Api<Service> = Api::namespaced(self.client.clone(), &self.namespace);
        let labels = format!(
            "{}={},{OWNER_LABEL}={}",
            MANAGED_BY.0, MANAGED_BY.1, self.cluster
        );
        let mut events = watcher::watcher(api.clone(), watcher::Config::default().labels(&labels))
            .default_backoff()
            .boxed();
        let mut owned: ObjectSet<Service> = ObjectSet::default();
        let mut ports = PortAllocator::new(self.ports.clone());
        let mut adopted = false;
        let mut resync = tokio::time::interval(RESYNC);
        loop {
            tokio::select! {
                item = events.next() => self.apply_ready(item, &mut events, &mut owned),
                r = table.changed() => if r.is_err() { return },
                _ = resync.tick() => {}
            }
            if !owned.listed() || table.borrow().version == 0 {
                // Until the first list, existing allocations are unknown;
                // until the table's first build, so is what is imported
                // (acting on the empty initial value would delete every
                // Service, and their ClusterIPs with them).
                continue;
            }
            let observed: BTreeMap<VipName, Observed> = owned
                .objects()
                .filter_map(|s| plan::observe(&s.object))
                .collect();
            if !adopted {
                ports.adopt(&observed);
                adopted = true;
            }
            let todo = {
                let snapshot = table.borrow();
                self.reconcile(&snapshot, &observed, &mut ports, &listen, &vips)
            };
            self.carry_out(&api, todo).await;
        }
    }

    /// Applies `item` and every watch event ready right after it, so one
    /// burst is compared once.
    fn apply_ready(
        &self,
        mut item: Option<Result<watcher::Event<Service>, watcher::Error>>,
        events: &mut BoxStream<'static, Result<watcher::Event<Service>, watcher::Error>>,
        owned: &mut ObjectSet<Service>,
    ) {
        for _ in 0..4096 {
            match item {
                Some(Ok(event)) => {
                    owned.apply(event);
                }
                Some(Err(error)) => {
                    warn!(%error, namespace = %self.namespace, "cannot watch import Services; retrying (check RBAC: examples/kubernetes/rbac.yaml)")
                }
                None => {
                    warn!("import Service watch ended; relying on resync");
                    return;
                }
            }
            match events.next().now_or_never() {
                Some(next) => item = next,
                None => return,
            }
        }
    }

    /// Publishes the gateway ports and ClusterIPs of what the table
    /// imports, and returns the Service changes that make it so.
    fn reconcile(
        &self,
        table: &TableSnapshot,
        observed: &BTreeMap<VipName, Observed>,
        ports: &mut PortAllocator,
        listen: &watch::Sender<Arc<ListenPorts>>,
        vips: &watch::Sender<Arc<ClusterIps>>,
    ) -> plan::Plan {
        let wanted = desired(table);
        let assigned = ports.assign(&wanted);
        let missing = wanted.len() - assigned.len();
        if missing > 0 {
            warn!(
                missing,
                "registry.importPorts is full; some imports get no Service until ports free up"
            );
        }
        publish(listen, assigned.clone());
        let ips: ClusterIps = observed
            .iter()
            .filter(|(name, _)| wanted.contains_key(*name))
            .filter_map(|(name, o)| Some((name.clone(), o.cluster_ip?)))
            .collect();
        publish(vips, ips);
        plan::plan(
            &wanted,
            &assigned,
            observed,
            |name, p, t| plan::service(name, &self.namespace, &self.cluster, &self.selector, p, t),
            &self.selector,
        )
    }

    async fn carry_out(&self, api: &Api<Service>, todo: plan::Plan) {
        let params = PatchParams::apply(FIELD_MANAGER).force();
        for svc in todo.apply {
            let name = svc.metadata.name.clone().unwrap_or_default();
            match api.patch(&name, &params, &Patch::Apply(&svc)).await {
                Ok(_) => debug!(service = %name, "import Service applied"),
                Err(error) => {
                    warn!(service = %name, %error, "cannot apply an import Service; retrying")
                }
            }
        }
        for vip_name in todo.delete {
            let name = object_name(&vip_name);
            match api.delete(&name, &DeleteParams::default()).await {
                Ok(_) => info!(import = %vip_name, service = %name, "import Service deleted"),
                Err(kube::Error::Api(s)) if s.code == 404 => {}
                Err(error) => {
                    warn!(service = %name, %error, "cannot delete an import Service; retrying")
                }
            }
        }
    }
}

fn publish<T: PartialEq>(tx: &watch::Sender<Arc<T>>, value: T) {
    tx.send_if_modified(|cur| {
        if **cur == value {
            false
        } else {
            *cur = Arc::new(value);
            true
        }
    });
}

#[cfg(test)]
mod tests;

/// The Secret holding the gateway bootstrap token in Kubernetes mode
/// (DESIGN.md, Identity and trust: "in Kubernetes, a Secret mounted into
/// gateway pods"), key `token`.
pub const BOOTSTRAP_SECRET: &str = "fedmesh-gateway-bootstrap";

/// Writes the bootstrap token into [`BOOTSTRAP_SECRET`] in `namespace`,
/// retrying until the API accepts it.
pub async fn publish_bootstrap_secret(client: Client, namespace: String, token: String) {
    use k8s_openapi::ByteString;
    use k8s_openapi::api::core::v1::Secret;
    let api: Api<Secret> = Api::namespaced(client, &namespace);
    let secret = Secret {
        metadata: kube::api::ObjectMeta {
            name: Some(BOOTSTRAP_SECRET.into()),
            namespace: Some(namespace.clone()),
            labels: Some([(MANAGED_BY.0.to_string(), MANAGED_BY.1.to_string())].into()),
            ..Default::default()
        },
        data: Some([("token".to_string(), ByteString(token.into_bytes()))].into()),
        type_: Some("Opaque".into()),
        ..Default::default()
    };
    let params = PatchParams::apply(FIELD_MANAGER).force();
    let mut delay = Duration::from_secs(1);
    loop {
        match api
            .patch(BOOTSTRAP_SECRET, &params, &Patch::Apply(&secret))
            .await
        {
            Ok(_) => {
                info!(%namespace, secret = BOOTSTRAP_SECRET, "gateway bootstrap token written to a Secret");
                return;
            }
            Err(error) => {
                warn!(%namespace, %error, "cannot write the gateway bootstrap Secret; retrying (check RBAC: examples/kubernetes/rbac.yaml)");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(30));
            }
        }
    }
}
