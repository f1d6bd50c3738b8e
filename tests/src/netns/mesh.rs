//! A federation whose clusters each run in their own network namespace
//! (see [`super`] for the wiring): east (us-east/us-east-1a), west
//! (us-west/us-west-2a) and eu (eu-central/eu-central-1a), as in the
//! loopback tests.
//!
//! Each cluster's `fedctl run` hosts its gateway (`gateway.embedded:
//! true`: one process per namespace to start, kill and log, and the
//! gateway reaches its control plane on the namespace's loopback as
//! `fedgw` would). Peering and gateway ingress listen on the namespace's
//! address; admin API, gateway API, gateway admin, DNS and the VIPs on its
//! loopback, which only that namespace can reach. `fedctl` client commands
//! run inside the namespace too (through [`crate::Cluster::fedctl`]).
//!
//! A [`Mesh`] reuses [`Federation`] for joining and waiting, so the
//! clusters are killed by pid and their logs printed on failure exactly
//! as in the loopback tests; its [`Topology`] goes after them.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use super::helper::{self, Helper};
use super::{Node, Topology};
use crate::{Cluster, EXPORT, Federation, service_yaml, wait_until};

/// How long control-plane convergence may take in these tests.
pub const SYNC: Duration = Duration::from_secs(20);

/// The clusters, their regions and zones.
pub const CLUSTERS: [(&str, &str, &str); 3] = [
    ("east", "us-east", "us-east-1a"),
    ("west", "us-west", "us-west-2a"),
    ("eu", "eu-central", "eu-central-1a"),
];

/// The port every backend listens on, in its own namespace.
pub const BACKEND_PORT: u16 = 18080;
/// The service port of demo/hello.
pub const SERVICE_PORT: u16 = 8080;

/// Where a cluster's peers dial it; by default its own listeners.
#[derive(Debug, Clone)]
pub struct Advertise {
    /// `control.peeringAdvertise`.
    pub peering: SocketAddr,
    /// `gateway.advertise`.
    pub gateway: SocketAddr,
}

/// What a test may change in a cluster's config.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    /// Where peers dial it; `None`: its own listeners.
    pub advertise: Option<Advertise>,
    /// YAML lines added to its `control:` section (indented two spaces),
    /// such as `"  staleGrace: 2s\n"`.
    pub control_extra: String,
}

/// Clusters in namespaces. Fields drop in order: the clusters (killed,
/// logs printed on failure), then the namespaces.
#[derive(Debug)]
pub struct Mesh {
    /// The clusters; join and wait with its methods.
    pub fed: Federation,
    /// The namespaces.
    pub topo: Topology,
}

impl Mesh {
    /// Namespaces and configs for the three clusters, not started; `None`
    /// (with the reason printed) when namespaces are unavailable here.
    pub fn create(test: &str) -> Option<Self> {
        if let Some(reason) = super::unavailable() {
            super::skip(test, &reason);
            return None;
        }
        crate::init_crypto();
        let names: Vec<&str> = CLUSTERS.iter().map(|c| c.0).collect();
        let topo = Topology::create(&names);
        let root = super::temp_dir();
        let clusters = CLUSTERS
            .iter()
            .zip(&topo.nodes)
            .enumerate()
            .map(|(i, (&(name, region, zone), node))| {
                // Its clients (in its namespace) dial loopback: admin, DNS.
                let cluster = Cluster::new(
                    name,
                    Ipv4Addr::LOCALHOST,
                    root.path().join(name),
                    Some(node.netns.clone()),
                );
                cluster.write_config(&config(name, region, zone, node, i, &Settings::default()));
                cluster
            })
            .collect();
        let fed = Federation {
            clusters,
            block: [0, 0],
            root,
        };
        Some(Self { fed, topo })
    }

    /// Rewrites `name`'s config with `settings` (before it starts).
    pub fn configure(&self, name: &str, settings: &Settings) {
        let i = CLUSTERS
            .iter()
            .position(|c| c.0 == name)
            .expect("a known cluster");
        let (_, region, zone) = CLUSTERS[i];
        let node = self.topo.node(name);
        self.fed
            .get(name)
            .write_config(&config(name, region, zone, node, i, settings));
    }

    /// Starts every cluster.
    pub fn start(&mut self) {
        for c in &mut self.fed.clusters {
            c.start();
        }
    }

    /// Starts every cluster and joins all three with real tokens: west and
    /// eu join east, eu joins west; waits until every peering is up.
    pub fn start_joined(&mut self) {
        self.start();
        for (joiner, issuer) in [("west", "east"), ("eu", "east"), ("eu", "west")] {
            self.fed.join(joiner, issuer);
        }
        for (a, b) in [("east", "west"), ("east", "eu"), ("west", "eu")] {
            self.fed.wait_connected(a, b, SYNC);
        }
    }

    /// The namespace of cluster `name`.
    pub fn ns(&self, name: &str) -> &str {
        &self.topo.node(name).netns
    }

    /// The address of cluster `name` on the shared link.
    pub fn addr(&self, name: &str) -> Ipv4Addr {
        self.topo.node(name).addr
    }

    /// Where helper logs go.
    fn helper_dir(&self) -> PathBuf {
        let dir = self.fed.root().join("helpers");
        std::fs::create_dir_all(&dir).expect("helper dir");
        dir
    }

