//! A federation of harness clusters sharing one temp folder and one
//! `127.A.B.0/24` block, and the config and manifest texts they are given.

use std::net::{Ipv4Addr, TcpListener};
use std::path::Path;
use std::time::Duration;

use crate::cluster::Cluster;
use crate::{init_crypto, wait_until};

/// Picks a free `127.A.B.0/24` block.
fn pick_block() -> [u8; 2] {
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0)
        ^ u128::from(std::process::id()) << 32;
    let mut x = (seed as u64) | 1;
    for _ in 0..64 {
        // xorshift: cheap, and different per process and call.
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let a = 100 + (x % 150) as u8;
        let b = (x >> 8) as u8;
        if TcpListener::bind((Ipv4Addr::new(127, a, b, 1), 15017)).is_ok() {
            return [a, b];
        }
    }
    panic!("no free 127.x.y.0/24 block found");
}

/// Clusters sharing one temp folder and one address block.
#[derive(Debug)]
pub struct Federation {
    /// The clusters, in creation order.
    pub clusters: Vec<Cluster>,
    pub(crate) block: [u8; 2],
    pub(crate) root: tempfile::TempDir,
}

impl Default for Federation {
    fn default() -> Self {
        Self::new()
    }
}

impl Federation {
    /// An empty federation.
    pub fn new() -> Self {
        init_crypto();
        Self {
            clusters: Vec::new(),
            block: pick_block(),
            root: tempfile::tempdir().expect("temp dir"),
        }
    }

    /// The federation's temp folder.
    pub fn root(&self) -> &Path {
        self.root.path()
    }

    /// The VIP range of cluster `i`: a /26 of a /24 picked from the
    /// federation's block, away from every cluster's own addresses.
    pub fn vip_range(&self, i: usize) -> String {
        let a = 10 + self.block[0] % 90;
        let quarter = u8::try_from(i % 4).unwrap_or(0) * 64;
        format!("127.{a}.{}.{quarter}/26", self.block[1])
    }

    /// The address cluster number `i` gets.
    pub fn ip(&self, i: usize) -> Ipv4Addr {
        Ipv4Addr::new(
            127,
            self.block[0],
            self.block[1],
            u8::try_from(i + 1).expect("few clusters"),
        )
    }

    /// Adds a cluster with a config from [`default_config`] (not started);
    /// `control_extra` is YAML added to its `control:` section (indented by
    /// two spaces). Returns its index.
    pub fn add(&mut self, name: &str, region: &str, zone: &str, control_extra: &str) -> usize {
        let i = self.clusters.len();
        let ip = self.ip(i);
        let cluster = Cluster::new(name, ip, self.root.path().join(name), None);
        let vips = self.vip_range(i);
        cluster.write_config(
            &default_config(name, region, zone, ip, control_extra).replace(
                "  adminListen: {ip}:15090\n"
                    .replace("{ip}", &ip.to_string())
                    .as_str(),
                &format!("  adminListen: {ip}:15090\n  vipRange: {vips}\n"),
            ),
        );
        self.clusters.push(cluster);
        i
    }

    /// Adds and starts the standard test clusters: east (us-east/us-east-1a),
    /// west (us-west/us-west-2a), eu (eu-central/eu-central-1a), the first
    /// `n` of them, with `control_extra` as in [`Federation::add`].
    pub fn standard(n: usize, control_extra: &str) -> Self {
        Self::standard_each(n, |_| control_extra.to_string())
    }

    /// [`Federation::standard`], each cluster with its web port
    /// (`control.webListen`) on its own address at :15080, and
    /// `control_extra` after it.
    pub fn standard_with_web(n: usize, control_extra: &str) -> Self {
        Self::standard_each(n, |ip| format!("  webListen: {ip}:15080\n{control_extra}"))
    }

    /// [`Federation::standard`] with each cluster's `control:` extra made
    /// from its address.
    fn standard_each(n: usize, control_extra: impl Fn(Ipv4Addr) -> String) -> Self {
        let mut fed = Self::new();
        let all = [
            ("east", "us-east", "us-east-1a"),
            ("west", "us-west", "us-west-2a"),
            ("eu", "eu-central", "eu-central-1a"),
        ];
        for (i, (name, region, zone)) in all.iter().take(n).enumerate() {
            let extra = control_extra(fed.ip(i));
            fed.add(name, region, zone, &extra);
        }
        for c in &mut fed.clusters {
            c.start();
        }
        fed
    }

    /// The standard three clusters (east, west, eu), started with
    /// `control_extra` as in [`Federation::add`], joined in a full mesh
    /// (west and eu join east, eu joins west), every peering connected
    /// within `timeout`.
    ///
    /// # Panics
    /// When a peering does not connect in time.
    pub fn full_mesh(control_extra: &str, timeout: Duration) -> Self {
        let fed = Self::standard(3, control_extra);
        fed.join("west", "east");
        fed.join("eu", "east");
        fed.join("eu", "west");
        for (a, b) in [("east", "west"), ("east", "eu"), ("west", "eu")] {
            fed.wait_connected(a, b, timeout);
        }
        fed
    }

    /// Cluster by name.
    ///
    /// # Panics
    /// When there is none.
    pub fn get(&self, name: &str) -> &Cluster {
        self.clusters
            .iter()
            .find(|c| c.name == name)
            .expect("cluster")
    }

    /// Mutable cluster by name.
    ///
    /// # Panics
    /// When there is none.
    pub fn get_mut(&mut self, name: &str) -> &mut Cluster {
        self.clusters
            .iter_mut()
            .find(|c| c.name == name)
            .expect("cluster")
    }

    /// `joiner` joins `issuer` with a fresh token.
    ///
    /// # Panics
    /// When the join fails.
    pub fn join(&self, joiner: &str, issuer: &str) {
        let token = self.get(issuer).token(None);
        let out = self.get(joiner).fedctl(&["join", &token]);
        assert!(out.ok, "{joiner} could not join {issuer}: {}", out.stderr);
    }

    /// Waits until `a` sees `b` connected and `b` sees `a` connected.
    pub fn wait_connected(&self, a: &str, b: &str, timeout: Duration) {
        wait_until(&format!("{a} and {b} connected both ways"), timeout, || {
            self.get(a).peer_state(b).as_deref() == Some("connected")
                && self.get(b).peer_state(a).as_deref() == Some("connected")
        });
    }
}

/// The config the harness writes for a cluster at `ip` (standard ports);
/// `control_extra` is appended to the `control:` section.
pub fn default_config(
    name: &str,
    region: &str,
    zone: &str,
    ip: Ipv4Addr,
    control_extra: &str,
) -> String {
    let advertise = format!("  advertise: {ip}:15443\n");
    fedmesh_control::harness::texts::ConfigText {
        name,
        region,
        zone,
        ip: Some(ip),
        control_extra,
        gateway_extra: &advertise,
        tail: "",
    }
    .render()
}

/// A `Service` (with an `EndpointSlice` when `endpoints` is not empty) in
/// namespace `ns`, one TCP port `port_name:port` (target `target`), with
/// `annotations` (e.g. `fedmesh.io/export: "true"`).
pub fn service_yaml(
    ns: &str,
    name: &str,
    port_name: &str,
    port: u16,
    target: u16,
    annotations: &[(&str, &str)],
    endpoints: &[&str],
) -> String {
    fedmesh_control::harness::texts::service_manifest(
        ns,
        name,
        (port_name, port, target),
        annotations,
        endpoints,
    )
}

pub use fedmesh_control::harness::texts::EXPORT;