    /// Starts a helper in `cluster`'s namespace (see [`Helper::spawn`]).
    pub fn helper(&self, cluster: &str, what: &str, args: &[&str]) -> Helper {
        Helper::spawn(self.ns(cluster), &self.helper_dir(), what, args)
    }

    /// Starts a backend named after `cluster` in its namespace, and exports
    /// demo/hello there with it as the one endpoint. Dropping the returned
    /// helper stops the backend.
    pub fn serve_hello(&self, cluster: &str) -> Helper {
        let addr = SocketAddr::from((self.addr(cluster), BACKEND_PORT));
        let mut backend = self.helper(
            cluster,
            &format!("backend-{cluster}"),
            &["serve", cluster, &addr.to_string()],
        );
        backend.wait_for("serving", Duration::from_secs(10));
        self.fed.get(cluster).write_manifest(
            "hello.yaml",
            &service_yaml(
                "demo",
                "hello",
                "http",
                SERVICE_PORT,
                BACKEND_PORT,
                &[EXPORT],
                &[&addr.ip().to_string()],
            ),
        );
        backend
    }

    /// `cluster`'s VIP and port for demo/hello, once it imports it from
    /// exactly `exporters` (sorted) and its gateway serves a connection
    /// made from inside its namespace.
    pub fn hello_vip(&self, cluster: &str, exporters: &[&str]) -> SocketAddr {
        let c = self.fed.get(cluster);
        wait_until(
            &format!("{cluster} imports demo/hello from {exporters:?}"),
            SYNC,
            || c.service_clusters("demo/hello") == exporters,
        );
        let vip: IpAddr = c
            .service("demo/hello")
            .and_then(|s| s["vip"].as_str().and_then(|v| v.parse().ok()))
            .expect("demo/hello has a VIP");
        let addr = SocketAddr::new(vip, SERVICE_PORT);
        wait_until(
            &format!("{cluster}'s gateway serves {addr} inside its namespace"),
            SYNC,
            || {
                helper::ask(self.ns(cluster), addr, 1)
                    .first()
                    .is_some_and(Result::is_ok)
            },
        );
        addr
    }

    /// `count` connections from inside `cluster`'s namespace to `vip`.
    pub fn ask(&self, cluster: &str, vip: SocketAddr, count: usize) -> Vec<Result<String, String>> {
        helper::ask(self.ns(cluster), vip, count)
    }

    /// Delays every packet in and out of `cluster`'s link by `delay` (so
    /// any exchange with it takes twice that per round trip, handshakes
    /// included) until the returned helper is dropped: iptables-legacy
    /// rules in its namespace queue them to a [`super::delay`] helper.
    ///
    /// # Panics
    /// When the helper or the rules cannot be set up.
    pub fn delay(&self, cluster: &str, delay: Duration) -> Helper {
        let ms = delay.as_millis().to_string();
        let mut delayer = self.helper(cluster, &format!("delay-{cluster}"), &["delay", "0", &ms]);
        delayer.wait_for("delaying", Duration::from_secs(10));
        for rule in [
            [
                "-A",
                "OUTPUT",
                "-o",
                "eth0",
                "-j",
                "NFQUEUE",
                "--queue-num",
                "0",
            ],
            [
                "-A",
                "INPUT",
                "-i",
                "eth0",
                "-j",
                "NFQUEUE",
                "--queue-num",
                "0",
            ],
        ] {
            let out = super::run_in(self.ns(cluster), "iptables-legacy", &rule);
            assert!(
                out.ok,
                "iptables-legacy {rule:?} in {cluster}: {}",
                out.stderr
            );
        }
        delayer
    }

    /// `cluster`'s gateway metrics (read inside its namespace).
    pub fn gateway_metrics(&self, cluster: &str) -> String {
        let (status, body) = helper::get(self.ns(cluster), "127.0.0.1:15090", "/metrics");
        assert_eq!(status, 200, "{cluster}'s /metrics: {body}");
        body
    }
}

/// The sum of the metric samples whose line starts with `name{` and
/// carries every one of `labels` (such as `cluster="east"`).
pub fn metric(metrics: &str, name: &str, labels: &[&str]) -> f64 {
    metrics
        .lines()
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with('{'))
        })
        .filter(|l| labels.iter().all(|label| l.contains(label)))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Cluster `i`'s config: listeners on its namespace address and loopback,
/// an embedded gateway, VIPs from `127.77.(i+1).0/24`.
fn config(
    name: &str,
    region: &str,
    zone: &str,
    node: &Node,
    i: usize,
    settings: &Settings,
) -> String {
    let addr = node.addr;
    let extra = &settings.control_extra;
    let (peering, gateway) = settings.advertise.as_ref().map_or_else(
        || (format!("{addr}:15017"), format!("{addr}:15443")),
        |a| (a.peering.to_string(), a.gateway.to_string()),
    );
    format!(
        "cluster: {name}
locality: {{ region: {region}, zone: {zone} }}
dataDir: ./data
control:
  peeringListen: {addr}:15017
  peeringAdvertise: {peering}
  adminListen: 127.0.0.1:15000
  gatewayListen: 127.0.0.1:15012
{extra}dns:
  listen: 127.0.0.1:15053
gateway:
  embedded: true
  ingressListen: {addr}:15443
  advertise: {gateway}
  adminListen: 127.0.0.1:15090
  vipRange: 127.77.{n}.0/24
",
        n = i + 1
    )
}
